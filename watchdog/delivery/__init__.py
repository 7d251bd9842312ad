"""Delivery: the dispatcher that sends notifications through the outbox with retries,
and the host that loads notifier plugins through the public API.

The last stage; it knows notifiers only through ``watchdog.notifiers``.
"""
