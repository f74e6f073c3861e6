"""Revocation that reaches JWTs (SECURITY.md T9): the in-memory list, the user cut-off, and
the store's stream read at start, on catch-up and by the follower."""

from __future__ import annotations

import asyncio
import time
import timeit
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest

from twofold.clock import FrozenClock
from twofold.errors import InvalidToken, StoreUnavailable
from twofold.jose.jwt import AccessClaims, AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import JoseKey
from twofold.revocation import RevocationList, Revoker
from twofold.store.records import Revocation, RevocationKind
from twofold.store.sqlite import SQLiteStore

START = 1_800_000_000.0
HORIZON = 330.0


def claims(
    *,
    sub: str = "user-1",
    jti: str = "jti-1",
    sid: str | None = "family-1",
    iat: float = START,
) -> AccessClaims:
    return AccessClaims(
        sub=sub,
        iss="https://t.example",
        aud="api",
        exp=iat + 300,
        iat=iat,
        nbf=iat,
        jti=jti,
        roles=("user",),
        scope=None,
        client_id="twofold",
        sid=sid,
    )


def entry(
    kind: RevocationKind, subject: str, *, at: float = START, expires_at: float, seq: int
) -> Revocation:
    return Revocation(kind=kind, subject=subject, at=at, expires_at=expires_at, seq=seq)


def revoked(entries: Iterable[Revocation]) -> RevocationList:
    table = RevocationList()
    table.apply(entries)
    return table


# -- RevocationList ----------------------------------------------------------------------


def test_check_refuses_by_jti() -> None:
    """A token entry refuses exactly the token with that jti."""
    table = revoked([entry("token", "jti-1", expires_at=START + 300, seq=1)])
    with pytest.raises(InvalidToken) as caught:
        table.check(claims(jti="jti-1", sid=None))
    assert caught.value.reason == "revoked"
    table.check(claims(jti="jti-2", sid=None))
    assert table.is_revoked(claims(jti="jti-1")) is True
    assert table.is_revoked(claims(jti="jti-2")) is False


def test_check_refuses_by_sid() -> None:
    """A family entry refuses every token of the family, and none of another or of none."""
    table = revoked([entry("family", "family-1", expires_at=START + 300, seq=1)])
    for jti in ("a", "b", "c"):
        with pytest.raises(InvalidToken):
            table.check(claims(jti=jti, sid="family-1"))
    table.check(claims(sid="family-2"))
    table.check(claims(sid=None))


def test_check_refuses_by_user_cut_off_strictly_before() -> None:
    """A user entry refuses the user's tokens with iat < cut; iat == cut and later pass;
    other users are untouched."""
    cut = START + 10
    table = revoked([entry("user", "user-1", at=cut, expires_at=cut + HORIZON, seq=1)])
    for iat in (START, cut - 1, cut - 0.001):
        with pytest.raises(InvalidToken):
            table.check(claims(iat=iat))
    table.check(claims(iat=cut))
    table.check(claims(iat=cut + 1))
    table.check(claims(sub="user-2", iat=START))
    assert table.not_before("user-1") == cut
    assert table.not_before("user-2") is None


def test_prune_forgets_expired_entries_only() -> None:
    """Entries whose expiry has passed are dropped; the others still refuse."""
    table = revoked(
        [
            entry("token", "old-jti", expires_at=START + 10, seq=1),
            entry("family", "old-family", expires_at=START + 10, seq=2),
            entry("user", "old-user", expires_at=START + 10, seq=3),
            entry("token", "new-jti", expires_at=START + 100, seq=4),
            entry("family", "new-family", expires_at=START + 100, seq=5),
            entry("user", "new-user", at=START + 5, expires_at=START + 100, seq=6),
        ]
    )
    assert len(table) == 6
    table.prune(START + 10)  # expiry is inclusive: expires_at <= now goes
    assert len(table) == 3
    table.check(claims(jti="old-jti", sid=None))
    table.check(claims(sid="old-family"))
    table.check(claims(sub="old-user", iat=START - 100))
    assert table.is_revoked(claims(jti="new-jti", sid=None))
    assert table.is_revoked(claims(sid="new-family"))
    assert table.is_revoked(claims(sub="new-user", iat=START))
    table.prune(START + 100)
    assert len(table) == 0


