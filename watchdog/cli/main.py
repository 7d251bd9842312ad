"""The ``videosdk-watchdog`` command line.

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage (systemd does not
restart on 2, so a bad config cannot loop).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from watchdog.alerting import silences
from watchdog.alerting.from_transitions import alert_from
from watchdog.cli import acks, history, oncall, outbox
from watchdog.cli.migrate import pending_note, run_migrate
from watchdog.cli.notifytest import send_test
from watchdog.cli.schemas import schema
from watchdog.cli.status import print_status
from watchdog.config.problems import ConfigError
from watchdog.config.settings import Config, load_config
from watchdog.delivery.host import config_redactor, load_plugins
from watchdog.durations import format_time, parse_duration, parse_time
from watchdog.engine.replay import problems_for_missing, replay
from watchdog.engine.rulecheck import semantic_problems
from watchdog.engine.rules import load_rules
from watchdog.engine.ruletests import load_tests, report, run_file
from watchdog.obs.logs import hide, setup_logging
from watchdog.redaction import Redactor
from watchdog.runtime.build import build, token, validate
from watchdog.runtime.clash import ImportClashError, ensure_no_clash
from watchdog.runtime.service import ServiceFailure, run
from watchdog.state.database import database_errors
from watchdog.state.store import Store

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
EXIT_SIGPIPE = 128 + 13  # what a shell reports for a command killed by SIGPIPE

log = logging.getLogger("watchdog")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videosdk-watchdog",
        description="Alerting daemon for VideoSDK call quality.",
    )
    parser.add_argument("--version", action="version", version="%(prog)s 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config",
            metavar="PATH",
            help="config file (default: $WATCHDOG_CONFIG or /etc/videosdk-watchdog/config.yaml)",
        )
        return p

    with_config(sub.add_parser("run", help="run the daemon"))
    check = with_config(sub.add_parser("check", help="validate the config and its rules"))
    check.add_argument("--rules", metavar="PATH", help="validate this rules file")
    check.add_argument(
        "--allow-empty",
        action="store_true",
        help="accept a rules file without rules (otherwise a warning and exit 2)",
    )
    once = with_config(sub.add_parser("once", help="one poll cycle; print what fires"))
    once.add_argument("--dry-run", action="store_true", help="do not save state or notify")
    replay = sub.add_parser("replay", help="backtest rules over saved stats responses")
    replay.add_argument("--rules", metavar="RULES", required=True)
    replay.add_argument("stats", metavar="STATS.json", nargs="*")
    with_config(replay)
    replay.add_argument(
        "--from-history",
        action="store_true",
        help="replay the state database's minute summaries (--since, --until) instead of files",
    )
    replay.add_argument("--since", default="7d", help="with --from-history (default 7d)")
    replay.add_argument("--until", help="with --from-history (default: now)")
    replay.add_argument(
        "--summary",
        choices=["avg", "min", "max"],
        default="avg",
        help="with --from-history: each minute's average (default), min or max as its sample",
    )
    replay.add_argument(
        "--now",
        metavar="TIME",
        help="end of the recording, for absent-data rules: an ISO-8601 time, or an offset "
        "after the newest sample such as 10m (default: gaps only)",
    )
    replay.add_argument(
        "--left",
        action="store_true",
        help="every participant left the call after its last recorded sample: alerts still "
        "firing then resolve with reason 'left while degraded'",
    )
    test_rules = sub.add_parser("test-rules", help="run the test cases in rules files")
    test_rules.add_argument("files", metavar="FILE", nargs="+")
    schema = sub.add_parser("schema", help="print the JSON Schema of the config or rules file")
    schema.add_argument("kind", choices=["config", "rules"])
    notify = with_config(sub.add_parser("notify-test", help="send a test alert via one notifier"))
    notify.add_argument("name", metavar="NAME")
    plugins = sub.add_parser("plugins", help="installed plugins and notifier types")
    plugins.add_argument("--json", action="store_true")
    with_config(sub.add_parser("token", help="print a freshly minted VideoSDK JWT"))
    migrate = with_config(sub.add_parser("migrate", help="show and apply state schema migrations"))
    migrate.add_argument("--dry-run", action="store_true", help="only list pending migrations")
    migrate.add_argument(
        "--from-sqlite", metavar="PATH", help="then copy all state from this SQLite file, once"
    )
    status = with_config(sub.add_parser("status", help="who is watched, and what is firing"))
    status.add_argument("--json", action="store_true")
    simulate = sub.add_parser("simulate", help="run a local VideoSDK API simulator")
    simulate.add_argument("--port", type=int, default=8787)
    simulate.add_argument(
        "--scenario",
        help="every participant follows this scenario; or a likely-cause meeting "
        "(cause-uplink, cause-sender-uplink, cause-downlink, cause-device, cause-platform, "
        "cause-noise)",
    )
    simulate.add_argument("--speed", type=float, default=1.0, help="sample seconds per second")
    simulate.add_argument("--sample-period", type=float, default=10.0, metavar="SECONDS")
    simulate.add_argument("--api-key", default=os.environ.get("VIDEOSDK_API_KEY", "sim-key"))
    simulate.add_argument(
        "--churn",
        type=int,
        metavar="ROOMS",
        help="also simulate ROOMS rooms whose participants join and leave (20 per room)",
    )
    simulate.add_argument("--webhook-url", help="deliver signed VideoSDK webhooks here")
    demo = sub.add_parser("demo", help="simulator + daemon + console alerts, no account needed")
    demo.add_argument("--speed", type=float, default=10.0, help="sample seconds per second")
    _alerting_commands(sub, with_config)
    oncall.add_parser(sub, with_config)
    history.add_commands(sub, with_config)
    return parser


def _alerting_commands(sub: Any, with_config: Any) -> None:
    """``silence`` and ``outbox``: the alert manager's state, for the person on call."""
    silence = sub.add_parser("silence", help="mute alerts for a while (add, list, expire)")
    actions = silence.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = with_config(actions.add_parser("add", help="silence alerts matching every --match"))
    add.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="MATCHER",
        help="label=value, label!=value, label=~regex or label!~regex (repeatable); labels: "
        "alertname, severity, meeting_id, session_id, participant_id and the rules' own labels",
    )
    add.add_argument("--for", dest="duration", default="1h", help="how long (default 1h)")
    add.add_argument("--comment", default="", help="why (required)")
    add.add_argument("--author", help="who (default: the current user)")
    listing = with_config(actions.add_parser("list", help="active silences"))
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--expired", action="store_true", help="include expired silences")
    end = with_config(actions.add_parser("expire", help="end a silence now"))
    end.add_argument("id", metavar="ID", help="the silence ID (or a unique prefix)")
    ack = with_config(sub.add_parser("ack", help="acknowledge a firing alert: you own it"))
    ack.add_argument("fingerprint", metavar="FINGERPRINT", help="the alert (or a unique prefix)")
    ack.add_argument("--by", help="who (default: the current user)")
    ack.add_argument("--note", default="", help="what you are doing about it")
    unack = with_config(sub.add_parser("unack", help="give an acknowledged alert back"))
    unack.add_argument("fingerprint", metavar="FINGERPRINT", help="the alert (or a unique prefix)")
    unack.add_argument("--by", help="who (default: the current user)")
    ladders = with_config(
        sub.add_parser("escalations", help="where each firing alert is on its escalation ladder")
    )
    ladders.add_argument("--json", action="store_true")
    outbox = sub.add_parser("outbox", help="notifications waiting for delivery")
    outbox_actions = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    olist = with_config(outbox_actions.add_parser("list", help="pending notifications"))
    olist.add_argument("--json", action="store_true")
    retry = with_config(
        outbox_actions.add_parser("retry", help="try these notifications again at once")
    )
    retry.add_argument("ids", metavar="ID", nargs="*", help="IDs or prefixes (default: all)")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        ensure_no_clash()
    except ImportClashError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    args = _parser().parse_args(argv)

    setup_logging(os.environ.get("WATCHDOG_LOG__LEVEL", "info"))
    try:
        code = int(_COMMANDS[args.command](args))
        sys.stdout.flush()  # a reader gone early (``| head``) shows here, not at exit
        return code
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """``schema config | head``: the reader has what it wanted. Exit quietly with the
    status a tool killed by SIGPIPE has, and let nothing write to the closed pipe again
    (Python would complain at exit), as the ``signal`` module's docs advise."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_SIGPIPE


def _loaded(args: argparse.Namespace) -> tuple[Config, Redactor]:
    """The daemon's config (a file must exist: these commands read its state or
    credentials), logging set up from it, and its secrets hidden from every log line."""
    config = load_config(args.config, required=True)
    setup_logging(config.settings.log.level, config.settings.log.format)
    redactor = config_redactor(config, load_plugins())
    hide(redactor)
    return config, redactor


def _config(args: argparse.Namespace) -> Config:
    return _loaded(args)[0]


def cmd_run(args: argparse.Namespace) -> int:

    config = _config(args)
    try:
        code = run(config)
    except ServiceFailure as exc:
        log.error("%s; exiting with status 1", exc)
        return EXIT_FAILURE
    except ConfigError:
        raise
    except Exception:
        log.exception("the daemon failed unexpectedly; exiting with status 1")
        return EXIT_FAILURE
    hung = _stuck_threads(deadline=time.monotonic() + 1.0)
    if hung:  # a notifier stuck in send() must not keep a stopped daemon alive
        log.warning("exiting while %d threads are stuck: %s", len(hung), ", ".join(hung))
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


def _stuck_threads(deadline: float) -> list[str]:
    """Threads still running after the daemon stopped (idle pool workers get until deadline)."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    for thread in others:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return [t.name for t in others if t.is_alive()]


