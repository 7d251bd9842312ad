"""Reading what operators write: the config and rules file syntax, settings, errors.

The bottom of the stages: every other stage takes its settings from here, and
nothing here knows about polling, alerting or storage. A bad file fails here,
with ``file:line: message``, before anything else starts.
"""