def test_user_cut_offs_apply_in_any_order() -> None:
    """Whatever order the stream is read in, the later cut-off and the later expiry win;
    last_seq is the highest seq seen."""
    early = entry("user", "user-1", at=START + 10, expires_at=START + 900, seq=7)
    late = entry("user", "user-1", at=START + 20, expires_at=START + 500, seq=3)
    for order in ([early, late], [late, early], [late, early, late, early]):
        table = revoked(order)
        assert table.not_before("user-1") == START + 20
        assert table.is_revoked(claims(iat=START + 19))
        assert not table.is_revoked(claims(iat=START + 20))
        assert table.last_seq == 7
        table.prune(START + 600)  # the longer expiry is kept
        assert table.not_before("user-1") == START + 20
        table.prune(START + 900)
        assert table.not_before("user-1") is None


def test_token_expiry_keeps_the_latest_in_any_order() -> None:
    """A duplicated token entry keeps its latest expiry, whichever comes first."""
    short = entry("token", "jti-1", expires_at=START + 10, seq=1)
    long = entry("token", "jti-1", expires_at=START + 100, seq=2)
    for order in ([short, long], [long, short]):
        table = revoked(order)
        table.prune(START + 50)
        assert table.is_revoked(claims(jti="jti-1"))


def test_apply_reports_key_entries_only() -> None:
    """apply answers True only when a key entry was among the entries."""
    assert RevocationList().apply([entry("token", "j", expires_at=START, seq=1)]) is False
    assert RevocationList().apply([entry("key", "kid-1", expires_at=START, seq=1)]) is True
    assert RevocationList().apply([]) is False


def test_check_cost_with_ten_thousand_entries() -> None:
    """Measured, not asserted: the cost of check() with 10,000 entries (a third each of
    tokens, families and users), against an empty list for comparison."""
    kinds: tuple[RevocationKind, ...] = ("token", "family", "user")
    table = revoked(
        entry(kinds[i % 3], f"subject-{i}", at=START + 10, expires_at=START + 300, seq=i + 1)
        for i in range(10_000)
    )
    assert len(table) == 10_000
    passing = claims(sub="someone-else", jti="fresh", sid="fresh-family")
    refused = claims(sub="subject-9998", iat=START)  # 9998 % 3 == 2: a user entry
    assert table.is_revoked(refused)

    def per_call(call: Callable[[], object], calls: int = 100_000) -> float:
        # The best of three runs: the least disturbed by other work on the machine.
        return min(timeit.repeat(call, number=calls, repeat=3)) / calls

    empty = RevocationList()
    print(
        f"\nRevocationList.check, per call over 100k calls: "
        f"{per_call(lambda: table.check(passing)) * 1e9:.0f} ns accepted with "
        f"{len(table)} entries, {per_call(lambda: empty.check(passing)) * 1e9:.0f} ns "
        f"with none; {per_call(lambda: table.is_revoked(refused)) * 1e9:.0f} ns refused "
        f"(is_revoked, raising InvalidToken inside)"
    )


# -- Revoker and the user cut-off --------------------------------------------------------


@pytest.fixture
async def other_store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    """A second connection to the same database: another instance, or the CLI."""
    store = SQLiteStore(db_path)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def codec(clock: FrozenClock) -> AccessTokenCodec:
    key = JoseKey.generate("EdDSA")
    return AccessTokenCodec(
        KeyRing([key], signing_kid=key.kid), TokenPolicy("https://t.example", "api"), clock
    )


@pytest.mark.parametrize(
    ("now", "cut"),
    [(START, START + 1), (START + 0.25, START + 1), (START + 0.999, START + 1)],
    ids=["whole-second", "quarter", "end-of-second"],
)
async def test_user_cut_off_is_the_next_whole_second(
    store: SQLiteStore, now: float, cut: float
) -> None:
    """Revoker.user answers floor(now) + 1 and applies it at once."""
    revoker = Revoker(store, FrozenClock(now), horizon=HORIZON)
    assert await revoker.user("user-1") == cut
    assert revoker.revoked.not_before("user-1") == cut