def cmd_check(args: argparse.Namespace) -> int:

    if args.rules and not args.config:
        ruleset = load_rules([args.rules])
        tests = load_tests(args.rules, ruleset)
        for warning in [*ruleset.empty_problems(), *semantic_problems(ruleset)]:
            print(warning, file=sys.stderr)
        if ruleset.empty and not args.allow_empty:
            return EXIT_CONFIG
        suffix = f" ({len(tests)} tests: run them with test-rules)" if tests else ""
        print(f"{args.rules}: {len(ruleset)} rules OK{suffix}")
        return EXIT_OK
    config = load_config(args.config)
    if args.rules:
        config = config.__class__(
            settings=config.settings.model_copy(update={"rules": [os.path.abspath(args.rules)]}),
            path=config.path,
            document=config.document,
        )
    rules, problems = validate(config)
    for problem in problems:
        print(problem, file=sys.stderr)
    if any(p.severity == "error" for p in problems) or (rules.empty and not args.allow_empty):
        return EXIT_CONFIG
    watch = config.settings.watch
    found = (
        f"; discovery in {len(watch.rooms)} rooms"
        if watch.rooms
        else "; discovery in all rooms"
        if watch.discovers
        else ""
    ) + (" with webhooks" if watch.webhook else "")
    note = pending_note(config)
    if note:
        print(note, file=sys.stderr)
    print(
        f"{config.path or 'environment'}: OK ({len(rules)} rules, "
        f"{len(config.settings.notifiers)} notifiers, "
        f"{len(watch.participants)} watched participants{found})"
    )
    return EXIT_OK


