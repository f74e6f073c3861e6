"""An optional in-process cache of sessions and their users, kept coherent by the revocation
stream, so that a session request needs no store read at all.

Whatever ends or changes a session or its user anywhere (logout, lock, role or password
change, device revocation, an admin's logout of everyone) appends a ``session`` or ``user``
entry to the stream; every instance applies it within the stream's propagation time and
drops the user's cached sessions here. So a revoked session is refused everywhere as fast
as a revoked token is.

Three rules keep it from ever serving what the store would refuse:

- an entry is used only while the instance follows the stream (``is_current``): an
  instance that cannot read the stream falls back to the store, which then answers or
  fails closed;
- an entry lives at most ``ttl`` seconds (a bound on any gap in the above);
- a lookup that raced an invalidation is not cached: the generation counter moves on every
  invalidation, and :meth:`put` stores only if it has not moved since :meth:`generation`
  was read before the store read.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from twofold.revocation import EVERYONE
from twofold.store.records import Revocation, SessionRecord, User

#: Most sessions held; the least recently used go first.
DEFAULT_SIZE = 50_000


class SessionCache:
    def __init__(
        self, ttl: float, is_current: Callable[[], bool], size: int = DEFAULT_SIZE
    ) -> None:
        self._ttl = ttl
        self._is_current = is_current
        self._size = size
        # id_hash -> (record, user, monotonic time cached)
        self._entries: OrderedDict[bytes, tuple[SessionRecord, User, float]] = OrderedDict()
        self._by_user: dict[str, set[bytes]] = {}
        self._generation = 0

    def generation(self) -> int:
        """Read before a store lookup; pass to :meth:`put` with its result."""
        return self._generation

    def get(self, id_hash: bytes) -> tuple[SessionRecord, User] | None:
        entry = self._entries.get(id_hash)
        if entry is None:
            return None
        if time.monotonic() - entry[2] > self._ttl or not self._is_current():
            self._drop(id_hash)
            return None
        self._entries.move_to_end(id_hash)
        return entry[0], entry[1]

    def put(self, record: SessionRecord, user: User, generation: int) -> None:
        if generation != self._generation:
            return  # an invalidation arrived while the store was read: it may cover this
        self._drop(record.id_hash)
        self._entries[record.id_hash] = (record, user, time.monotonic())
        self._by_user.setdefault(record.user_id, set()).add(record.id_hash)
        while len(self._entries) > self._size:
            self._drop(next(iter(self._entries)))

    def update(self, record: SessionRecord, generation: int) -> None:
        """Keep a cached record in step with a write this instance made (a touch), unless
        an invalidation came meanwhile (the entry may now be a fresher read)."""
        entry = self._entries.get(record.id_hash)
        if entry is not None and generation == self._generation:
            self._entries[record.id_hash] = (record, entry[1], entry[2])

    def invalidate(self, entries: Sequence[Revocation]) -> None:
        """Drop what the stream says changed (a revoker observer)."""
        for entry in entries:
            if entry.kind not in ("session", "user"):
                continue
            self._generation += 1
            if entry.subject == EVERYONE:
                self._entries.clear()
                self._by_user.clear()
            else:
                for id_hash in list(self._by_user.get(entry.subject, ())):
                    self._drop(id_hash)

    def _drop(self, id_hash: bytes) -> None:
        entry = self._entries.pop(id_hash, None)
        if entry is None:
            return
        hashes = self._by_user.get(entry[0].user_id)
        if hashes is not None:
            hashes.discard(id_hash)
            if not hashes:
                del self._by_user[entry[0].user_id]

    def __len__(self) -> int:
        return len(self._entries)
