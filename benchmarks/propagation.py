"""How fast a revocation made through one Twofold instance is refused by the others.

For each deployment (PostgreSQL; PostgreSQL + Redis; PostgreSQL + Redis with the session
cache) this starts three ``twofold serve`` processes behind nginx, exactly as
``tests/scaleout`` does, runs rounds of five revocations (JWT logout, session logout,
compromised key rotation, role change, lock) and prints, per kind, how many instances
already refused the first poll after the revoking answer, and the p50, p99 and maximum of
the time until they refused. Everything runs on 127.0.0.1 and is stopped at the end.

    .venv/bin/python -m benchmarks.propagation [--rounds 10] [--deployment postgres ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest
from tests.scaleout.agent import Agent
from tests.scaleout.cluster import DEPLOYMENTS, Cluster, running_cluster
from tests.scaleout.figures import (
    figures,
    resolve,
    revoker_refused_at_once,
    table,
    wrong_answers,
)
from tests.scaleout.nginx import read_access_log
from tests.scaleout.revocations import Event, one_round
from tests.services import Postgres, Redis

NAMES = [d.name for d in DEPLOYMENTS]
MAX_ROUNDS = 100
LEGEND = """{cores} cores, load average {load:.2f}. Milliseconds after the revoking answer;
'at 1st': instances that already refused the first poll; 'last ok': the latest one was
seen still accepting; p50, p99, max: by when they refused (one poll's round trip included)."""


async def _rounds(cluster: Cluster, rounds: int, budget: float) -> list[Event]:
    """Up to ``rounds`` rounds, no new one started after ``budget`` seconds."""
    stop_at = time.monotonic() + budget
    events: list[Event] = []
    async with Agent.open(cluster) as agent:
        for number in range(rounds):
            if time.monotonic() > stop_at:
                break
            events += await one_round(agent, number)
    return events


def measure(cluster: Cluster, rounds: int, budget: float) -> str:
    events = asyncio.run(_rounds(cluster, rounds, budget))
    log = read_access_log(cluster.access_log)
    resolve(events, log, cluster.addresses)
    late = sum(not revoker_refused_at_once(e) for e in events)
    wrong = sum(len(wrong_answers(e, log, cluster.addresses)) for e in events)
    report = table(cluster.deployment.name, figures(events, len(cluster.instances)))
    return (
        f"{report}\nrevoking instance accepted afterwards: {late}; "
        f"accepted after a refusal or failed: {wrong}; load average {os.getloadavg()[0]:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="five revocations each")
    parser.add_argument("--deployment", action="append", choices=NAMES, help="repeatable")
    parser.add_argument("--budget", type=float, default=120, help="seconds per deployment")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be 1 to {MAX_ROUNDS}")
    chosen = [d for d in DEPLOYMENTS if d.name in (args.deployment or NAMES)]
    print(LEGEND.format(cores=os.cpu_count(), load=os.getloadavg()[0]), flush=True)
    postgres: Postgres | None = None
    redis: Redis | None = None
    failed = 0
    try:
        postgres = Postgres.create()
        redis = Redis.create() if any(d.redis for d in chosen) else None
        for deployment in chosen:
            try:
                with (
                    tempfile.TemporaryDirectory(prefix="twofold-propagation-") as workdir,
                    running_cluster(deployment, postgres, redis, Path(workdir)) as cluster,
                ):
                    print(measure(cluster, args.rounds, args.budget), flush=True)
            except (AssertionError, RuntimeError) as exc:
                failed += 1
                print(f"{deployment.name}: failed: {str(exc)[:500]}", flush=True)
    except pytest.skip.Exception as missing:
        print(f"cannot run: {missing.msg}", file=sys.stderr)
        return 2
    finally:
        for server in (redis, postgres):
            if server is not None:
                server.remove()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
