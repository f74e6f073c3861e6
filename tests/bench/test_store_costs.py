"""Store costs (src/twofold/bench/store_costs.py, store_footprint.py) on real stores: the
figures have the right shape and the measurements leave no sessions behind. No times are
asserted: the machine is shared."""

from __future__ import annotations

import asyncio

import pytest

from tests.services import Postgres, Redis
from twofold.bench import store_costs
from twofold.bench.store_footprint import SessionFootprint, session_footprint
from twofold.store.factory import store_from_url


def _check(footprint: SessionFootprint, kind: str) -> None:
    assert footprint.kind == kind
    assert footprint.sessions == 2_000
    # A session holds at least its 32-byte id hash, its user id and a User-Agent.
    assert 100 < footprint.bytes_per_session < 100_000
    assert "2,000 sessions" in footprint.detail


def test_sqlite_footprint_counts_the_file_after_a_checkpoint() -> None:
    """SQLite's figure is disk: used pages after a WAL checkpoint."""
    _check(session_footprint("SQLite", quick=True), "disk")


def test_redis_footprint_counts_memory_and_deletes_its_sessions(redis_server: Redis) -> None:
    """Redis's figure is memory, names the per-key and index costs, and the sessions it
    made are gone afterwards."""
    url = redis_server.url(5)
    footprint = session_footprint("Redis", url, quick=True)
    _check(footprint, "memory")
    assert "MEMORY USAGE of one session key" in footprint.detail

    async def live_sessions() -> int:
        store = store_from_url(url)
        await store.open()
        try:
            return len(await store.list_live_sessions(0.0, 10, 0))
        finally:
            await store.close()

    assert asyncio.run(live_sessions()) == 0


def test_postgres_footprint_counts_the_sessions_relation(postgres_server: Postgres) -> None:
    """PostgreSQL's figure is the sessions table with its indexes and TOAST."""
    url = postgres_server.create_database("footprint")
    footprint = session_footprint("PostgreSQL", url, quick=True)
    _check(footprint, "disk")
    assert "pg_total_relation_size" in footprint.detail


def test_refresh_cost_rotates_on_one_core() -> None:
    """Rotations are counted in a child pinned to one core, back to back and concurrent."""
    cost = store_costs.refresh_cost(quick=True)
    assert cost.per_second > 0
    assert cost.sequential_per_second > 0
    assert cost.latency_ms.count > 0
    assert 0 < cost.latency_ms.p50 <= cost.latency_ms.max
    assert cost.clients == store_costs.CLIENTS
    assert cost.core is None or cost.core >= 0
    assert "synchronous=FULL" in cost.detail


def test_login_cost_uses_the_servers_profile() -> None:
    """Login cost is measured with the default Argon2 profile and hash workers."""
    cost = store_costs.login_cost(quick=True)
    assert cost.profile == "rfc9106-low-memory"
    assert cost.workers >= 1
    assert cost.hash_ms.count >= 1
    assert cost.hash_ms.p50 > 0
    assert cost.latency_ms.count >= 1
    assert cost.per_second > 0


def test_targets_are_the_refresh_rate_and_redis_bytes(
    redis_server: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``targets`` gives both store targets with their limits and directions."""
    real = store_costs.session_footprint
    monkeypatch.setattr(
        store_costs,
        "session_footprint",
        lambda store, url=None, *, quick: real(store, url or redis_server.url(6), quick=quick),
    )
    found = {target.unit: target for target in store_costs.targets(quick=True)}
    assert set(found) == {"/s", "bytes"}
    assert found["/s"].direction == "at_least"
    assert found["/s"].limit == 1_000
    assert found["bytes"].direction == "at_most"
    assert found["bytes"].limit == 300
    assert all(target.measured > 0 and target.detail for target in found.values())