async def test_token_issued_after_a_user_revocation_in_the_same_second_is_accepted(
    store: SQLiteStore, clock: FrozenClock, codec: AccessTokenCodec
) -> None:
    """A token made before the revocation is refused; one made in the same second after
    it, with not_before=cut, is accepted (its iat is raised to the cut)."""
    clock.advance(0.4)
    before, _ = codec.issue("user-1", ["user"])
    revoker = Revoker(store, clock, horizon=HORIZON)
    cut = await revoker.user("user-1")
    clock.advance(0.1)  # still the same second
    after, after_claims = codec.issue("user-1", ["user"], not_before=cut)
    plain, _ = codec.issue("user-1", ["user"])  # without the cut: taken for an old token
    assert after_claims.iat == cut
    with pytest.raises(InvalidToken):
        revoker.revoked.check(codec.verify(before))
    with pytest.raises(InvalidToken):
        revoker.revoked.check(codec.verify(plain))
    revoker.revoked.check(codec.verify(after))


# -- the stream: restart, other instances, the follower ----------------------------------


async def write_one_of_each(revoker: Revoker) -> None:
    await revoker.token("jti-1", START + 300)
    await revoker.family("family-1")
    await revoker.user("user-1")


def assert_refuses_one_of_each(revoker: Revoker) -> None:
    table = revoker.revoked
    assert table.is_revoked(claims(sub="u", jti="jti-1", sid=None))
    assert table.is_revoked(claims(sub="u", jti="x", sid="family-1"))
    assert table.is_revoked(claims(sub="user-1", jti="x", sid=None, iat=START))
    assert not table.is_revoked(claims(sub="u", jti="x", sid="family-2"))


async def test_a_restarted_instance_loads_the_entries(db_path: Path, clock: FrozenClock) -> None:
    """Entries written before a restart refuse the same tokens after it."""
    first = SQLiteStore(db_path)
    await first.open()
    await write_one_of_each(Revoker(first, clock, horizon=HORIZON))
    await first.close()

    reopened = SQLiteStore(db_path)
    await reopened.open()
    try:
        revoker = Revoker(reopened, clock, horizon=HORIZON)
        assert len(revoker.revoked) == 0
        await revoker.load()
        assert len(revoker.revoked) == 3
        assert_refuses_one_of_each(revoker)
    finally:
        await reopened.close()


async def test_another_instance_sees_an_entry_after_catch_up(
    store: SQLiteStore, other_store: SQLiteStore, clock: FrozenClock
) -> None:
    """An entry written by one instance reaches another on its next catch_up."""
    writer = Revoker(store, clock, horizon=HORIZON)
    reader = Revoker(other_store, clock, horizon=HORIZON)
    await reader.load()
    await write_one_of_each(writer)
    assert not reader.revoked.is_revoked(claims(jti="jti-1"))
    assert await reader.catch_up() == 3
    assert_refuses_one_of_each(reader)
    assert await reader.catch_up() == 0


async def test_own_entries_do_not_skip_lower_entries_written_elsewhere(
    store: SQLiteStore, other_store: SQLiteStore, clock: FrozenClock
) -> None:
    """An instance's own write (a higher seq) does not make it skip an entry another
    instance wrote just before (a lower seq) that it has not read yet."""
    here = Revoker(store, clock, horizon=HORIZON)
    elsewhere = Revoker(other_store, clock, horizon=HORIZON)
    await elsewhere.token("from-elsewhere", START + 300)  # seq 1
    await here.token("from-here", START + 300)  # seq 2
    assert here.revoked.is_revoked(claims(jti="from-here"))
    await here.catch_up()
    assert here.revoked.is_revoked(claims(jti="from-elsewhere"))


