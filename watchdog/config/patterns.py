"""User-written regular expressions, run by RE2 so that matching is linear in the text.

Participants choose their own display names, and rule filters, watch filters,
routes and silences match patterns against them. Python's backtracking ``re``
lets one name like ``aaaa…a!`` against ``(a+)+$`` hold the GIL for ever; RE2
(the ``google-re2`` binding) runs in time linear in the text, releases the GIL
while it matches and refuses the constructs that need backtracking. This module
is the one place that compiles such patterns, and it names the refused
construct so ``check`` can say how to rewrite it.
"""

from __future__ import annotations

import re2

__all__ = ["MAX_LENGTH", "MAX_MEMORY", "PatternError", "Regex", "compile_regex"]

MAX_LENGTH = 4096  # characters of pattern text: config lines, not programs
MAX_MEMORY = 1 << 20  # RE2's budget for one compiled pattern (program and DFA cache)

_WHY = "patterns use RE2 (linear time)"

# RE2's "invalid perl operator" / "invalid escape sequence" / "bad repetition operator"
# arguments, by how they start, and what Python or PCRE users call the construct.
_PERL_OPERATORS = (
    ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "negative lookbehind (?<!...)"),
    ("(?=", "lookahead (?=...)"),
    ("(?!", "negative lookahead (?!...)"),
    ("(?>", "atomic group (?>...)"),
    ("(?(", "conditional group (?(...)...)"),
    ("(?#", "comment group (?#...)"),
    ("(?R", "recursion (?R)"),
)
_ESCAPES = {"\\k": "named backreference \\k<name>", "\\Z": "\\Z", "\\G": "\\G"}
_FIXES = {"\\Z": "write \\z (end of text) instead", "inline flag": "use only i, m, s or U"}


class PatternError(ValueError):
    """A pattern RE2 cannot run; the message says what to change."""


class Regex:
    """A compiled pattern; equal to another with the same text."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str, compiled: re2._Regexp[str]) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    def fullmatch(self, text: str) -> bool:
        """The whole text matches (anchored, as in Alertmanager's matchers)."""
        return self._compiled.fullmatch(_utf8(text)) is not None

    def search(self, text: str) -> bool:
        """The pattern matches somewhere in the text."""
        return self._compiled.search(_utf8(text)) is not None


def compile_regex(pattern: str) -> Regex:
    """Compile with RE2 under a size budget; PatternError names what RE2 refused."""
    if len(pattern) > MAX_LENGTH:
        raise PatternError(
            f"pattern is {len(pattern)} characters, more than {MAX_LENGTH}; shorten it"
        )
    options = re2.Options()
    options.max_mem = MAX_MEMORY
    options.never_capture = True  # only "does it match" is asked: the fastest RE2 engines
    options.log_errors = False  # errors are reported once, as problems, not on stderr
    try:
        return Regex(pattern, re2.compile(pattern, options))
    except re2.error as exc:
        raise PatternError(_explain(pattern, _text(exc))) from None


def _text(exc: re2.error) -> str:
    detail = exc.args[0] if exc.args else ""
    return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)


def _explain(pattern: str, error: str) -> str:
    kind, _, arg = error.partition(": ")
    construct = _construct(pattern, kind, arg)
    if construct is not None:
        fix = next((f for c, f in _FIXES.items() if construct.startswith(c)), "rewrite without it")
        return f"{construct} is not supported: {_WHY}; {fix}"
    if kind == "pattern too large - compile failed":
        return (
            f"pattern too large: it compiles to more than RE2's {MAX_MEMORY >> 20} MiB "
            "budget; use fewer or smaller repetitions"
        )
    return error


def _construct(pattern: str, kind: str, arg: str) -> str | None:
    """The Perl/Python construct behind an RE2 syntax error, or None for a plain mistake."""
    if kind == "invalid escape sequence":
        if len(arg) == 2 and arg[1] in "123456789":
            return f"backreference {arg}"
        return _ESCAPES.get(arg)
    if kind == "bad repetition operator" and arg.endswith("+") and len(arg) > 1:
        return f"possessive quantifier {arg}"
    if kind == "invalid perl operator":
        if arg == "(?P":
            return "named backreference (?P=name)" if "(?P=" in pattern else None
        if arg[2:3].isdigit():
            return "recursion (?1)"
        found = next((name for start, name in _PERL_OPERATORS if arg.startswith(start)), None)
        if found is None and arg[2:3].isalpha():
            return f"inline flag {arg})"
        return found
    return None


def _utf8(text: str) -> bytes:
    """The text as UTF-8; a lone surrogate (a name cut mid-emoji) becomes U+FFFD."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
