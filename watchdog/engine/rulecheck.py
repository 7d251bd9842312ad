"""Checks on rules that need more than one rule or the config: warnings a person should see.

Syntax and field errors are the rules module's; here are the judgements
(``for`` shorter than the poll interval, windows that can hold one sample at
most) that make a rule do less than its author thinks, reported by ``check``
and at startup without stopping either.
"""

from __future__ import annotations

from datetime import timedelta

from watchdog.config.problems import Problem
from watchdog.durations import format_duration
from watchdog.engine.rules import Rule, RuleSet


def semantic_problems(rules: RuleSet, poll_interval: timedelta | None = None) -> list[Problem]:
    problems = []
    for rule in rules:
        file, line = rules.lines.get(rule.name, ("rules", None))
        for message in _judge(rule, poll_interval):
            problems.append(Problem(file, line, f"rule {rule.name!r}: {message}", "warning"))
    return problems


def _judge(rule: Rule, interval: timedelta | None) -> list[str]:
    out = []
    if interval is not None:
        poll = format_duration(interval)
        if rule.for_ and rule.for_ < interval:
            out.append(
                f"for ({rule.for_.total_seconds():g}s) is shorter than the poll interval "
                f"({interval.total_seconds():g}s)"
            )
        if rule.over is not None and rule.over < interval:
            out.append(
                f"over ({format_duration(rule.over)}) is shorter than the poll interval ({poll}): "
                "the window is judged on sample times, but alerts can only go out once a poll"
            )
        if rule.absent is not None and rule.absent < interval:
            out.append(
                f"absent ({format_duration(rule.absent)}) is shorter than the poll interval "
                f"({poll}): silence is noticed at the next poll at the earliest"
            )
        if rule.keep_firing_for and rule.keep_firing_for < interval:
            out.append(
                f"keep_firing_for ({format_duration(rule.keep_firing_for)}) is shorter than "
                f"the poll interval ({poll})"
            )
    if rule.spike is not None and rule.spike.over and rule.spike.baseline < rule.spike.over:
        out.append("spike baseline is shorter than its current window: the comparison is noisy")
    return out
