"""The Adaptive Card for a notification, and the Workflows message that carries it.

One card per notification: a coloured header (Container styles: ``attention`` critical,
``warning`` warning, ``accent`` info, ``good`` resolved), then the rule, participant,
meeting, value against threshold, sparkline, how long and why. A group lists its alerts
worst first and ends with "…and N more" where the rest would not fit Teams' size limit.

Card version 1.4: Teams renders up to 1.5 from bots, but the Workflows action that posts
a webhook's card ("Post card in a chat or channel", as the Flow bot) shows a 1.5 card as
"We're sorry, this card couldn't be displayed" (microsoft/AdaptiveCards#8965,
MicrosoftDocs/msteams-docs#9801), and nothing here needs 1.5. The tests validate every
card against the published 1.4 schema.

Names, IDs and descriptions come from calls and rule templates: hostile. They only ever
go into ``TextRun``s, whose text the schema says is not markdown, so ``[x](https://…)``
shows as written; URLs in them are defanged (a WORD JOINER after ``:`` and ``www``) so no
client turns them into a link; bidi controls are removed and right-to-left text isolated
so a name cannot reorder the rest of its line; each is cut to a bound. ``TextBlock``s
(markdown) carry only our own words and times. ``fallbackText`` (markdown) is escaped.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from watchdog.alerts import Alert, Notification, worst_first
from watchdog.durations import format_duration

CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
# "The message size limit is 28 KB. When the size exceeds 28 KB, you receive an error."
# (Microsoft Learn, "Create an Incoming Webhook", which the Workflows trigger inherits:
# https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook).
# Read as 28,000 bytes of the UTF-8 request body, the stricter reading of KB; the card is
# built to leave 2,000 of them for what Power Automate wraps around it.
TEAMS_LIMIT = 28_000
BUDGET = TEAMS_LIMIT - 2_000
MAX_LISTED = 30  # a group card lists at most this many alerts, then "…and N more"
MAX_NAME = 200  # characters of a name, an ID, a rule
MAX_NOTE = 1_000  # characters of a rule's summary or description
MAX_FALLBACK = 500

STYLES = {"critical": "attention", "warning": "warning", "info": "accent"}
ICONS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
RESOLVED_STYLE, RESOLVED_ICON = "good", "✅"
_CONTEXT_KEYS = ("device", "device_version", "sdk", "sdk_version", "city", "country", "network")

# explicit bidi embeddings, overrides and isolates (Trojan Source): removed from names
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)], None)
# C0/C1 controls and lone surrogates as U+FFFD (a tab and newlines as a space): one line
_UNSHOWABLE = {
    **dict.fromkeys([*range(0x20), *range(0x7F, 0xA0), *range(0xD800, 0xE000)], "\ufffd"),
    **dict.fromkeys([0x09, 0x0A, 0x0D], " "),
    **_BIDI_CONTROLS,
}
_NOTE_UNSHOWABLE = {**_UNSHOWABLE, 0x0A: "\n"}
_FSI, _PDI, _WJ = "\u2068", "\u2069", "\u2060"
_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>|~"})


def clean(text: str, limit: int = MAX_NAME, *, lines: bool = False) -> str:
    """Hostile text made safe for a ``TextRun``: one line (unless ``lines``), no controls,
    URLs that no client links, right-to-left text isolated, at most ``limit`` characters."""
    text = text[: limit + 1]  # before any work: a megabyte name costs no more than this
    if not text.isprintable():
        text = text.replace("\r\n", "\n").translate(_NOTE_UNSHOWABLE if lines else _UNSHOWABLE)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    if "://" in text or "www." in text.lower():
        text = text.replace("://", ":" + _WJ + "//").replace("www.", "www" + _WJ + ".")
        text = text.replace("WWW.", "WWW" + _WJ + ".")
    if any(unicodedata.bidirectional(c) in ("R", "AL") for c in text):
        text = _FSI + text + _PDI
    return text


def markdown(text: str) -> str:
    """Text for a markdown field (``fallbackText``): every markdown character escaped."""
    return clean(text, MAX_FALLBACK).translate(_MARKDOWN)


def card_time(moment: datetime) -> str:
    """A time each reader sees in their own zone (the card's DATE/TIME functions)."""
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def lasted(start: datetime, end: datetime) -> str:
    return format_duration(max(end - start, timedelta(0)))


def run(text: str, **style: Any) -> dict[str, Any]:
    """A ``TextRun``: text shown as written, never markdown."""
    return {"type": "TextRun", "text": text, **style}


def rich(*inlines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": list(inlines), **extra}


def text_block(text: str, **style: Any) -> dict[str, Any]:
    """A ``TextBlock`` of our own words (markdown): never give it hostile text."""
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def labelled(label: str, value: str, **style: Any) -> dict[str, Any]:
    """``Label: value`` on one line, the label bold, the value a hostile-safe run."""
    return rich(run(f"{label}: ", weight="Bolder"), run(value, **style), spacing="Small")


def icon(alert: Alert) -> str:
    return RESOLVED_ICON if alert.status == "resolved" else ICONS.get(alert.severity, "🟠")


def style(notification: Notification) -> str:
    """The header's colour: green once nothing fires, else the worst firing severity's."""
    firing = [a for a in notification.alerts if a.status == "firing"]
    if not firing:
        return RESOLVED_STYLE
    return STYLES.get(worst_first(firing)[0].severity, "warning")


def status_word(notification: Notification) -> str:
    if notification.event == "acknowledged":
        return "ACKNOWLEDGED"
    if notification.event == "unacknowledged":
        return "UNACKNOWLEDGED"
    if all(a.status == "resolved" for a in notification.alerts):
        return "RESOLVED"
    return "STILL FIRING" if notification.repeat else "FIRING"


def who(alert: Alert) -> str:
    if alert.scope != "participant":
        return clean(alert.who)
    name = clean(alert.participant_name or "unknown participant")
    return f"{name} ({clean(alert.participant_id)})" if alert.participant_id else name


def where(alert: Alert) -> str:
    if alert.scope == "daemon":
        return "videosdk-watchdog"
    meeting = f"meeting {clean(alert.meeting_id)}" if alert.meeting_id else "unknown meeting"
    return f"{meeting}, session {clean(alert.session_id)}" if alert.session_id else meeting


def value(alert: Alert) -> str:
    """The value against the threshold with its op: ``qualityScore.video = 2.41 (threshold
    < 3)``; a recovery says what it came back to."""
    condition = clean(alert.condition)
    if alert.status == "resolved" and not alert.reason:
        return f"back to {condition}"
    if alert.status == "resolved":
        return f"last {condition}"
    return condition


def timing(alert: Alert) -> str:
    """Since when and for how long, in each reader's time zone (our words: a TextBlock)."""
    if alert.status == "resolved" and alert.ends_at is not None:
        return (
            f"Lasted {lasted(alert.starts_at, alert.ends_at)}: "
            f"{card_time(alert.starts_at)} to {card_time(alert.ends_at)}"
        )
    now = max(alert.sample_time, alert.fired_at)
    return f"Going on for {lasted(alert.starts_at, now)}, since {card_time(alert.starts_at)}"


def _context(alert: Alert) -> str:
    ctx = alert.context
    device = " ".join(ctx[k] for k in ("device", "device_version") if ctx.get(k))
    sdk = " ".join(ctx[k] for k in ("sdk", "sdk_version") if ctx.get(k))
    place = ", ".join(ctx[k] for k in ("city", "country") if ctx.get(k))
    parts = [device, f"SDK {sdk}" if sdk else "", place, ctx.get("network", "")]
    parts.append(f"fingerprint {alert.fingerprint}")
    return " · ".join(clean(p) for p in parts if p)


def headline(notification: Notification) -> str:
    """One line: what a client that cannot draw the card shows (escaped for markdown)."""
    alerts = notification.alerts
    prefix = "(test) " if notification.test else ""
    word = status_word(notification)
    if len(alerts) == 1:
        alert = alerts[0]
        line = f"{icon(alert)} {word} [{alert.severity}] {alert.rule}: {alert.who}"
        return markdown(f"{prefix}{line} in {alert.place}: {alert.condition}")
    firing = sum(a.status == "firing" for a in alerts)
    return markdown(f"{prefix}{word}: {firing} of {len(alerts)} alerts firing in {alerts[0].place}")


def _header(notification: Notification, title: list[dict[str, Any]]) -> dict[str, Any]:
    head = icon(worst_first(notification.alerts)[0])
    word = status_word(notification)
    if notification.event != "alert":
        head = "👤"
    items: list[dict[str, Any]] = []
    if notification.test:
        items.append(text_block("🧪 Test alert from `videosdk-watchdog notify-test`", size="Small"))
    items.append(text_block(f"{head} {word}", weight="Bolder", size="Medium"))
    items.append(rich(*title, spacing="None"))
    if notification.event != "alert" and notification.actor:
        items.append(labelled("By", clean(notification.actor)))
    return {"type": "Container", "style": style(notification), "bleed": True, "items": items}


def _single(notification: Notification, alert: Alert) -> list[dict[str, Any]]:
    title = f"{clean(alert.rule)}: {who(alert)}"
    body = [
        _header(notification, [run(title, weight="Bolder", size="Large")]),
        labelled("Rule", f"{clean(alert.rule)} [{clean(alert.severity)}]"),
        labelled("Participant" if alert.scope == "participant" else "About", who(alert)),
        labelled("Where", where(alert)),
        labelled("Value", value(alert)),
    ]
    if alert.sparkline:
        body.append(labelled("Trend", clean(alert.sparkline), fontType="Monospace"))
    body.append(text_block(timing(alert), spacing="Small"))
    if alert.reason:
        body.append(labelled("Reason", clean(alert.reason)))
    if alert.likely_cause:
        body.append(labelled("Likely cause", clean(alert.likely_cause)))
        for line in alert.evidence:
            body.append(rich(run(clean(line), isSubtle=True), spacing="None"))
    for note in (alert.summary, alert.description):
        if note and note.strip():
            body.append(rich(run(clean(note.strip(), MAX_NOTE, lines=True)), separator=True))
    body.append(rich(run(_context(alert), isSubtle=True, size="Small"), separator=True))
    return body


def _listed(alert: Alert) -> dict[str, Any]:
    """One alert of a group: a line saying which, one with the value, one with the time."""
    items = [
        rich(
            run(f"{icon(alert)} "),
            run(clean(alert.rule), weight="Bolder"),
            run(f" [{clean(alert.severity)}] — {who(alert)}"),
        ),
        rich(run(value(alert)), spacing="None"),
    ]
    if alert.sparkline:
        items.append(rich(run(clean(alert.sparkline), fontType="Monospace"), spacing="None"))
    if alert.reason:
        items.append(rich(run(clean(alert.reason), isSubtle=True), spacing="None"))
    if alert.likely_cause:
        items.append(rich(run(f"Likely cause: {clean(alert.likely_cause)}"), spacing="None"))
    items.append(text_block(timing(alert), isSubtle=True, size="Small", spacing="None"))
    return {"type": "Container", "items": items, "separator": True}


def _size(element: Any) -> int:
    return len(encode(element))


def _group(notification: Notification, budget: int) -> list[dict[str, Any]]:
    """The header and the alerts worst first, as many as fit ``budget`` bytes (and
    ``MAX_LISTED``), then how many more there are."""
    alerts = worst_first(notification.alerts)
    firing = sum(a.status == "firing" for a in alerts)
    place = alerts[0].place
    counts = f"{firing} firing, {len(alerts) - firing} resolved"
    if notification.watched is not None:
        counts += f", {notification.watched} watched in the meeting"
    title = [run(f"{len(alerts)} alerts in {clean(place)}", weight="Bolder", size="Large")]
    body = [_header(notification, title), text_block(counts, isSubtle=True, spacing="Small")]
    room = budget - _size(body) - _size(_more(len(alerts), place)) - 2
    for alert in alerts[:MAX_LISTED]:
        element = _listed(alert)
        cost = _size(element) + 1  # and its comma
        if cost > room:
            break
        body.append(element)
        room -= cost
    hidden = len(alerts) - (len(body) - 2)
    if hidden:
        body.append(_more(hidden, place))
    return body


def _more(hidden: int, place: str) -> dict[str, Any]:
    return rich(run(f"…and {hidden} more alerts in {clean(place)}", isSubtle=True), separator=True)


@dataclass(frozen=True, slots=True)
class Message:
    """What is posted: the Workflows body and its exact bytes."""

    body: dict[str, Any]
    raw: bytes

    @property
    def card(self) -> dict[str, Any]:
        content: dict[str, Any] = self.body["attachments"][0]["content"]
        return content


def adaptive_card(notification: Notification, budget: int = BUDGET) -> dict[str, Any]:
    alerts = notification.alerts
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "fallbackText": headline(notification),
        "body": [],
    }
    if len(alerts) > 1:
        card["body"] = _group(notification, budget - _size(envelope(card)))
        return card
    # every text bounded (MAX_NAME, MAX_NOTE): one alert's card is at most ~21 KB even with
    # each at its bound in 4-byte characters (tests/test_teams.py holds it to that)
    card["body"] = _single(notification, alerts[0])
    return card


def envelope(card: dict[str, Any]) -> dict[str, Any]:
    """The body the "When a Teams webhook request is received" trigger takes."""
    return {
        "type": "message",
        "attachments": [{"contentType": CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def message(notification: Notification, budget: int = BUDGET) -> Message:
    body = envelope(adaptive_card(notification, budget))
    return Message(body, encode(body))
