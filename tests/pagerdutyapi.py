"""A local server that answers like PagerDuty's Events API v2 (``POST /v2/enqueue``).

Every event is checked with jsonschema against the Events API v2 rules: the request body
and ``Payload`` schemas PagerDuty publishes (PagerDuty/api-schema,
``reference/events-v2/openapiv3.json``: ``routing_key`` and ``event_action`` required,
the action and severity enums, ``summary``/``severity``/``source`` in a payload, ``href``
in a link) plus the limits its documentation states and the schema leaves out: a
``routing_key`` of 32 characters, ``dedup_key`` at most 255 characters and required
unless triggering, ``payload.summary`` at most 1,024 characters, and a payload on a
trigger. Answers are PagerDuty's own: 202 ``{"status": "success", "message": "Event
processed", "dedup_key": ...}``; 400 ``{"status": "invalid event", "message": "Event
object is invalid", "errors": [...]}``; 429 and 5xx when a test queues them.

A well-formed event is applied to the server's PagerDuty alerts, keyed by ``dedup_key``
as PagerDuty keys them: ``trigger`` opens one (or updates the open one), ``acknowledge``
and ``resolve`` move it; so a test reads what an on-call engineer would see.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonschema

from watchdog.testing import HttpReceiver, Received, Reply

PATH = "/v2/enqueue"
ROUTING_KEY = "R0ut1ngKey0f32CharactersAbCdEf12"  # the integration the server knows
UNKNOWN_KEY = "0123456789abcdef0123456789abcdef"  # well formed, but no such integration
assert len(ROUTING_KEY) == len(UNKNOWN_KEY) == 32

_LINKS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"href": {"type": "string"}, "text": {"type": "string"}},
        "required": ["href"],
    },
}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "routing_key": {"type": "string"},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "client": {"type": "string"},
        "client_url": {"type": "string"},
        "links": _LINKS,
        "images": {
            "type": "array",
            "items": {"type": "object", "required": ["src"]},
        },
        "payload": {
            "type": "object",
            "properties": {
                "summary": {"type": "string", "maxLength": 1024},
                "timestamp": {"type": "string"},
                "severity": {"enum": ["critical", "warning", "error", "info"]},
                "source": {"type": "string", "minLength": 1},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
            "required": ["summary", "severity", "source"],
        },
    },
    "required": ["routing_key", "event_action"],
    "allOf": [
        {
            "if": {"properties": {"event_action": {"const": "trigger"}}},
            "then": {"required": ["payload"]},
            "else": {"required": ["dedup_key"]},
        }
    ],
}
jsonschema.Draft202012Validator.check_schema(EVENT_SCHEMA)
_VALIDATOR = jsonschema.Draft202012Validator(EVENT_SCHEMA)


def invalid(*errors: str) -> Reply:
    return Reply(
        400,
        {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)},
    )


def problems(event: Any) -> list[str]:
    """Why PagerDuty would refuse this event; empty when it takes it."""
    found = [
        f"{'.'.join(map(str, e.absolute_path)) or 'event'}: {e.message}"
        for e in _VALIDATOR.iter_errors(event)
    ]
    if found:  # a body that is not an object is one of them
        return found
    if len(event["routing_key"]) != 32:
        found.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    stamp = event.get("payload", {}).get("timestamp")
    if stamp is not None:
        try:
            datetime.fromisoformat(stamp)
        except ValueError:
            found.append("'payload.timestamp' is not an ISO 8601 date-time")
    return found


def _not_json(constant: str) -> Any:
    """NaN and Infinity: Python's json reads them, JSON (and PagerDuty) does not."""
    raise ValueError(f"{constant} is not JSON")


@dataclass
class PagerDutyAlert:
    """One PagerDuty alert as the incident page shows it."""

    dedup_key: str
    status: str  # triggered, acknowledged, resolved
    payload: dict[str, Any]
    events: list[str] = field(default_factory=list)  # every action it received


class FakePagerDuty:
    """The Events API v2 on 127.0.0.1; ``.url`` is the full endpoint to configure."""

    def __init__(self, keys: tuple[str, ...] = (ROUTING_KEY,)) -> None:
        self.keys = set(keys)
        self.accepted: list[dict[str, Any]] = []  # every event answered 202, in order
        self.refused: list[tuple[Any, list[str]]] = []  # events answered 400, and why
        self.alerts: dict[str, PagerDutyAlert] = {}
        self._lock = threading.Lock()
        self.receiver = HttpReceiver(self._answer)
        self.url = self.receiver.url + PATH

    def _answer(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != PATH:
            return Reply(404, {"status": "Not found", "message": "Not found"})
        if not request.headers.get("content-type", "").startswith("application/json"):
            return Reply(400, {"status": "Unrecognized object", "message": "Content-Type"})
        try:
            event = json.loads(request.body, parse_constant=_not_json)
        except ValueError:
            return Reply(
                400,
                {
                    "status": "Unrecognized object",
                    "message": "Event object format is unrecognized",
                    "errors": ["JSON parse error"],
                },
            )
        found = problems(event)
        if not found and event["routing_key"] not in self.keys:
            found = ["Invalid routing key"]
        with self._lock:
            if found:
                self.refused.append((event, found))
                return invalid(*found)
            self.accepted.append(event)
            self._apply(event)
        return Reply(
            202,
            {"status": "success", "message": "Event processed", "dedup_key": event["dedup_key"]},
        )

    def _apply(self, event: dict[str, Any]) -> None:
        key, action = event["dedup_key"], event["event_action"]
        alert = self.alerts.get(key)
        if action == "trigger":
            if alert is None or alert.status == "resolved":
                alert = self.alerts[key] = PagerDutyAlert(key, "triggered", event["payload"])
            else:
                alert.payload = event["payload"]
        elif alert is not None and alert.status != "resolved":
            alert.status = "acknowledged" if action == "acknowledge" else "resolved"
        if alert is not None:
            alert.events.append(action)

    def actions(self) -> list[tuple[str, str]]:
        """(event_action, dedup_key) of every accepted event, in order."""
        with self._lock:
            return [(e["event_action"], e["dedup_key"]) for e in self.accepted]

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests so, before any check (429, 5xx, ...)."""
        self.receiver.reply(*replies)

    def __enter__(self) -> FakePagerDuty:
        self.receiver.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.stop()
        # a test's unknown key is refused on purpose; anything else is the notifier's mistake
        mistakes = [
            why
            for event, why in self.refused
            if not isinstance(event, dict) or event.get("routing_key") in self.keys
        ]
        assert not mistakes, f"the notifier sent events PagerDuty refuses: {mistakes[0]}"
