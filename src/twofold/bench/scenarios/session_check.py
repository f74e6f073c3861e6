"""In-process cost of recognising a session: the store read and the server's check.

This is what ``/auth/me`` does with a cookie before any HTTP framing:
:meth:`twofold.authority.Authority.session_principal` (the id's hash looked up in the real
store, the record's expiry, the user's lock, password and role epochs). It runs in this
process against the same store and data directory as the instances, with the session
cache off (the default), so every check reads the store: SQLite on local disk, PostgreSQL
or Redis over loopback TCP.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

from twofold.authority import Origin
from twofold.bench.results import Verification
from twofold.bench.stats import summarize
from twofold.config import Settings
from twofold.runtime import Runtime

__all__ = ["measure_session_check"]

_WARMUP = 50


async def _measure(settings: Settings, iterations: int) -> list[float]:
    runtime = await Runtime.start(settings)
    try:
        authority = runtime.authority
        email = f"bench-check-{secrets.token_hex(6)}@example.com"
        password = f"bench {secrets.token_urlsafe(12)} passphrase"
        await authority.register(email, password)
        login = await authority.login_session(
            email, password, origin=Origin("127.0.0.1", "twofold-bench"), replacing=None
        )
        session_id = login.session.id
        for _ in range(_WARMUP):
            await authority.session_principal(session_id)
        samples = []
        clock = time.perf_counter_ns
        for _ in range(iterations):
            started = clock()
            await authority.session_principal(session_id)
            samples.append((clock() - started) / 1000)
        return samples
    finally:
        await runtime.close()


def measure_session_check(
    configuration: str,
    data_dir: Path,
    *,
    database_url: str | None,
    redis_url: str | None,
    iterations: int,
) -> Verification:
    """p50/p99 in µs of ``iterations`` session checks, in a runtime of our own on the
    instances' store (``data_dir`` holds their master key)."""
    settings = Settings.model_validate(
        {
            "data_dir": data_dir,
            "database_url": database_url,
            "redis_url": redis_url,
            "argon2_profile": "owasp-minimum",
            "hash_workers": 1,
            "log_level": "warning",
        }
    )
    samples = asyncio.run(_measure(settings, iterations))
    return Verification(configuration, summarize(samples), "store read + session check")
