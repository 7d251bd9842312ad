"""Catastrophic patterns against hostile participant names: RE2 (watchdog.config.patterns) vs re.

    .venv/bin/python -m benchmarks.hostile_patterns [--python-limit 10]

For each pattern and name length, prints RE2's time for one anchored match and one
search (best of 3), and, for the 35-character name only, how long Python's backtracking
``re`` (the engine before) took, in a subprocess killed after ``--python-limit`` seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from watchdog.config.patterns import compile_regex

PATTERNS = ["(a+)+$", "(a|aa)+$", "(a+)+z$", r"(\w+\s?)*$", r".*[ab].{500}x"]
LENGTHS = [34, 5_000, 100_000, 1_000_000]

_PYTHON = "import re,sys; re.compile(sys.argv[1]).{how}(sys.argv[2])"


def _best(run: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def _python_re(pattern: str, name: str, how: str, limit: float) -> str:
    started = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, "-c", _PYTHON.format(how=how), pattern, name],
            timeout=limit,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return f"> {limit:.0f} s (killed)"
    return f"{time.perf_counter() - started:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-limit", type=float, default=10.0)
    args = parser.parse_args()
    print("| pattern | name | RE2 fullmatch | RE2 search | Python re fullmatch (before) |")
    print("|---|---|---|---|---|")
    for pattern in PATTERNS:
        regex = compile_regex(pattern)
        for length in LENGTHS:
            name = "a" * length + "!"
            full = _best(lambda: regex.fullmatch(name))  # noqa: B023 (used at once)
            search = _best(lambda: regex.search(name))  # noqa: B023
            before = (
                _python_re(pattern, name, "fullmatch", args.python_limit) if length == 34 else ""
            )
            print(
                f"| `{pattern}` | {length + 1:,} chars | {full * 1000:.3f} ms "
                f"| {search * 1000:.3f} ms | {before} |"
            )


if __name__ == "__main__":
    main()
