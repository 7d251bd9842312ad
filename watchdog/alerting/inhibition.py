"""Inhibition rules: while a source alert fires, the target alerts it names are not notified.

Alertmanager's ``inhibit_rules`` (``source_matchers``, ``target_matchers``, ``equal``,
``name``) over our one label vocabulary, with three differences on purpose
(docs/alerting.md): a label missing on both sides is *not* equal (Alertmanager's
prometheus/alertmanager#1727 mutes across meetings when an alert lacks ``meeting_id``);
after a start or a reload the alert manager sends nothing until a whole poll cycle has
recorded which sources fire (its races #2229, #4064); and a target that was told it
fires before its source began is still told when it resolves, so no receiver is left
holding an alert that never ends.

Deciding is one pass over the alerts per rule: the firing sources are indexed by their
``equal`` values, and each target looks its own values up, so a flush costs O(sources +
targets), never source x target pairs. An alert never inhibits itself, and two alerts
that both match both sides never mute each other (Alertmanager's rule too).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from watchdog.alerts import BUILTIN_LABELS, DAEMON_LABELS
from watchdog.config.matchers import (
    KNOWN_LABELS,
    RENAMED_LABELS,
    Matcher,
    matcher_label,
    matches_all,
    old_label_warning,
    parse_matchers,
)
from watchdog.config.problems import Problem
from watchdog.config.settings import Config, InhibitRuleSettings
from watchdog.config.yamlfile import format_loc
from watchdog.obs.telemetry import INHIBITED
from watchdog.state.alertlog import (
    ActiveAlert,
    AlertingSnapshot,
    AlertingWrite,
    Inhibited,
)
from watchdog.state.silences import AuditEntry


@dataclass(frozen=True, slots=True)
class InhibitRule:
    name: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]  # in the current label names


@dataclass(frozen=True, slots=True)
class Inhibition:
    """Why one alert is held back: the rule, and the firing alert that mutes it."""

    rule: str
    source: ActiveAlert


def rules_from(settings: Sequence[InhibitRuleSettings]) -> tuple[InhibitRule, ...]:
    """The config's ``alerting.inhibit_rules``, matchers parsed once (validated already)."""
    return tuple(
        InhibitRule(
            name=entry.name or f"inhibit_rules[{index}]",
            source=parse_matchers(entry.source_matchers),
            target=parse_matchers(entry.target_matchers),
            equal=tuple(dict.fromkeys(RENAMED_LABELS.get(n, n) for n in entry.equal)),
        )
        for index, entry in enumerate(settings)
    )


def problems(config: Config, rule_labels: Iterable[str] = ()) -> list[Problem]:
    """``check``'s view of ``alerting.inhibit_rules`` beyond what the model refuses.

    An ``equal`` label no alert carries is an error: it would make the rule mute
    nothing, silently (a label absent on both sides is not equal). A matcher on such
    a label is a warning, as for routes.
    """
    found: list[Problem] = []
    known = {*BUILTIN_LABELS, *DAEMON_LABELS, *rule_labels}
    for index, entry in enumerate(config.settings.alerting.inhibit_rules):
        base = ("alerting", "inhibit_rules", index)
        for side in ("source_matchers", "target_matchers"):
            texts: list[str] = getattr(entry, side)
            for at, text in enumerate(texts):
                file, line = config.line_for(*base, side, at)
                where = format_loc((*base, side, at))
                name = matcher_label(text) or ""
                if (warning := old_label_warning(name)) is not None:
                    found.append(Problem(file, line, f"{where}: {warning}", "warning"))
                elif name not in {*KNOWN_LABELS, *known}:
                    found.append(
                        Problem(
                            file,
                            line,
                            f"{where}: no alert has a label {name!r} (built-in: "
                            f"{', '.join(BUILTIN_LABELS)}; or a rule's labels)",
                            "warning",
                        )
                    )
        for at, name in enumerate(entry.equal):
            file, line = config.line_for(*base, "equal", at)
            where = format_loc((*base, "equal", at))
            if (warning := old_label_warning(name)) is not None and name in RENAMED_LABELS:
                found.append(Problem(file, line, f"{where}: {warning}", "warning"))
            elif name not in known:
                found.append(
                    Problem(
                        file,
                        line,
                        f"{where}: no alert has a label {name!r}, so this rule would mute "
                        f"nothing (a label missing on both sides is not equal); use one of "
                        f"{', '.join(BUILTIN_LABELS)} or a rule's labels",
                    )
                )
    return found


def inhibitions(
    alerts: Sequence[ActiveAlert],
    labels: Mapping[str, Mapping[str, str]],
    rules: Sequence[InhibitRule],
) -> dict[str, Inhibition]:
    """Fingerprint -> why it is held back, for every alert (firing or resolved) that a
    firing source mutes now; the first rule (in config order) that mutes it names it.

    As in Alertmanager, an alert that matches both sides is muted only by a source that
    does not match the target side too: two such alerts never mute each other (nor
    one itself) into silence.
    """
    found: dict[str, Inhibition] = {}
    if not rules:
        return found
    firing = [a for a in alerts if a.alert.status == "firing"]
    for rule in rules:
        sources = _Sources(rule, firing, labels)
        if not sources.any:
            continue
        for active in alerts:
            fp = active.alert.fingerprint
            if fp in found:
                continue
            mine = labels[fp]
            key = _key(mine, rule.equal)
            if key is None or key not in sources.any or not matches_all(rule.target, mine):
                continue
            if active.alert.status == "firing":  # the sources pass matched those already
                both_sides = fp in sources.matched
            else:
                both_sides = matches_all(rule.source, mine)
            index = sources.one_sided if both_sides else sources.any
            source = index.get(key)
            if source is not None:
                found[fp] = Inhibition(rule.name, source)
    return found


