"""The running daemon: building the components from the config, the service loop and
its reload, health, the HTTP endpoints, gauges, systemd notification.

On top of every stage: this is where they are wired together.
"""
