"""Unicode sparklines: the shape of a metric's recent values in one line of chat text."""

from __future__ import annotations

import math
from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """``▇▇▆▂▁▁`` for the values in order; a flat series is a flat line."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = high - low
    top = len(BLOCKS) - 1
    out = []
    for value in values:
        if not math.isfinite(value):
            out.append(" ")
        elif span == 0:
            out.append(BLOCKS[top // 2])
        else:
            out.append(BLOCKS[round((value - low) / span * top)])
    return "".join(out)
