"""CPU per poll as a session's history grows: 10, 100 and 1,000 samples in every response.

Only samples newer than the cursor are validated and evaluated, so the daemon's cost
should grow like the floor's (the GET and the JSON decode of a longer body), not like
the history. Each history gets its own simulator; the daemon's real poll path runs a
first cycle (the first-sight lookback) and then steady cycles of ~3 new samples per
poll, followed by the floor with the standard library's decoder and with orjson.

Run: ``.venv/bin/python -m benchmarks.history_growth [--participants 500]``.
"""

from __future__ import annotations

import argparse
import logging

from benchmarks.poll_throughput import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--interval", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--histories", default="10,100,1000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(
        f"participants={args.participants} latency={args.latency * 1000:.0f}ms "
        f"interval={args.interval:g}s concurrency={args.concurrency}"
    )
    print("history  daemon ms/poll  floor json ms/poll  floor orjson ms/poll  ratio (orjson)")
    for history in (int(h) for h in args.histories.split(",")):
        result = run(
            args.participants,
            history,
            args.latency,
            args.interval,
            cycles=4,
            concurrency=args.concurrency,
            report=lambda _: None,
        )
        _, cpu, _ = result.steady()
        floors = {name: sum(pair) / 2 for name, pair in result.floors.items()}  # before, after
        print(
            f"RESULT {history:>7}  {cpu * 1000:14.2f}  {floors['json'] * 1000:18.2f}  "
            f"{floors['orjson'] * 1000:20.2f}  {cpu / floors['orjson']:.2f}x"
        )


if __name__ == "__main__":
    main()