def cmd_once(args: argparse.Namespace) -> int:

    config = _config(args)
    runtime = build(config, dry_run=args.dry_run)
    try:
        report = runtime.cycle(discover=True)  # the daemon's cycle, discovery first
        for transition in report.transitions:
            alert = alert_from(transition)
            print(
                f"{alert.status.upper()} {alert.rule}: {alert.who} in {alert.where}: "
                f"{alert.condition} at {transition.time.isoformat()}"
            )
        if not args.dry_run:
            runtime.manager.flush(final=True)
            left = runtime.dispatcher.drain(config.settings.delivery.timeout.total_seconds())
            if left:
                print(f"{left} notifications are still waiting in the outbox", file=sys.stderr)
        print(
            f"polled {report.polled} participants ({report.failed} failed), "
            f"{report.samples} new samples, {len(report.transitions)} transitions",
            file=sys.stderr,
        )
    finally:
        runtime.close()
    return EXIT_FAILURE if report.polled and report.failed == report.polled else EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    if args.from_history:
        return _replay_history(args)
    if not args.stats:
        raise ConfigError.single("replay", None, "give STATS.json files, or --from-history")
    missing = problems_for_missing(args.stats)
    if missing:
        raise ConfigError(missing)
    rules = load_rules([args.rules])
    now: datetime | timedelta | None = None
    if args.now is not None:
        now = parse_time(args.now)
        if now is None:
            try:
                now = parse_duration(args.now)
            except ValueError:
                raise ConfigError.single(
                    "--now",
                    None,
                    f"{args.now!r} is neither an ISO-8601 time nor an offset after the "
                    "newest sample like 10m",
                ) from None
    for transition in replay(rules, args.stats, now=now, left=args.left):
        print(json.dumps(transition.to_json()))
    return EXIT_OK


