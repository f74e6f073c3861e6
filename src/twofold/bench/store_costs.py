"""What getting a credential costs, and the store-side speed targets.

A refresh rotation is measured on the path ``POST /auth/refresh`` takes
(``Authority.refresh``: the token read, the family check, the spend-and-insert transaction,
the user read, an ES256 access token signed), in a child process pinned to one core, so
the SQLite writer thread and the event loop share it as on a one-core server. Rates are
given for one client rotating back to back (each rotation waits for its commit's fsync)
and for several clients at once (a server's case; the target's figure).

A password login is measured with the server's own Argon2 profile and ``hash_workers``
(``Settings`` defaults): the time of one hash, and logins per second through
``Authority.login_token`` with as many concurrent clients as there are workers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from twofold.authority import Origin
from twofold.bench.stats import Summary, summarize
from twofold.bench.store_footprint import SessionFootprint, StoreName, session_footprint
from twofold.bench.targets import Target
from twofold.config import Settings
from twofold.passwords import ARGON2_PROFILES, PasswordHasher
from twofold.runtime import Runtime

__all__ = [
    "LoginCost",
    "RefreshCost",
    "SessionFootprint",
    "StoreName",
    "login_cost",
    "refresh_cost",
    "session_footprint",
    "targets",
]

ROTATIONS_PER_SECOND = 1_000.0
REDIS_BYTES_PER_SESSION = 300.0
#: Clients rotating at once in the concurrent phase.
CLIENTS = 4
_EMAIL = "bench@example.com"
_PASSWORD = "bench correct horse battery staple"  # noqa: S105 (a throwaway account's)


@dataclass(frozen=True)
class RefreshCost:
    """Refresh rotations on SQLite, one core."""

    #: Per rotation, one client rotating back to back (ms).
    latency_ms: Summary
    #: Rotations per second with ``clients`` rotating at once: the target's figure.
    per_second: float
    clients: int
    #: Rotations per second of one client rotating back to back.
    sequential_per_second: float
    #: CPU time of the whole process (event loop and writer thread) per rotation (µs).
    cpu_us: float
    #: The core the child was pinned to, or None where affinity cannot be set.
    core: int | None
    detail: str


@dataclass(frozen=True)
class LoginCost:
    """Password logins with the server's Argon2 profile and hash workers."""

    #: Per login, one client logging in back to back (ms).
    latency_ms: Summary
    #: Logins per second with ``workers`` clients at once.
    per_second: float
    #: One Argon2 verification alone (ms).
    hash_ms: Summary
    profile: str
    workers: int
    detail: str


# -- refresh -----------------------------------------------------------------------------


def refresh_cost(*, quick: bool) -> RefreshCost:
    """Measure rotations in a child process pinned to one core (see the module text)."""
    seconds = 0.8 if quick else 5.0
    child = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "twofold.bench.store_costs", "refresh", str(seconds)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"the refresh measurement failed: {child.stderr[-1500:]}")
    found = json.loads(child.stdout.strip().splitlines()[-1])
    latency = summarize(found["latencies_ms"])
    core = found["core"]
    sync = found["synchronous"]
    return RefreshCost(
        latency_ms=latency,
        per_second=found["concurrent"],
        clients=CLIENTS,
        sequential_per_second=found["sequential"],
        cpu_us=found["cpu_us"],
        core=core,
        detail=(
            f"{found['concurrent']:.0f}/s with {CLIENTS} clients, {found['sequential']:.0f}/s "
            f"back to back (p50 {latency.p50:.2f} ms); {found['cpu_us']:.0f} µs CPU per "
            f"rotation; {'core ' + str(core) if core is not None else 'unpinned'}, SQLite "
            f"WAL synchronous={sync}, ES256 access tokens"
        ),
    )


