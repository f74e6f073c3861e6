"""How fast a revocation on the Twofold server is refused by a microservice that verifies
tokens remotely (``twofold.remote``: JWKS + revocation feed, no call per request).

Starts a ``twofold serve`` and the example microservice (examples/microservice) on
127.0.0.1, exactly as ``tests/examples/test_microservice.py`` does, then runs rounds of four
revocations (logout, logout of the other sessions, password change, ``twofold user lock``
from the CLI). For each it measures the time from the revoking answer until the
microservice refuses the token, polling every 2 ms (one poll's round trip included), and
prints p50, p99 and the maximum, overall and per kind. Everything is stopped at the end.

    .venv/bin/python -m benchmarks.remote_revocation [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.examples.test_microservice import deploy, revocation_delays, tear_down

from twofold.bench.stats import summarize

MAX_ROUNDS = 50


def line(name: str, values: list[float]) -> str:
    ms = summarize([v * 1000 for v in values])
    return f"{name:<18} n={ms.count:<4} p50 {ms.p50:7.1f}  p99 {ms.p99:7.1f}  max {ms.max:7.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="four revocations each")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be 1 to {MAX_ROUNDS}")
    with tempfile.TemporaryDirectory(prefix="twofold-remote-") as tmp:
        deployment = deploy(Path(tmp))
        try:
            delays = revocation_delays(deployment, rounds=args.rounds)
        finally:
            tear_down(deployment)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}.")
    print("Milliseconds from the revoking answer until the microservice refused:")
    for name, values in delays.items():
        print(line(name, values))
    print(line("all", [d for values in delays.values() for d in values]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
