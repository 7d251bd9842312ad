"""Durable state: the database (SQLite or PostgreSQL) and its migrations, one
repository per concern over it (polls, outbox, notifier_memory, alertlog, silences,
watchlist, leases), the Store that opens it and holds them, and the accounting of
storage faults.

Beside the pipeline: the stages that keep state use it; it depends only on the
types of the engine and the public API. Only this package speaks SQL or knows
which engine is behind.
"""
