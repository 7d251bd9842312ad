"""Who to watch: the watch list, discovery of live meetings, inbound webhooks,
name filters and departures.

It decides which participants the poller follows, so it sits just above ``poll``.
"""
