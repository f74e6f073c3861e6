"""Revocation delay across instances: log out at instance A, poll instance B until it
refuses the credential.

The delay runs from the moment A's 204 arrived to the moment B's first refusal arrived,
polling every 2 ms on one kept-alive connection: an upper bound that includes one poll's
round trip (the method of ``benchmarks/remote_revocation.py`` and
``tests/scaleout/revocations.py``). Before each logout B must accept the credential, so a
refusal is the logout's doing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from twofold.bench.results import Revocation
from twofold.bench.scenarios.credentials import Credential, logout
from twofold.bench.stats import summarize

__all__ = ["POLL_INTERVAL", "measure_revocation"]

POLL_INTERVAL = 0.002
#: Give up on B after this many seconds: such a delay is reported as this bound.
DEADLINE = 5.0


def _until_refused(client: httpx.Client, credential: Credential) -> tuple[float, int]:
    """Seconds from now until B refuses, and how many polls it still accepted."""
    started = time.perf_counter()
    accepted = 0
    while time.perf_counter() - started < DEADLINE:
        status = client.get("/auth/me", headers=credential.headers).status_code
        if status == 401:
            return time.perf_counter() - started, accepted
        if status != 200:
            raise RuntimeError(f"instance B answered {status} while polled")
        accepted += 1
        time.sleep(POLL_INTERVAL)
    return DEADLINE, accepted


def measure_revocation(
    configuration: str,
    a_url: str,
    b_url: str,
    new_credential: Callable[[], Credential],
    *,
    rounds: int,
) -> Revocation:
    """``rounds`` logouts at ``a_url``, each of a fresh credential from
    ``new_credential``, timed until ``b_url`` refuses it."""
    delays: list[float] = []
    accepted_after = 0
    with httpx.Client(base_url=b_url, timeout=10) as b:
        for _ in range(rounds):
            credential = new_credential()
            status = b.get("/auth/me", headers=credential.headers).status_code
            if status != 200:
                raise RuntimeError(f"instance B answered {status} before the logout")
            logout(a_url, credential)
            seconds, accepted = _until_refused(b, credential)
            delays.append(seconds * 1000)
            accepted_after += accepted
    return Revocation(configuration, summarize(delays), accepted_after)
