"""The HTTP speed targets of issue 7, on one ``twofold serve`` worker:

- ``/auth/me`` with a JWT at ≥ 85% of the same server's ``/healthz`` throughput;
- with a session cookie on SQLite at ≥ 80%, on Redis at ≥ 70%;
- while password logins saturate the CPU, ``/auth/me``'s p99 at most 3 times its idle p99.

The machine is shared and noisy, so the baseline and the subject are measured alternately
in several short rounds of the same run and the median of the per-round ratios is the
figure: a neighbour's burst then spoils one round, not the result.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from twofold.bench.instances import Instance, running_instances
from twofold.bench.load import LoadResult, run_load
from twofold.bench.services import throwaway_redis
from twofold.bench.targets import RATIO, Target
from twofold.config import Settings

__all__ = ["Credentials", "login", "targets", "throughput_rounds"]

EMAIL = "bench@example.com"
PASSWORD = "bench correct horse battery"  # noqa: S105 - a throwaway account
#: Connections of a throughput round: enough to keep one worker busy.
CONNECTIONS = 16
#: Connections that keep logins coming: more than the hash workers, fewer than the queue.
LOGIN_CONNECTIONS = 8
#: Connections of the latency probe during the logins (and idle): a light load.
PROBE_CONNECTIONS = 4


@dataclass(frozen=True)
class Plan:
    """How long a run takes: rounds times seconds per measurement."""

    rounds: int
    seconds: float


QUICK = Plan(rounds=3, seconds=1)
FULL = Plan(rounds=5, seconds=3)


@dataclass(frozen=True)
class Credentials:
    """What authenticates ``/auth/me``: a Bearer header and a session cookie header."""

    bearer: Mapping[str, str]
    cookie: Mapping[str, str]


def login(url: str) -> Credentials:
    """Register the bench account and log it in both ways."""
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post("/auth/register", json={"email": EMAIL, "password": PASSWORD})
        token = client.post(
            "/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "jwt"}
        )
        token.raise_for_status()
        session = client.post(
            "/auth/login", json={"email": EMAIL, "password": PASSWORD, "mode": "session"}
        )
        session.raise_for_status()
    cookie = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
    return Credentials(
        bearer={"Authorization": f"Bearer {token.json()['access_token']}"},
        cookie={"Cookie": cookie},
    )


def throughput_rounds(
    url: str, subjects: Mapping[str, Mapping[str, str]], plan: Plan
) -> dict[str, tuple[float, list[LoadResult], list[LoadResult]]]:
    """For each subject (a name and the headers of its ``/auth/me`` request): the median
    over ``plan.rounds`` of its throughput as a share of ``/healthz``'s, with the loads
    behind it. Each round measures the baseline, then every subject, back to back."""
    baselines: list[LoadResult] = []
    measured: dict[str, list[LoadResult]] = {name: [] for name in subjects}
    for _ in range(plan.rounds):
        baselines.append(_load(f"{url}/healthz", {}, plan.seconds))
        for name, headers in subjects.items():
            measured[name].append(_load(f"{url}/auth/me", headers, plan.seconds))
    return {
        name: (
            statistics.median(
                ours.rps / base.rps for ours, base in zip(results, baselines, strict=True)
            ),
            results,
            baselines,
        )
        for name, results in measured.items()
    }


def _load(url: str, headers: Mapping[str, str], seconds: float) -> LoadResult:
    result = run_load([url], headers=headers, duration=seconds, connections=CONNECTIONS)
    if result.errors:
        raise RuntimeError(f"{result.errors} of {result.requests} requests to {url} failed")
    return result


def _share_target(
    name: str, limit: float, figures: tuple[float, list[LoadResult], list[LoadResult]]
) -> Target:
    ratio, ours, base = figures
    return Target(
        name=name,
        measured=round(ratio * 100, 1),
        limit=limit,
        direction="at_least",
        unit="%",
        detail=(
            f"median of {len(ours)} rounds; /auth/me "
            f"{statistics.median(r.rps for r in ours):,.0f} req/s, /healthz "
            f"{statistics.median(r.rps for r in base):,.0f} req/s ({ours[0].tool}, "
            f"{CONNECTIONS} connections)"
        ),
    )


@contextmanager
def _one_worker(
    root: Path, *, redis_url: str | None = None, settings: Mapping[str, object] | None = None
) -> Iterator[Instance]:
    with running_instances(
        count=1, data_dir=root / "data", redis_url=redis_url, settings=settings
    ) as (instance,):
        yield instance


def sqlite_targets(plan: Plan) -> list[Target]:
    """On one server with SQLite: JWT and session ``/auth/me`` against ``/healthz``, then
    ``/auth/me``'s latency under logins. The server hashes passwords with the product's
    defaults (the Argon2 profile and the number of hash workers): how hashing and requests
    share the cores is what the last target measures."""
    with (
        tempfile.TemporaryDirectory(prefix="twofold-bench-") as root,
        _one_worker(Path(root), settings=product_hashing()) as instance,
    ):
        credentials = login(instance.url)
        figures = throughput_rounds(
            instance.url, {"jwt": credentials.bearer, "session": credentials.cookie}, plan
        )
        saturation = saturation_target(instance.url, credentials, plan)
    return [
        _share_target("/auth/me with a JWT vs /healthz throughput", 85, figures["jwt"]),
        _share_target(
            "/auth/me with a session on SQLite vs /healthz throughput", 80, figures["session"]
        ),
        saturation,
    ]


def redis_targets(plan: Plan) -> list[Target]:
    """Session ``/auth/me`` on Redis against ``/healthz``; ``Unavailable`` without Redis."""
    with (
        throwaway_redis() as redis_url,
        tempfile.TemporaryDirectory(prefix="twofold-bench-") as root,
        _one_worker(Path(root), redis_url=redis_url) as instance,
    ):
        credentials = login(instance.url)
        figures = throughput_rounds(instance.url, {"session": credentials.cookie}, plan)
    return [
        _share_target(
            "/auth/me with a session on Redis vs /healthz throughput", 70, figures["session"]
        )
    ]


def product_hashing() -> dict[str, object]:
    """The default Argon2 profile and hash workers of ``twofold serve`` on this machine."""
    fields = Settings.model_fields
    return {
        name: fields[name].get_default(call_default_factory=True)
        for name in ("argon2_profile", "hash_workers")
    }


def saturation_target(url: str, credentials: Credentials, plan: Plan) -> Target:
    """``/auth/me``'s p99 while logins keep every hash worker busy, against its p99 idle,
    in alternating rounds."""
    probe = f"{url}/auth/me"
    idle: list[LoadResult] = []
    busy: list[LoadResult] = []
    logins: list[LoadResult] = []
    for _ in range(plan.rounds):
        idle.append(_probe(probe, credentials.bearer, plan.seconds))
        busy_probe, login_load = _under_logins(url, probe, credentials, plan)
        busy.append(busy_probe)
        logins.append(login_load)
    ratio = statistics.median(
        b.latency_ms.p99 / i.latency_ms.p99 for b, i in zip(busy, idle, strict=True)
    )
    return Target(
        name="/auth/me p99 while logins saturate the CPU vs idle",
        measured=round(ratio, 2),
        limit=3,
        direction="at_most",
        unit=RATIO,
        detail=(
            f"median of {len(busy)} rounds; p99 busy "
            f"{statistics.median(r.latency_ms.p99 for r in busy):.1f} ms, idle "
            f"{statistics.median(r.latency_ms.p99 for r in idle):.1f} ms; logins "
            f"{statistics.median(r.rps for r in logins):.1f}/s, "
            f"{sum(r.errors for r in logins)} failed or timed out; "
            f"{product_hashing()['hash_workers']} hash worker(s), "
            f"{product_hashing()['argon2_profile']}"
        ),
    )


def _probe(url: str, headers: Mapping[str, str], seconds: float) -> LoadResult:
    return run_load([url], headers=headers, duration=seconds, connections=PROBE_CONNECTIONS)


def _under_logins(
    base_url: str, probe: str, credentials: Credentials, plan: Plan
) -> tuple[LoadResult, LoadResult]:
    """The probe's figures with logins running alongside for a little longer."""
    body = (
        b'{"email": "' + EMAIL.encode() + b'", "password": "' + PASSWORD.encode() + b'", '
        b'"mode": "jwt"}'
    )
    with ThreadPoolExecutor(1) as pool:
        logins = pool.submit(
            run_load,
            [f"{base_url}/auth/login"],
            headers={"Content-Type": "application/json"},
            duration=plan.seconds + 1,
            connections=LOGIN_CONNECTIONS,
            method="POST",
            body=body,
        )
        # Let the logins fill the hash workers' queue before probing.
        time.sleep(0.5)
        probed = _probe(probe, credentials.bearer, plan.seconds)
        return probed, logins.result()


def targets(*, quick: bool) -> list[Target]:
    """Every HTTP target. Raises ``Unavailable`` when Redis cannot be had (after nothing is
    left running); ``sqlite_targets`` and ``redis_targets`` can be called one
    by one to report the others anyway."""
    plan = QUICK if quick else FULL
    return [*sqlite_targets(plan), *redis_targets(plan)]
