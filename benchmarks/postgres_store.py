"""Measure the PostgreSQL store against its own pool's floor.

    python benchmarks/postgres_store.py postgresql://user@host/db   # migrated, disposable

1. Latency of ``get_session_and_user`` (the read behind every session request) against a
   bare ``SELECT 1`` (``ping``) through the same pool, interleaved so that drift in the
   machine's load hits both alike: median, p99 and their ratios.
2. Throughput of ``append_revocation`` (advisory lock, INSERT, NOTIFY, commit) with 50
   concurrent writers for a few seconds. Appends are serialised by the lock, so this is
   bounded by one commit (a WAL flush) at a time.

It writes a user, a session and revocations into the database and leaves them there.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

from twofold.store.postgres import PostgresStore
from twofold.store.records import Revocation, SessionRecord, User

READS = 5000
WRITERS = 50
WRITE_SECONDS = 3.0


def percentiles(samples: list[float]) -> tuple[float, float]:
    """Median and p99, in microseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


async def read_latency(store: PostgresStore) -> None:
    now = time.time()
    tag = uuid.uuid4().hex
    user = User(f"bench-{tag}", f"{tag}@example.test", "$argon2id$x", ("user",), now, now)
    record = SessionRecord(
        uuid.uuid4().bytes * 2, user.id, now, now, now + 1800, now + 86400, None, None, now
    )
    await store.add_user(user)
    await store.put_session(record)
    for _ in range(200):  # warm up: connections made, statements prepared
        await store.ping()
        await store.get_session_and_user(record.id_hash)
    floor: list[float] = []
    joined: list[float] = []
    for _ in range(READS):
        started = time.perf_counter()
        await store.ping()
        middle = time.perf_counter()
        await store.get_session_and_user(record.id_hash)
        floor.append(middle - started)
        joined.append(time.perf_counter() - middle)
    (floor_median, floor_p99), (join_median, join_p99) = percentiles(floor), percentiles(joined)
    print(f"SELECT 1             median {floor_median:7.1f} us   p99 {floor_p99:7.1f} us")
    print(f"get_session_and_user median {join_median:7.1f} us   p99 {join_p99:7.1f} us")
    print(f"ratio                median {join_median / floor_median:7.2f}      p99 "
          f"{join_p99 / floor_p99:7.2f}")  # fmt: skip


async def append_throughput(store: PostgresStore) -> None:
    deadline = time.perf_counter() + WRITE_SECONDS
    counts = [0] * WRITERS

    async def writer(n: int) -> None:
        while time.perf_counter() < deadline:
            now = time.time()
            await store.append_revocation(Revocation("token", f"bench-{n}", now, now + 60))
            counts[n] += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    elapsed = time.perf_counter() - started
    print(f"append_revocation    {sum(counts) / elapsed:7.0f} appends/s "
          f"({WRITERS} writers, {sum(counts)} in {elapsed:.1f} s)")  # fmt: skip


async def main(url: str) -> None:
    store = PostgresStore.from_url(url)
    await store.open()
    try:
        await read_latency(store)
        await append_throughput(store)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
