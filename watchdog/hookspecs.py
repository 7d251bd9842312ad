"""Hook specifications: the whole surface a plugin can implement.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose
names match the specs below, exposed through the ``videosdk_watchdog``
entry-point group::

    [project.entry-points.videosdk_watchdog]
    pagerduty = "watchdog_pagerduty"

Every spec is documented here; a test fails if one is not.
"""

from __future__ import annotations

import pluggy

from watchdog.notifiers import Register

PROJECT = "videosdk_watchdog"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's implementation of a hook below: ``@hookimpl def register_notifier_types``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_notifier_types(register: Register) -> None:
    """Register notifier types by calling ``register(NotifierType(...))`` once per type.

    The type's ``name`` is what operators write as ``type:`` under
    ``notifiers:`` in the config. Called once at startup; do no I/O here.
    """
