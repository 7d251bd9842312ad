"""Who discovery may watch: include/exclude by room, participant name and SDK.

Pure decisions on what is known at each point: the sessions listing and the
webhooks carry the room and the name; only the first stats response carries
the SDK (``sdkInfo``), so the SDK test runs then. An empty include list
admits everyone; an exclude always wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.config.patterns import Regex, compile_regex
from watchdog.config.settings import WatchFilters


@dataclass(frozen=True, slots=True)
class Filters:
    include_rooms: frozenset[str]
    exclude_rooms: frozenset[str]
    include_names: tuple[Regex, ...]  # searched (unanchored), as documented
    exclude_names: tuple[Regex, ...]
    include_sdks: frozenset[str]
    exclude_sdks: frozenset[str]

    @classmethod
    def from_settings(cls, settings: WatchFilters) -> Filters:
        return cls(
            include_rooms=frozenset(settings.include_rooms),
            exclude_rooms=frozenset(settings.exclude_rooms),
            include_names=tuple(map(compile_regex, settings.include_names)),
            exclude_names=tuple(map(compile_regex, settings.exclude_names)),
            include_sdks=frozenset(s.lower() for s in settings.include_sdks),
            exclude_sdks=frozenset(s.lower() for s in settings.exclude_sdks),
        )

    def room(self, room_id: str | None, custom_room_id: str | None = None) -> str | None:
        """None if the room may be watched, else why not."""
        names = {n for n in (room_id, custom_room_id) if n}
        if names & self.exclude_rooms:
            return "room excluded"
        if self.include_rooms and not names & self.include_rooms:
            return "room not included"
        return None

    def name(self, name: str | None) -> str | None:
        """None if the participant name may be watched (or is not known yet), else why not."""
        if name is None:
            return None
        if any(p.search(name) for p in self.exclude_names):
            return "name excluded"
        if self.include_names and not any(p.search(name) for p in self.include_names):
            return "name not included"
        return None

    def sdk(self, sdk_name: str | None) -> str | None:
        """None if the SDK may be watched; an unknown SDK passes unless an include list exists."""
        sdk = (sdk_name or "").lower()
        if sdk and sdk in self.exclude_sdks:
            return f"SDK {sdk_name} excluded"
        if self.include_sdks and sdk not in self.include_sdks:
            return f"SDK {sdk_name or 'unknown'} not included"
        return None