async def test_the_follower_picks_up_an_entry_quickly(
    store: SQLiteStore, other_store: SQLiteStore, clock: FrozenClock
) -> None:
    """follow() polling every 0.05 s applies another instance's entry within 0.3 s."""
    writer = Revoker(store, clock, horizon=HORIZON)
    reader = Revoker(other_store, clock, horizon=HORIZON)
    await reader.load()
    task = asyncio.create_task(reader.follow(poll_interval=0.05, max_staleness=1.0))
    try:
        await asyncio.sleep(0.06)  # the follower is running
        await writer.family("family-9")
        written = time.monotonic()
        while not reader.revoked.is_revoked(claims(sid="family-9")):
            assert time.monotonic() - written < 0.3, "the follower did not pick it up"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_expired_entries_are_not_loaded(
    store: SQLiteStore, other_store: SQLiteStore, clock: FrozenClock
) -> None:
    """An entry past its expiry and the reader's horizon is not read at start (nor by
    catch_up)."""
    writer = Revoker(store, clock, horizon=HORIZON)
    await writer.token("short", START + 10)
    await writer.token("long", START + 10 * HORIZON)
    clock.advance(HORIZON + 1)
    loaded = Revoker(other_store, clock, horizon=HORIZON)
    await loaded.load()
    assert len(loaded.revoked) == 1
    assert not loaded.revoked.is_revoked(claims(jti="short"))
    assert loaded.revoked.is_revoked(claims(jti="long"))


async def test_a_reader_keeps_entries_for_its_own_horizon(
    store: SQLiteStore, other_store: SQLiteStore, clock: FrozenClock
) -> None:
    """A writer with a shorter token lifetime (the CLI run with other settings) stamps
    entries that expire early; a server whose tokens live longer keeps them for its own
    horizon, at start and when following, and its purge leaves them in the store."""
    short_lived = Revoker(store, clock, horizon=60)
    await short_lived.user("user-1")
    server = Revoker(other_store, clock, horizon=3600)
    clock.advance(600)
    await server.load()
    assert server.revoked.is_revoked(claims(sub="user-1", iat=START))
    assert await server.purge(100) == 0
    clock.advance(3600)
    server.prune()
    assert not server.revoked.is_revoked(claims(sub="user-1", iat=START))
    assert await server.purge(100) == 1


async def test_key_entries_reload_keys_on_catch_up_but_not_on_load(
    store: SQLiteStore, other_store: SQLiteStore, clock: FrozenClock
) -> None:
    """A key entry present at start needs no reload (keys are loaded anyway); one that
    arrives later triggers the keys-changed callback once."""
    writer = Revoker(store, clock, horizon=HORIZON)
    await writer.keys("kid-old")
    calls: list[int] = []

    async def keys_changed() -> None:
        calls.append(1)

    reader = Revoker(other_store, clock, horizon=HORIZON, keys_changed=keys_changed)
    await reader.load()
    assert calls == []
    await writer.keys("kid-new")
    assert await reader.catch_up() == 1
    assert calls == [1]
    assert await reader.catch_up() == 0
    assert calls == [1]


# -- push, staleness and fail-closed (SECURITY.md O3) --------------------------------------


def test_session_entries_refuse_nothing_and_are_no_key_change() -> None:
    """A session entry is for session caches: it refuses no token and reloads no keys."""
    table = RevocationList()
    assert table.apply([entry("session", "user-1", expires_at=START + 300, seq=1)]) is False
    table.check(claims(sub="user-1"))
    assert table.last_seq == 1


