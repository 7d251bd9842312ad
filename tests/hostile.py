"""Hypothesis strategies for alerts whose every text is hostile, as notifiers must render them.

Names, IDs, rules, summaries, labels and context drawn from ``&<>`` storms, Slack and
HTML markup, huge repeats, emoji sequences, combining marks, control characters and
lone surrogates; one to seventy alerts (by default) in a notification, firing or resolved.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import strategies as st

from watchdog.alerts import Notification
from watchdog.testing import make_alert, make_notification, resolved

PIECES = [
    "&", "<", ">", "&amp;", "&lt;", "<!here>", "<@U0ONCALL1>", "<!date^1^{time}|x>", "*", "_",
    "`", "~", "\n", "\r\n", "\r", "\t", " ", ", ", "🔴", "👩‍👩‍👧‍👦", "e\u0301", "\u200d", "\ufe0f",
    "\x00", "\x0c", "\x1b", "\x7f", "\u0085", "\ufeff", "\ufffe", "\U0010ffff", "\ud83d",
    "名前", "<b>", "</table>", "=?utf-8?q?x?=", "x",
]  # fmt: skip
STORM = st.lists(st.sampled_from(PIECES), max_size=300).map("".join)
HUGE = st.tuples(
    st.sampled_from(["&", "<>", "名前", "🎥", "Participant with a long name, ", "a\n", "x"]),
    st.integers(0, 3500),
).map(lambda piece: piece[0] * piece[1])
TEXT = st.one_of(st.text(max_size=200), STORM, HUGE)


@st.composite
def hostile_notifications(draw: st.DrawFn, max_alerts: int = 70) -> tuple[Notification, list[str]]:
    """A notification of hostile alerts, and the pool of texts they were drawn from."""
    pool = draw(st.lists(TEXT, min_size=1, max_size=5))
    index = st.integers(0, len(pool) - 1)

    def pick() -> str:
        return pool[draw(index)]

    def maybe() -> str | None:
        return pick() if draw(st.booleans()) else None

    alerts = []
    for i in range(draw(st.integers(1, max_alerts))):
        alert = make_alert(
            participant_id=f"p{i}",  # a fingerprint of its own; the IDs shown are below
            participant_name=maybe(),
            meeting_id=maybe(),
            severity=draw(st.sampled_from(["critical", "warning", "info"]))
            if draw(st.booleans())
            else pick(),
            metric=pick(),
            summary=maybe(),
            description=maybe(),
            sparkline=maybe(),
            value=draw(st.floats(allow_nan=True) | st.none()),
            labels={pick(): pick()},
            context={k: pick() for k in ("device", "sdk", "city", "country", "network")},
        )
        alert = replace(alert, rule=pick(), session_id=pick(), participant_id=maybe() or "")
        if draw(st.booleans()):
            after = timedelta(seconds=draw(st.integers(0, 10**6)))
            alert = resolved(alert, after, reason=maybe())
        alerts.append(alert)
    notification = replace(
        make_notification(*alerts), repeat=draw(st.booleans()), test=draw(st.booleans())
    )
    return notification, pool