def _key(labels: Mapping[str, str], equal: Sequence[str]) -> tuple[str, ...] | None:
    """The ``equal`` labels' values; None when one is missing (then nothing is equal)."""
    values = tuple(labels.get(name, "") for name in equal)
    return None if "" in values else values


class _Sources:
    """One rule's firing sources, indexed by their ``equal`` values: for each, the one
    that started first (a stable choice from one flush to the next), among them all and
    among those that do not match the target side too."""

    def __init__(
        self,
        rule: InhibitRule,
        firing: Sequence[ActiveAlert],
        labels: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.any: dict[tuple[str, ...], ActiveAlert] = {}
        self.one_sided: dict[tuple[str, ...], ActiveAlert] = {}
        self.matched: set[str] = set()  # the firing alerts the source side matches
        for active in firing:
            mine = labels[active.alert.fingerprint]
            if not matches_all(rule.source, mine):
                continue
            self.matched.add(active.alert.fingerprint)
            key = _key(mine, rule.equal)
            if key is None:
                continue
            _keep_first(self.any, key, active)
            if not matches_all(rule.target, mine):
                _keep_first(self.one_sided, key, active)


def _keep_first(
    index: dict[tuple[str, ...], ActiveAlert], key: tuple[str, ...], active: ActiveAlert
) -> None:
    kept = index.get(key)
    if kept is None or _started(active) < _started(kept):
        index[key] = active


def _started(active: ActiveAlert) -> tuple[datetime, str]:
    return (active.alert.starts_at, active.alert.fingerprint)


def held_back(
    inhibited: Mapping[str, Inhibition],
    before: Mapping[str, Inhibited],
    active: ActiveAlert,
    told_firing: bool,
) -> bool:
    """Is this alert change held back by an inhibition? A firing alert's waits while it
    is inhibited. A resolution is told to a notifier that was told it fired (before its
    source began); for one never told, it is dropped if the alert is inhibited now or
    was at the last flush (``before``): an episode muted from start to end stays unheard,
    also when it ends together with its source."""
    fp = active.alert.fingerprint
    if active.alert.status == "firing":
        return fp in inhibited
    return not told_firing and (fp in inhibited or fp in before)


def ended_note(snapshot: AlertingSnapshot, active: ActiveAlert) -> str | None:
    """``still firing; no longer inhibited by ...`` for an alert told now because the
    inhibition that held it back at the last flush has ended; None otherwise."""
    before = snapshot.inhibited.get(active.alert.fingerprint)
    if before is None:
        return None
    return (
        f"still firing; no longer inhibited by {before.source_alertname} "
        f"{before.source[:8]} (inhibit rule {before.inhibit_rule})"
    )


def record(
    write: AlertingWrite,
    found: Mapping[str, Inhibition],
    snapshot: AlertingSnapshot,
    now: datetime,
) -> None:
    """The firing alerts held back now against those at the last flush: the rows that
    changed, and an audit entry for each alert that became (or stopped being) held back."""
    if not found and not snapshot.inhibited:
        return  # no rules, or nothing held back before or now
    seen: set[str] = set()
    for active in snapshot.alerts:
        fp = active.alert.fingerprint
        seen.add(fp)
        before = snapshot.inhibited.get(fp)
        held = found.get(fp) if active.alert.status == "firing" else None
        if held is None:
            if before is not None:
                write.uninhibited.add(fp)
                why = (
                    "resolved while inhibited"
                    if active.alert.status == "resolved"
                    else f"no longer muted by {before.source_alertname} {before.source}"
                )
                write.audit.append(_audit(now, "uninhibit", fp, before.inhibit_rule, why))
            continue
        source = held.source.alert
        if before is not None and (before.inhibit_rule, before.source) == (
            held.rule,
            source.fingerprint,
        ):
            continue
        write.inhibited[fp] = Inhibited(
            alertname=active.alert.rule,
            inhibit_rule=held.rule,
            source=source.fingerprint,
            source_alertname=source.rule,
            since=before.since if before is not None else now,
        )
        where = f" in meeting {source.meeting_id}" if source.meeting_id else ""
        write.audit.append(
            _audit(
                now,
                "inhibit",
                fp,
                held.rule,
                f"{active.alert.rule} suppressed by {source.rule} {source.fingerprint}{where}",
            )
        )
    write.uninhibited.update(snapshot.inhibited.keys() - seen)  # gone from the log


def _audit(now: datetime, action: str, fingerprint: str, rule: str, detail: str) -> AuditEntry:
    return AuditEntry(
        uuid.uuid4().hex, now, "watchdog", action, fingerprint, f"inhibit rule {rule}", detail
    )


def after(snapshot: AlertingSnapshot, write: AlertingWrite) -> dict[str, Inhibited]:
    """What is held back once ``write`` is applied."""
    kept = {fp: r for fp, r in snapshot.inhibited.items() if fp not in write.uninhibited}
    return {**kept, **write.inhibited}


def export(held: Mapping[str, Inhibited], exported: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Set ``watchdog_alerts_inhibited`` to ``held`` (by inhibition rule and held-back
    rule); series no longer held back are removed, not left at their last value.
    Returns the label sets now exported."""
    counts = Counter((r.inhibit_rule, r.alertname) for r in held.values())
    for labels in exported - counts.keys():
        INHIBITED.remove(*labels)
    for labels, count in counts.items():
        INHIBITED.labels(*labels).set(count)
    return set(counts)
