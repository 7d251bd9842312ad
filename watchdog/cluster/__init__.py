"""Several instances over one PostgreSQL database: leases, leadership, the sharing
of participants between instances.

Above the pipeline stages, which it coordinates; below the runtime, which joins it.
"""
