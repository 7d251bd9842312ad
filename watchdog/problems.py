"""Configuration problems reported as ``file:line: message``.

Operators fix config files in an editor, so every problem names the file and
line it comes from; `check` prints them all at once and exits 2.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        prefix = "warning: " if self.severity == "warning" else ""
        return _one_line(f"{where}: {prefix}{self.message}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    """Control characters (a key could hold a newline) escaped: one problem, one line."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode(), text)


class ConfigError(Exception):
    """One or more errors in a config or rules file; never carries secret values."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: str, line: int | None, message: str) -> ConfigError:
        return cls([Problem(file, line, message)])


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice an operator most likely meant by ``word`` (difflib's ratio), or None."""
    matches = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``: did you mean 'threshold'?`` to append to a message, or nothing."""
    match = closest(word, choices)
    return f": did you mean {match!r}?" if match else ""
