"""The simulator: a fake VideoSDK API on 127.0.0.1 with scripted rooms and
scenarios, participant churn, and ``demo``.

Apart from the runtime: nothing in the daemon imports it; the CLI's ``simulate``
and ``demo`` commands, the tests and the benchmarks do.
"""
