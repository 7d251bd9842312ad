"""Durable state: the database (SQLite or PostgreSQL), the store over it, and the
accounting of storage faults.

Beside the pipeline: the stages that keep state use it; it depends only on the
types of the engine and the public API. Only this package (and ``cluster`` for
its leases, until those move here) speaks SQL.
"""
