"""The rule engine: rules, their evaluation over sample series, alert templates,
and the offline tools that run it (backtest, replay, rule tests, checks).

Pure computation over samples: it does no I/O (an import-linter contract keeps it
so), which is what lets tests and ``replay`` run it on recorded data.
"""
