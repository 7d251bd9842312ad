"""``history``, ``report rules`` and ``replay --from-history``: the alert history for people
(watchdog.state.history) and the stored minute summaries (watchdog.state.minutes)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from watchdog.alerting.callreport import read_call, sides
from watchdog.alerting.callreport import render as render_call
from watchdog.alerting.noise import episodes, render, rule_noise
from watchdog.config.problems import ConfigError
from watchdog.durations import format_time, parse_instant
from watchdog.engine import backtest
from watchdog.engine.evaluate import Transition
from watchdog.engine.rules import RuleSet
from watchdog.state.history import MAX_LIMIT, Event, Filters
from watchdog.state.minutes import as_samples
from watchdog.state.store import Store
from watchdog.videosdk.stats import ParticipantInfo

REPLAY_CHUNK = 500  # participants replayed together (a meeting's stay in one chunk)


def add_commands(sub: Any, with_config: Callable[[Any], Any]) -> None:
    """The ``history`` and ``report`` parsers."""
    history = with_config(sub.add_parser("history", help="what alerts did: transitions, ..."))
    history.add_argument("--rule", help="only this rule's alerts")
    history.add_argument("--meeting", help="only alerts in this meeting (or session) ID")
    history.add_argument("--participant", help="only alerts about this participant ID")
    history.add_argument(
        "--kind", help="only this kind: firing, resolved, sent, failed, acknowledged, ..."
    )
    history.add_argument("--since", default="1d", help="ISO-8601 or a duration ago (default 1d)")
    history.add_argument("--until", help="ISO-8601 or a duration ago (default: now)")
    history.add_argument(
        "--limit", type=int, default=100, help=f"newest events shown (1-{MAX_LIMIT}, default 100)"
    )
    history.add_argument("--json", action="store_true", help="one JSON object a line")
    report = sub.add_parser("report", help="reports from the history")
    kinds = report.add_subparsers(dest="report", required=True, metavar="REPORT")
    rules = with_config(kinds.add_parser("rules", help="per-rule noise, for tuning"))
    rules.add_argument("--since", default="7d", help="ISO-8601 or a duration ago (default 7d)")
    rules.add_argument("--until", help="ISO-8601 or a duration ago (default: now)")
    rules.add_argument("--json", action="store_true")
    meeting = with_config(kinds.add_parser("meeting", help="what one call was like"))
    meeting.add_argument("meeting", metavar="MEETING_ID", help="a meeting ID or a session ID")
    meeting.add_argument("--json", action="store_true")


def instant(flag: str, value: str, now: datetime) -> datetime:
    try:
        return parse_instant(value, now)
    except ValueError as exc:
        raise ConfigError.single(flag, None, str(exc)) from None


def filters_of(args: argparse.Namespace, now: datetime) -> Filters:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise ConfigError.single("--limit", None, f"from 1 to {MAX_LIMIT}")
    return Filters(
        since=instant("--since", args.since, now),
        until=instant("--until", args.until, now) if args.until else None,
        rule=args.rule,
        meeting=args.meeting,
        participant=args.participant,
        kind=args.kind,
        limit=args.limit,
    )


def line(event: Event) -> str:
    """One event as a person reads it."""
    parts = [format_time(event.at), event.kind]
    if event.rule:
        parts.append(event.rule)
    where = event.participant_id or event.meeting_id or event.session_id
    if where:
        parts.append(f"@{where}")
    if event.value is not None:
        parts.append(f"value={event.value:g}")
    if event.notifier:
        parts.append(f"to {event.notifier}")
    if event.actor:
        parts.append(f"by {event.actor}" + (f" ({event.source})" if event.source else ""))
    if event.silence_id:
        parts.append(f"silence {event.silence_id[:8]}")
    if event.detail:
        parts.append(f"- {event.detail}")
    return " ".join(parts)


def print_history(store: Store, args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    page = store.history.query(filters_of(args, now), now)
    for event in page.events:
        print(json.dumps(event.to_json()) if args.json else line(event))
    if page.more and not args.json:
        print(f"(older events match too: --until {format_time(page.events[0].at)})")


def print_rule_report(store: Store, args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    since = instant("--since", args.since, now)
    until = instant("--until", args.until, now) if args.until else now
    found = episodes(store.history.transitions(since, until))
    actions = store.history.actions(since, ("acknowledge", "inhibit"))
    noise = rule_noise(found, actions, store.silences.all(), since, until)
    if args.json:
        print(
            json.dumps(
                {
                    "since": format_time(since),
                    "until": format_time(until),
                    "rules": [n.to_json() for n in noise],
                },
                indent=2,
            )
        )
    else:
        print(render(noise, since, until))


def print_meeting_report(store: Store, rules: RuleSet, args: argparse.Namespace) -> int:
    """Exit 1 when no minute of the meeting was kept (unknown, or pruned)."""
    call = read_call(store.minutes, store.history, args.meeting, sides(rules))
    if call is None:
        print(f"no minutes kept of meeting {args.meeting}", file=sys.stderr)
        return 1
    report = call.report
    print(json.dumps(report.to_json(), indent=2) if args.json else render_call(report))
    return 0


def replay_history(
    store: Store, rules: RuleSet, since: datetime, until: datetime, pick: str = "avg"
) -> Iterator[Transition]:
    """The rules over the stored minute summaries: each participant-minute is one sample
    (its average, or its min or max) at the minute's middle. Participants are replayed a
    chunk at a time, a meeting's together (meeting rules see them all)."""
    who = store.minutes.participants(since, until)
    ordered = sorted(who.items(), key=lambda item: (item[1].meeting_id or "", item[0]))
    chunk: list[tuple[int, ParticipantInfo]] = []
    for index, (key, info) in enumerate(ordered):
        chunk.append((key, info))
        after = ordered[index + 1][1].meeting_id if index + 1 < len(ordered) else None
        last = index + 1 == len(ordered)
        if last or (len(chunk) >= REPLAY_CHUNK and after != info.meeting_id):
            minutes = store.minutes.read(since, until, [k for k, _ in chunk])
            series = [(i, as_samples(minutes.get(k, []), pick)) for k, i in chunk]
            yield from backtest.run(rules, series)
            chunk = []
