"""Redaction cost: what one pass of the redaction rule costs per log line and per big text.

Every log line, outbox error and status output goes through ``watchdog.redaction``;
this prints the time to build a redactor for a realistic set of secrets (a VideoSDK
secret, bot and app tokens, a signing secret, a Slack webhook URL, a webhook URL with a
query token), the number of literal forms it matches, and the time to mask a typical
log line and texts of growing size, with and without secrets in them. Linear means
the microseconds per kilobyte stay flat as the text grows.
Run: ``.venv/bin/python -m benchmarks.redaction``.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

from watchdog.redaction import Redactor, forms

SECRETS = [
    "test-secret-9f8e7d6c5b4a-0123456789abcdef0123456789abcdef",
    "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
    "xapp-1-A0123456789-1234567890123-abcdef0123456789abcdef",
    "8f742231b10e8888abcd99yyyzzz85a5",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "https://incidents.example.com/alertmanager/hook?token=tok_4f1d8e2b9c&team=media",
    "Bearer receiver-token-77aa-0b1c2d3e4f",
]
LINE = (
    "2026-11-24 10:00:00,123 WARNING watchdog.delivery.dispatcher: notifier incidents failed "
    "(attempt 3): webhook incidents.example.com answered HTTP 503: upstream unavailable; "
    "retrying in 4.0s [session_id=62d1c0a0 participant_id=fj9jx8sy]"
)


def per_call_us(call: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000, help="calls per measurement")
    args = parser.parse_args()
    build = per_call_us(lambda: Redactor(SECRETS), 20)
    redactor = Redactor(SECRETS)
    literals = len({form for secret in SECRETS for form in forms(secret)})
    print(f"build: {build / 1000:.2f} ms for {len(SECRETS)} secrets ({literals} literal forms)")
    clean_us = per_call_us(lambda: redactor(LINE), args.repeat)
    print(f"log line ({len(LINE)} chars, no secret): {clean_us:.1f} us")
    leaky = LINE + " " + SECRETS[1]
    print(f"log line with a token: {per_call_us(lambda: redactor(leaky), args.repeat):.1f} us")
    for kb in (1, 16, 256, 1024):
        clean = (LINE + "\n") * (kb * 1024 // (len(LINE) + 1))
        dirty = clean.replace("upstream", SECRETS[4], 4)
        n = max(3, args.repeat // (kb * 4))
        for label, text in (("clean", clean), ("4 secrets", dirty)):
            us = per_call_us(functools.partial(redactor, text), n)
            print(f"{kb:>5} KiB {label:<9}: {us / 1000:8.2f} ms  ({us / kb:6.1f} us/KiB)")


if __name__ == "__main__":
    main()
