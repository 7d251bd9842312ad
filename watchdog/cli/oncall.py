"""``oncall``: who is on call now and next per team, and overrides of the schedule."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

from watchdog.alerting.oncall import Feeds, Schedules
from watchdog.config.problems import ConfigError
from watchdog.config.settings import Config
from watchdog.durations import format_duration, format_time, parse_duration, parse_time
from watchdog.state.store import Store

EXIT_OK, EXIT_CONFIG = 0, 2


def add_parser(sub: Any, with_config: Any) -> None:
    oncall = with_config(sub.add_parser("oncall", help="who is on call now and next, overrides"))
    oncall.add_argument("--team", help="only this team")
    oncall.add_argument("--json", action="store_true")
    oncall.add_argument("--at", metavar="TIME", help="an ISO-8601 time instead of now")
    actions = oncall.add_subparsers(dest="action", metavar="ACTION")
    override = with_config(
        actions.add_parser("override", help="put someone on call: add (default), list, remove")
    )
    override.add_argument("verb", nargs="?", choices=["add", "list", "remove"], default="add")
    override.add_argument("id", nargs="?", metavar="ID", help="remove: the override's ID (prefix)")
    override.add_argument("--team", dest="override_team", metavar="TEAM")
    override.add_argument("--person", metavar="NAME", help="a name from the team's people")
    override.add_argument("--from", dest="starts", metavar="TIME", help="ISO-8601 (default: now)")
    override.add_argument("--until", metavar="TIME", help="ISO-8601 end")
    override.add_argument("--for", dest="length", metavar="DURATION", help="or a length, e.g. 8h")
    override.add_argument("--by", help="who (default: the current user)")
    override.add_argument("--json", dest="override_json", action="store_true")


def schedules(config: Config, store: Store, *, fetch: bool = True) -> Schedules:
    """The daemon's schedules over its state database: saved feed copies, then a fetch."""
    feeds = Feeds(config.settings.oncall, config.resolve, store.oncall)
    feeds.load_saved()
    if fetch:
        feeds.refresh_all()
    return Schedules(config.settings.oncall, feeds, store.oncall)


def _time(text: str, what: str) -> datetime:
    found = parse_time(text)
    if found is None:
        raise ConfigError.single(what, None, f"{text!r} is not an ISO-8601 time")
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def run(config: Config, store: Store, args: argparse.Namespace) -> int:
    if args.action == "override":
        return _override(config, store, args)
    team = args.team
    if team is not None and team not in config.settings.oncall.teams:
        known = ", ".join(config.settings.oncall.teams) or "none configured"
        print(f"error: no team {team!r} (teams: {known})", file=sys.stderr)
        return EXIT_CONFIG
    at = _time(args.at, "--at") if args.at else datetime.now(UTC)
    rows = schedules(config, store).summary(at, team)
    if args.json:
        print(json.dumps({"at": format_time(at), "teams": rows}, indent=2))
    elif not rows:
        print("no teams configured (oncall: teams: in the config)")
    else:
        print("\n".join(render(rows)))
    return EXIT_OK


def render(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        lines.append(f"{row['team']}:")
        for key in ("now", "next"):
            shift = row[key]
            if shift is None:
                lines.append(f"  {key:5} nobody")
                continue
            note = " (override)" if shift["override"] else ""
            lines.append(
                f"  {key:5} {shift['person']}{note} from {shift['start']} until {shift['end']}"
            )
        feed = row.get("feed")
        if feed and feed["error"]:
            lines.append(
                f"  calendar feed FAILING since {feed['failingSince']}: {feed['error']} "
                f"(copy in use fetched {feed['fetchedAt'] or 'never'}, last tried "
                f"{feed.get('checkedAt') or '-'})"
            )
    return lines


def _override(config: Config, store: Store, args: argparse.Namespace) -> int:
    known = schedules(config, store, fetch=False)
    actor = args.by or getpass.getuser()
    try:
        if args.verb == "list":
            rows = [
                {
                    "id": o.id,
                    "team": o.team,
                    "person": o.person,
                    "startsAt": format_time(o.starts_at),
                    "endsAt": format_time(o.ends_at),
                    "createdBy": o.created_by,
                    "source": o.source,
                }
                for o in known.overrides(args.override_team)
            ]
            if args.override_json:
                print(json.dumps(rows, indent=2))
            for row in [] if args.override_json else rows:
                print(
                    f"{row['id'][:8]}  {row['team']}: {row['person']} from {row['startsAt']} "
                    f"until {row['endsAt']} (by {row['createdBy']} from {row['source']})"
                )
            if not rows and not args.override_json:
                print("no overrides in force or to come")
            return EXIT_OK
        if args.verb == "remove":
            if not args.id:
                raise ValueError("give the override's ID: oncall override remove ID")
            removed = known.remove_override(args.id, actor, "cli")
            print(f"override {removed.id} removed ({removed.team}: {removed.person})")
            return EXIT_OK
        if not args.override_team or not args.person:
            raise ValueError("give --team and --person (and --until TIME or --for DURATION)")
        starts = _time(args.starts, "--from") if args.starts else datetime.now(UTC)
        if args.until:
            ends = _time(args.until, "--until")
        elif args.length:
            ends = starts + parse_duration(args.length)
        else:
            raise ValueError("give --until TIME or --for DURATION (e.g. --for 8h)")
        added = known.add_override(args.override_team, args.person, starts, ends, actor, "cli")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(added.id)
    print(
        f"{added.person} is on call for {added.team} from {format_time(added.starts_at)} for "
        f"{format_duration(added.ends_at - added.starts_at)}",
        file=sys.stderr,
    )
    return EXIT_OK