class PushedStore:
    """A real SQLite store with a push channel and a switch that makes it unreachable:
    the follower's logic against a store that pushes and fails on demand."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.down = False
        self.pushed = asyncio.Event()
        self.listeners = 0

    async def append_revocation(self, revocation: Revocation) -> Revocation:
        stored = await self.inner.append_revocation(revocation)
        self.pushed.set()
        return stored

    async def revocations_after(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        if self.down:
            raise StoreUnavailable("down")
        return await self.inner.revocations_after(seq, now, limit)

    async def purge_expired_revocations(self, now: float, limit: int = 1000) -> int:
        return await self.inner.purge_expired_revocations(now, limit)

    async def listen_revocations(self) -> PushedStore.Listener:
        if self.down:
            raise StoreUnavailable("down")
        self.listeners += 1
        return PushedStore.Listener(self)

    class Listener:
        def __init__(self, store: PushedStore) -> None:
            self.store = store

        async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109
            try:
                await asyncio.wait_for(self.store.pushed.wait(), timeout)
            except TimeoutError:
                if self.store.down:
                    raise StoreUnavailable("down") from None
                return False
            self.store.pushed.clear()
            return True

        async def close(self) -> None:
            pass


@pytest.fixture
async def following(
    store: SQLiteStore, clock: FrozenClock
) -> AsyncIterator[tuple[PushedStore, Revoker]]:
    """A revoker following a pushing store (heartbeat 0.25 s, staleness bound 1 s)."""
    pushed = PushedStore(store)
    revoker = Revoker(pushed, clock, horizon=HORIZON)  # type: ignore[arg-type]
    await revoker.load()
    task = asyncio.create_task(revoker.follow(poll_interval=10, max_staleness=1.0))
    yield pushed, revoker
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def eventually(condition: Callable[[], bool], within: float) -> float:
    """Seconds until ``condition`` holds; fails after ``within``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "condition not met in time"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_a_push_wakes_the_follower_at_once(
    following: tuple[PushedStore, Revoker], other_store: SQLiteStore, clock: FrozenClock
) -> None:
    """With a push channel the follower reads on the push, not on its poll interval
    (10 s here): another instance's entry applies in well under the 100 ms budget."""
    pushed, reader = following
    writer = Revoker(pushed, clock, horizon=HORIZON)  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    await writer.family("family-pushed")
    took = await eventually(lambda: reader.revoked.is_revoked(claims(sid="family-pushed")), 0.5)
    assert took < 0.1


async def test_an_unreadable_stream_fails_closed_then_recovers(
    following: tuple[PushedStore, Revoker], clock: FrozenClock
) -> None:
    """While the stream cannot be read the revoker is current for at most the staleness
    bound, then ensure_current raises StoreUnavailable (token requests get 503); once the
    store is back the follower resubscribes, catches up and is current again by itself,
    with what was appended meanwhile applied."""
    pushed, reader = following
    await asyncio.sleep(0.05)
    reader.ensure_current()
    assert reader.is_current()
    pushed.down = True
    await eventually(lambda: not reader.is_current(), 2.0)
    with pytest.raises(StoreUnavailable):
        reader.ensure_current()
    # Written while the reader is cut off (e.g. by another instance that still reaches it).
    await pushed.inner.append_revocation(Revocation("token", "jti-meanwhile", START, START + 300))
    listeners = pushed.listeners
    pushed.down = False
    await eventually(reader.is_current, 2.0)
    reader.ensure_current()
    assert reader.revoked.is_revoked(claims(jti="jti-meanwhile"))
    assert pushed.listeners > listeners


def test_a_revoker_that_does_not_follow_is_never_stale(
    store: SQLiteStore, clock: FrozenClock
) -> None:
    """The CLI's runtime never follows: it has nothing to be stale about."""
    revoker = Revoker(store, clock, horizon=HORIZON)
    revoker.ensure_current()
    assert not revoker.is_current()


async def test_observers_see_own_and_followed_entries(
    store: SQLiteStore, other_store: SQLiteStore, clock: FrozenClock
) -> None:
    """Observers (the session cache) get every applied entry: this instance's own at
    once, and other instances' when read from the stream."""
    here = Revoker(store, clock, horizon=HORIZON)
    seen: list[tuple[str, str]] = []
    here.observe(lambda entries: seen.extend((e.kind, e.subject) for e in entries))
    await here.sessions("user-1")
    await Revoker(other_store, clock, horizon=HORIZON).user("user-2")
    await here.catch_up()
    assert seen[0] == ("session", "user-1")
    assert ("user", "user-2") in seen