def _pin_to_one_core() -> int | None:
    """Pin this process (and the threads it starts later) to one of its cores."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


async def _rotations(seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="twofold-refresh-") as directory:
        # The default signing algorithm (ES256) and store; the cheapest Argon2 profile,
        # since logins are not what is measured here.
        settings = Settings(
            data_dir=Path(directory),
            argon2_profile="owasp-minimum",
            hash_workers=1,
            log_level="warning",
        )
        runtime = await Runtime.start(settings)
        try:
            authority = runtime.authority
            await authority.register(_EMAIL, _PASSWORD)
            tokens = [
                (await authority.login_token(_EMAIL, _PASSWORD, origin=Origin())).refresh.token
                for _ in range(CLIENTS)
            ]
            latencies: list[float] = []

            async def rotate(client: int, until: float, record: bool) -> int:
                done = 0
                while time.perf_counter() < until:
                    started = time.perf_counter()
                    pair = await authority.refresh(tokens[client], origin=Origin())
                    if record:
                        latencies.append((time.perf_counter() - started) * 1000)
                    tokens[client] = pair.refresh.token
                    done += 1
                return done

            await rotate(0, time.perf_counter() + min(0.3, seconds / 5), False)  # warm-up
            started = time.perf_counter()
            sequential = await rotate(0, started + seconds, True) / (time.perf_counter() - started)
            cpu, started = time.process_time(), time.perf_counter()
            until = started + seconds
            done = sum(await asyncio.gather(*(rotate(c, until, False) for c in range(CLIENTS))))
            elapsed = time.perf_counter() - started
            cpu_us = (time.process_time() - cpu) / done * 1e6
            return {
                "sequential": sequential,
                "concurrent": done / elapsed,
                "cpu_us": cpu_us,
                "latencies_ms": latencies,
            }
        finally:
            await runtime.close()


def _refresh_child(seconds: float) -> None:
    from twofold.store.sqlite_connection import SYNCHRONOUS

    core = _pin_to_one_core()
    found = asyncio.run(_rotations(seconds))
    print(json.dumps(found | {"core": core, "synchronous": SYNCHRONOUS}))


# -- login -------------------------------------------------------------------------------


def login_cost(*, quick: bool) -> LoginCost:
    """Argon2 with the server's default profile and workers (see the module text)."""
    return asyncio.run(_logins(1.0 if quick else 6.0))


async def _logins(seconds: float) -> LoginCost:
    defaults = Settings()
    profile, workers = defaults.argon2_profile, defaults.hash_workers
    hasher = PasswordHasher(ARGON2_PROFILES[profile], workers=1)
    try:
        encoded = await hasher.hash(_PASSWORD)
        hashes = []
        for _ in range(2 if seconds < 2 else 10):
            started = time.perf_counter()
            await hasher.verify(encoded, _PASSWORD)
            hashes.append((time.perf_counter() - started) * 1000)
    finally:
        hasher.close()
    with tempfile.TemporaryDirectory(prefix="twofold-login-") as directory:
        settings = Settings(
            data_dir=Path(directory),
            argon2_profile=profile,
            hash_workers=workers,
            log_level="warning",
        )
        runtime = await Runtime.start(settings)
        try:
            authority = runtime.authority
            await authority.register(_EMAIL, _PASSWORD)
            latencies: list[float] = []

            async def log_in(until: float) -> int:
                done = 0
                while time.perf_counter() < until:
                    started = time.perf_counter()
                    await authority.login_token(_EMAIL, _PASSWORD, origin=Origin())
                    latencies.append((time.perf_counter() - started) * 1000)
                    done += 1
                return done

            while len(latencies) < 3:  # at least three back to back: the first runs cold
                await log_in(time.perf_counter() + seconds / 3)
            sequential = list(latencies)
            started = time.perf_counter()
            until = started + seconds
            done = sum(await asyncio.gather(*(log_in(until) for _ in range(workers))))
            per_second = done / (time.perf_counter() - started)
        finally:
            await runtime.close()
    hash_ms = summarize(hashes)
    latency = summarize(sequential)
    return LoginCost(
        latency_ms=latency,
        per_second=per_second,
        hash_ms=hash_ms,
        profile=profile,
        workers=workers,
        detail=(
            f"Argon2id profile {profile} ({ARGON2_PROFILES[profile]}): {hash_ms.p50:.1f} ms "
            f"per hash; {per_second:.1f} logins/s with hash_workers={workers} on "
            f"{os.cpu_count()} cores; p50 {latency.p50:.1f} ms back to back"
        ),
    )


# -- targets -----------------------------------------------------------------------------


def targets(*, quick: bool) -> list[Target]:
    """Refresh rotations per second (SQLite, one core) and Redis bytes per session;
    ``Unavailable`` if Redis cannot be started."""
    refresh = refresh_cost(quick=quick)
    redis = session_footprint("Redis", None, quick=quick)
    return [
        Target(
            "refresh rotations on one core (SQLite)",
            refresh.per_second,
            ROTATIONS_PER_SECOND,
            "at_least",
            "/s",
            refresh.detail,
        ),
        Target(
            "Redis memory per stored session",
            redis.bytes_per_session,
            REDIS_BYTES_PER_SESSION,
            "at_most",
            "bytes",
            redis.detail,
        ),
    ]


if __name__ == "__main__" and sys.argv[1:2] == ["refresh"]:
    _refresh_child(float(sys.argv[2]))
