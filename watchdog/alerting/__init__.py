"""From rule transitions to alerts, then the alert manager: grouping, routing to
receivers, silences, acknowledgements, actions taken from Slack, reload carry-over.

It sits after the engine (it consumes its transitions) and before delivery.
"""
