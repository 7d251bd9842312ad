"""Observability, the bottom layer every stage may use: structured logs (with secrets
redacted) and the Prometheus instruments.
"""