def _replay_history(args: argparse.Namespace) -> int:
    if args.stats:
        raise ConfigError.single("replay", None, "--from-history takes no STATS.json files")
    rules = load_rules([args.rules])
    _, _, store = _state(args)
    try:
        now = datetime.now(UTC)
        since = history.instant("--since", args.since, now)
        until = history.instant("--until", args.until, now) if args.until else now
        for transition in history.replay_history(store, rules, since, until, args.summary):
            print(json.dumps(transition.to_json()))
    finally:
        store.close()
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    _, _, store = _state(args)
    try:
        history.print_history(store, args)
    finally:
        store.close()
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    config, _, store = _state(args)
    try:
        if args.report == "meeting":
            return history.print_meeting_report(store, load_rules(config.rule_paths), args)
        history.print_rule_report(store, args)
    finally:
        store.close()
    return EXIT_OK


def cmd_test_rules(args: argparse.Namespace) -> int:
    """Exit 0 when every test passes, 1 when one fails, 2 when a file is malformed."""
    failed = 0
    problems = []
    for path in args.files:
        try:
            outcomes, _ = run_file(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for line in report(path, outcomes):
            print(line)
        failed += sum(not outcome.passed for outcome in outcomes)
    if problems:
        raise ConfigError(problems)
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    types = load_plugins().notifier_types if args.kind == "config" else None
    print(json.dumps(schema(args.kind, types), indent=2))
    return EXIT_OK


def cmd_notify_test(args: argparse.Namespace) -> int:

    config, redactor = _loaded(args)
    return send_test(config, args.name, redactor)


def cmd_plugins(args: argparse.Namespace) -> int:
    """Exit 1 when a plugin failed to load or register, so a deploy script notices."""
    host = load_plugins()
    infos = list(host.plugins.values())
    failed = EXIT_FAILURE if any(info.error for info in infos) else EXIT_OK
    if args.json:
        print(json.dumps([i.to_json() for i in infos], indent=2))
        return failed
    for info in infos:
        version = info.version or "?"
        types = ", ".join(info.notifier_types) or "-"
        line = f"{info.name} {version} ({info.module}): notifier types: {types}"
        if info.error:
            line += f"\n    ERROR: {info.error}"
        print(line)
    return failed


def cmd_token(args: argparse.Namespace) -> int:

    config = _config(args)
    print(token(config))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    config, redactor = _loaded(args)
    return print_status(config, sys.stdout, as_json=args.json, redact=redactor)


def cmd_simulate(args: argparse.Namespace) -> int:
    # the simulator is imported by the two commands that run it, never by the daemon's
    from watchdog.sim.simulator import serve  # noqa: PLC0415

    secret = os.environ.get("VIDEOSDK_SECRET_KEY", "sim-secret-for-local-testing-only-0123")
    return serve(
        args.port,
        api_key=args.api_key,
        secret=secret,
        scenario=args.scenario,
        speed=args.speed,
        sample_period=args.sample_period,
        churn_rooms=args.churn,
        webhook_url=args.webhook_url,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from watchdog.sim.demo import run_demo  # noqa: PLC0415 - see cmd_simulate

    return run_demo(speed=args.speed)


def cmd_migrate(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        return run_migrate(config, sys.stdout, dry_run=args.dry_run, from_sqlite=args.from_sqlite)
    except database_errors() as exc:
        log.error("the state database failed: %s", exc)
        return EXIT_FAILURE


def _state(args: argparse.Namespace) -> tuple[Config, Redactor, Store]:
    config, redactor = _loaded(args)
    return config, redactor, Store(config.state_url)


def cmd_silence(args: argparse.Namespace) -> int:
    config, _, store = _state(args)
    try:
        if args.action == "add":
            silence = silences.add(
                store.silences, args.match, args.duration, args.comment, created_by=args.author
            )
            for warning in silences.old_names(args.match):
                print(f"warning: {warning}", file=sys.stderr)
            _warn_unknown_labels(config, args.match)
            print(silence.id)
            print(
                f"silenced {' '.join(str(m) for m in silence.matchers)} until "
                f"{format_time(silence.ends_at)}",
                file=sys.stderr,
            )
        elif args.action == "list":
            rows = silences.describe(store.silences, store.alert_log, include_expired=args.expired)
            print(silences.to_json(rows) if args.json else silences.render(rows))
        else:
            silence, was_active = silences.expire(store.silences, args.id)
            state = "expired" if was_active else "had already ended"
            print(f"silence {silence.id} {state}")
    finally:
        store.close()
    return EXIT_OK


def _warn_unknown_labels(config: Config, matchers: list[str]) -> None:
    try:
        rules = load_rules(config.rule_paths)
    except ConfigError:
        return
    labels = {name for rule in rules for name in rule.labels}
    for name in silences.unknown_names(matchers, labels):
        print(f"warning: no rule sets a label {name!r}; check the spelling", file=sys.stderr)


def cmd_ack(args: argparse.Namespace) -> int:
    config, _, store = _state(args)
    try:
        if args.command == "ack":
            done, message = acks.ack(config, store, args.fingerprint, args.by, args.note)
        else:
            done, message = acks.unack(config, store, args.fingerprint, args.by)
    finally:
        store.close()
    print(message)
    return EXIT_OK if done else EXIT_FAILURE


def cmd_escalations(args: argparse.Namespace) -> int:
    config, _, store = _state(args)
    try:
        rows = acks.escalations(config, store)
    finally:
        store.close()
    print(acks.to_json(rows) if args.json else acks.render(rows))
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    config, redactor, store = _state(args)
    try:
        if args.action == "list":  # rows written before this redaction rule are masked too
            rows = outbox.describe(store.outbox, config.settings.delivery.warn_after)
            rows = redactor.data(rows)
            print(outbox.to_json(rows) if args.json else outbox.render(rows))
        else:
            ids = None
            if args.ids:
                pending = [e.id for e in store.outbox.entries()]
                ids = [i for i in pending if any(i.startswith(p) for p in args.ids)]
            count = store.outbox.retry_now(ids)
            print(f"{count} notifications due now; the running daemon tries them within a second")
    finally:
        store.close()
    return EXIT_OK


def cmd_oncall(args: argparse.Namespace) -> int:
    config, _, store = _state(args)
    try:
        return oncall.run(config, store, args)
    finally:
        store.close()


_COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "once": cmd_once,
    "replay": cmd_replay,
    "test-rules": cmd_test_rules,
    "schema": cmd_schema,
    "notify-test": cmd_notify_test,
    "plugins": cmd_plugins,
    "token": cmd_token,
    "status": cmd_status,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "silence": cmd_silence,
    "outbox": cmd_outbox,
    "ack": cmd_ack,
    "unack": cmd_ack,
    "escalations": cmd_escalations,
    "migrate": cmd_migrate,
    "oncall": cmd_oncall,
    "history": cmd_history,
    "report": cmd_report,
}
