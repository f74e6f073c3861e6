"""The Redis store: the records of ``store/base.py`` as Redis hashes and sorted sets, every
multi-key change one Lua script (``redis_scripts.py``, which also shows the key layout).

There is no schema to migrate. How records are encoded is in ``redis_records.py``; the
connection pool, failure handling (SECURITY.md O3) and the persistence check are in
``redis_connection.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript

from twofold.errors import Conflict, StoreUnavailable
from twofold.store import redis_scripts as lua
from twofold.store.paging import check_audit_limit, check_page
from twofold.store.records import (
    AuditEvent,
    Client,
    KeyState,
    RefreshFamily,
    RefreshToken,
    Revocation,
    ScopedTokenRecord,
    SessionRecord,
    StoredKey,
    User,
)
from twofold.store.redis_connection import (
    PipelinedReads,
    RedisRevocationListener,
    check_persistence,
    pool_options,
    translated_errors,
)
from twofold.store.redis_records import (
    Fields,
    Pairs,
    audit_entry,
    audit_from_entry,
    client_fields,
    client_from_fields,
    decoded,
    failures_from_pair,
    family_fields,
    family_from_fields,
    flag,
    from_reply,
    key_fields,
    key_from_fields,
    key_state_fields,
    maybe_from_reply,
    num,
    revocation_entry,
    revocation_from_member,
    roles_json,
    scoped_token_fields,
    scoped_token_from_fields,
    session_fields,
    session_from_fields,
    text,
    token_fields,
    token_from_fields,
    user_fields,
    user_from_fields,
)

_R = TypeVar("_R")

# Records deleted per script by the global logouts, so none blocks Redis for long.
_DELETE_BATCH = 500
_CONFLICTS = {
    "add_user": "A user with this id or e-mail address already exists.",
    "set_email": "A user with this e-mail address already exists.",
    "add_client": "A client with this id or name already exists.",
    "add_key": "A signing key with this kid already exists.",
}
# What a script's other answers than "ok" mean: a bug in its caller.
_BUGS = {
    "no_user": "the record's user does not exist",
    "family_exists": "a refresh family with this id already exists",
    "token_exists": "a refresh token with this hash already exists",
    "other_family": "the successor must belong to the spent token's family",
    "scoped_token_exists": "a scoped token with this id already exists",
}


class RedisStore:
    """A :class:`twofold.store.base.Store` on one Redis server (standalone or a primary;
    not a cluster), from a ``redis://`` or ``rediss://`` URL with the db number as path."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 3.0,
        timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        self._options = pool_options(
            url,
            connect_timeout=connect_timeout,
            timeout=timeout,
            max_connections=max_connections,
        )
        self._timeout = timeout
        self._client: Redis | None = None
        self._reads: PipelinedReads | None = None
        self._scripts: dict[str, AsyncScript] = {}

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and check persistence; ``StoreUnavailable`` if Redis cannot be reached."""
        if self._client is not None:
            return
        client = Redis(connection_pool=BlockingConnectionPool(**self._options))
        self._scripts = {name: client.register_script(body) for name, body in lua.SCRIPTS.items()}
        self._reads = PipelinedReads(client)
        self._client = client
        try:
            await self.ping()
            await check_persistence(client)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every connection; closing twice is harmless."""
        client, self._client, self._reads = self._client, None, None
        if client is not None:
            await client.aclose(close_connection_pool=True)

    async def ping(self) -> None:
        await self._call(self._redis().ping())

    # -- users -------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        await self._add("add_user", user.id, user.email, num(user.created_at), *user_fields(user))

    async def get_user(self, user_id: str) -> User | None:
        return await self._get(lua.user_key(user_id), user_from_fields, "id", user_id)

    async def get_user_by_email(self, email: str) -> User | None:
        return maybe_from_reply(user_from_fields, await self._eval("get_user_by_email", email))

    async def set_password(self, user_id: str, password_hash: str, changed_at: float) -> None:
        fields = ("password_hash", password_hash, "password_changed_at", num(changed_at))
        await self._update(lua.user_key(user_id), fields)

    async def rehash_password(self, user_id: str, old_hash: str, new_hash: str) -> None:
        await self._eval("rehash_password", user_id, old_hash, new_hash)

    async def list_users(self, limit: int = 100, offset: int = 0) -> list[User]:
        check_page(limit, offset)
        if limit == 0:
            return []
        return await self._list_index(
            lua.USERS, lua.user_key(""), offset, offset + limit - 1, user_from_fields
        )

    async def set_locked(self, user_id: str, locked: bool) -> bool:
        return await self._update(lua.user_key(user_id), ("locked", flag(locked)))

    async def set_roles(self, user_id: str, roles: tuple[str, ...], changed_at: float) -> bool:
        return bool(await self._eval("set_roles", user_id, roles_json(roles), num(changed_at)))

    async def set_email(self, user_id: str, email: str) -> bool:
        answer = await self._eval("set_email", user_id, email)
        if answer == b"conflict":
            raise Conflict(_CONFLICTS["set_email"])
        return bool(answer)

    # -- sessions ----------------------------------------------------------------------

    async def put_session(self, record: SessionRecord) -> None:
        _check(await self._eval("put_session", record.id_hash.hex(), *session_fields(record)))

    async def get_session(self, id_hash: bytes) -> SessionRecord | None:
        return await self._get(lua.session_key(id_hash), session_from_fields, "id_hash", id_hash)

    async def get_session_and_user(self, id_hash: bytes) -> tuple[SessionRecord, User] | None:
        reply = await self._eval("get_session_and_user", id_hash.hex())
        if reply is None:
            return None
        return from_reply(session_from_fields, reply[0]), from_reply(user_from_fields, reply[1])

    async def touch_session(
        self, id_hash: bytes, last_seen_at: float, idle_expires_at: float
    ) -> None:
        await self._eval("touch_session", id_hash.hex(), num(last_seen_at), num(idle_expires_at))

    async def delete_session(self, id_hash: bytes) -> bool:
        return bool(await self._eval("delete_one", "session", id_hash.hex()))

    async def delete_user_sessions(self, user_id: str, keep: bytes | None = None) -> int:
        keeping = () if keep is None else (keep.hex(),)
        return len(await self._eval("delete_of_user", "session", user_id, *keeping))

    async def renew_session(
        self, old_hash: bytes, new: SessionRecord, old_expires_at: float
    ) -> bool:
        answer = await self._eval(
            "renew_session",
            old_hash.hex(),
            num(old_expires_at),
            new.id_hash.hex(),
            *session_fields(new),
        )
        return answer != b"refused" and _check(answer)

    async def delete_all_sessions(self) -> int:
        return await self._delete_all("session")

    async def list_user_sessions(self, user_id: str) -> list[SessionRecord]:
        reply = await self._eval("list_of_user", "session", user_id)
        return [from_reply(session_from_fields, r) for r in reply]

    async def purge_expired_sessions(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return int(await self._eval("purge", "session", num(now), limit))

    async def list_live_sessions(
        self, now: float, limit: int = 100, offset: int = 0
    ) -> list[SessionRecord]:
        return await self._list_live("session", now, limit, offset, session_from_fields)

    # -- refresh-token families --------------------------------------------------------

    async def create_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        if first.family_id != family.id:
            raise ValueError("the first token must belong to the family")
        family_pairs = family_fields(family)
        answer = await self._eval(
            "create_family",
            family.id,
            first.hash.hex(),
            len(family_pairs),
            *family_pairs,
            *token_fields(first),
        )
        _check(answer)

    async def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        return await self._get(lua.token_key(token_hash), token_from_fields, "hash", token_hash)

    async def get_family(self, family_id: str) -> RefreshFamily | None:
        return await self._get(lua.family_key(family_id), family_from_fields, "id", family_id)

    async def spend_refresh_token(
        self,
        token_hash: bytes,
        successor: RefreshToken,
        last_used_at: float,
        idle_expires_at: float,
    ) -> bool:
        answer = await self._eval(
            "spend_refresh_token",
            token_hash.hex(),
            successor.hash.hex(),
            num(last_used_at),
            num(idle_expires_at),
            *token_fields(successor),
        )
        return answer != b"refused" and _check(answer)

    async def delete_family(self, family_id: str) -> bool:
        return bool(await self._eval("delete_one", "family", family_id))

    async def delete_user_families(self, user_id: str, keep: str | None = None) -> list[str]:
        keeping = () if keep is None else (keep,)
        return [text(i) for i in await self._eval("delete_of_user", "family", user_id, *keeping)]

    async def delete_all_families(self) -> int:
        return await self._delete_all("family")

    async def list_user_families(self, user_id: str) -> list[RefreshFamily]:
        reply = await self._eval("list_of_user", "family", user_id)
        return [from_reply(family_from_fields, r) for r in reply]

    async def list_live_families(
        self, now: float, limit: int = 100, offset: int = 0
    ) -> list[RefreshFamily]:
        return await self._list_live("family", now, limit, offset, family_from_fields)

    async def purge_expired_families(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return int(await self._eval("purge", "family", num(now), limit))

    # -- revocations -------------------------------------------------------------------

    async def append_revocation(self, revocation: Revocation) -> Revocation:
        entry = revocation_entry(revocation)
        seq = await self._eval("append_revocation", entry, num(revocation.expires_at))
        return dataclasses.replace(revocation, seq=int(seq))

    async def listen_revocations(self) -> RedisRevocationListener:
        return await RedisRevocationListener.subscribe(self._redis(), self._timeout)

    async def revocations_after(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        check_page(limit, 0)
        if limit == 0:
            return []
        entries = await self._eval("revocations_after", seq, num(now), limit)
        return [decoded(revocation_from_member, entry) for entry in entries]

    async def purge_expired_revocations(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return int(await self._eval("purge_revocations", num(now), limit))

    # -- audit -------------------------------------------------------------------------

    async def append_audit(self, event: AuditEvent) -> int:
        users = dict.fromkeys(u for u in (event.user_id, event.actor_id) if u is not None)
        return int(await self._eval("append_audit", audit_entry(event), event.kind, *users))

    async def list_audit(
        self,
        *,
        before: int | None = None,
        limit: int = 50,
        user_id: str | None = None,
        kind: str | None = None,
    ) -> list[AuditEvent]:
        check_audit_limit(limit)
        below = "+inf" if before is None else f"({before}"
        reply = await self._eval(
            "list_audit",
            below,
            limit,
            flag(user_id is not None),
            user_id or "",
            flag(kind is not None),
            kind or "",
        )
        return [
            decoded(audit_from_entry, pair) for pair in zip(reply[::2], reply[1::2], strict=True)
        ]

    # -- failed logins -----------------------------------------------------------------

    async def record_failure(self, key: str, now: float, forget_after: float) -> int:
        since = num(now - forget_after)
        return int(await self._eval("record_failure", key, num(now), since, num(forget_after)))

    async def get_failures(
        self, keys: Sequence[str], now: float, forget_after: float
    ) -> dict[str, tuple[int, float]]:
        if not keys:
            return {}
        since = now - forget_after
        found: dict[str, tuple[int, float]] = {}
        for key, stored in zip(keys, await self._eval("get_failures", *keys), strict=True):
            if stored == [None, None]:
                continue
            failures, last = decoded(failures_from_pair, stored)
            if last >= since:
                found[key] = (failures, last)
        return found

    async def clear_failures(self, key: str) -> None:
        await self._call(self._redis().delete(lua.failures_key(key)))

    async def purge_stale_failures(self, before: float, limit: int = 1000) -> int:
        """Always 0: each counter carries a native expiry past its window (moved by every
        failure), so Redis deletes the stale ones by itself and there is nothing to purge."""
        check_page(limit, 0)
        return 0

    # -- clients -----------------------------------------------------------------------

    async def add_client(self, client: Client) -> None:
        fields = client_fields(client)
        await self._add("add_client", client.id, client.name, num(client.created_at), *fields)

    async def get_client(self, client_id: str) -> Client | None:
        return await self._get(lua.client_key(client_id), client_from_fields, "id", client_id)

    async def list_clients(self) -> list[Client]:
        return await self._list_index(lua.CLIENTS, lua.client_key(""), 0, -1, client_from_fields)

    async def delete_client(self, client_id: str) -> bool:
        return bool(await self._eval("delete_client", client_id))

    # -- scoped tokens -----------------------------------------------------------------

    async def add_scoped_token(self, record: ScopedTokenRecord) -> None:
        answer = await self._eval(
            "add_scoped_token",
            record.id,
            record.user_id,
            num(record.created_at),
            num(record.expires_at),
            *scoped_token_fields(record),
        )
        _check(answer)

    async def get_scoped_token(self, token_id: str) -> ScopedTokenRecord | None:
        return await self._get(
            lua.scoped_token_key(token_id), scoped_token_from_fields, "id", token_id
        )

    async def list_scoped_tokens(self, user_id: str, now: float) -> list[ScopedTokenRecord]:
        reply = await self._eval("list_scoped_tokens", user_id, num(now))
        return [from_reply(scoped_token_from_fields, r) for r in reply]

    async def touch_scoped_token(self, token_id: str, at: float) -> None:
        await self._update(lua.scoped_token_key(token_id), ("last_used_at", num(at)))

    async def delete_scoped_token(self, token_id: str, user_id: str | None = None) -> bool:
        owner = () if user_id is None else (user_id,)
        return bool(await self._eval("delete_scoped_token", token_id, *owner))

    async def delete_user_scoped_tokens(self, user_id: str) -> list[str]:
        return sorted(text(i) for i in await self._eval("delete_user_scoped_tokens", user_id))

    async def purge_expired_scoped_tokens(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return int(await self._eval("purge_scoped_tokens", num(now), limit))

    # -- signing keys ------------------------------------------------------------------

    async def add_key(self, key: StoredKey) -> None:
        await self._add("add_key", key.kid, num(key.created_at), *key_fields(key))

    async def list_keys(self) -> list[StoredKey]:
        return await self._list_index(
            lua.SIGNING_KEYS, lua.signing_key_key(""), 0, -1, key_from_fields
        )

    async def set_key_state(self, kid: str, state: KeyState, retire_after: float | None) -> bool:
        fields = key_state_fields(state, retire_after)
        # A retire_after of None is no field: drop it first, then set what is given.
        return await self._update(lua.signing_key_key(kid), fields, remove=("retire_after",))

    # -- plumbing ----------------------------------------------------------------------

    def _redis(self) -> Redis:
        if self._client is None:
            raise StoreUnavailable("The Redis store is not open.")
        return self._client

    async def _call(self, awaitable: Any) -> Any:
        """Await one driver call, with driver failures as Twofold errors. A lost
        connection also drops the pool's idle ones: after a Redis restart they are all
        dead, and each would otherwise fail one later request (the driver never retries)."""
        try:
            with translated_errors():
                return await awaitable
        except StoreUnavailable:
            await self._redis().connection_pool.disconnect(inuse_connections=False)
            raise

    async def _eval(self, script: str, *args: str | bytes | int, keys: Sequence[str] = ()) -> Any:
        self._redis()
        return await self._call(self._scripts[script](keys=keys, args=args))

    async def _get(
        self, key: str, decode: Callable[[Fields], _R], field: str, expected: object
    ) -> _R | None:
        """The record stored as hash ``key`` (whose ``field`` must be ``expected``), or None.

        Records are read on the pipelined connection (``PipelinedReads``): this is the
        per-request read of sessions and tokens. Should its replies ever fall out of step,
        the record would not be the one asked for: the read fails (503), it never runs as
        another user or touches another user's tokens."""
        if self._reads is None:
            raise StoreUnavailable("The Redis store is not open.")
        record = maybe_from_reply(decode, await self._call(self._reads.read("HGETALL", key)))
        if record is not None and getattr(record, field) != expected:
            raise StoreUnavailable("Redis answered with another record than the one asked for.")
        return record

    async def _add(self, script: str, *args: str | bytes | int) -> None:
        """Run a script that adds a record: ``Conflict`` if its id (or name) is taken."""
        if await self._eval(script, *args) == b"conflict":
            raise Conflict(_CONFLICTS[script])

    async def _update(self, key: str, fields: Pairs, *, remove: tuple[str, ...] = ()) -> bool:
        """Change fields of an existing record; False (and nothing stored) if it is missing."""
        return bool(await self._eval("update_existing", len(remove), *remove, *fields, keys=[key]))

    async def _list_index(
        self, index: str, prefix: str, first: int, last: int, decode: Callable[[Fields], _R]
    ) -> list[_R]:
        reply = await self._eval("list_index", prefix, first, last, keys=[index])
        return [from_reply(decode, fields) for fields in reply]

    async def _list_live(
        self, kind: str, now: float, limit: int, offset: int, decode: Callable[[Fields], _R]
    ) -> list[_R]:
        check_page(limit, offset)
        if limit == 0:
            return []
        reply = await self._eval("list_live", kind, num(now), limit, offset)
        return [from_reply(decode, fields) for fields in reply]

    async def _delete_all(self, kind: str) -> int:
        # Batches: a global logout of many users is many short scripts, not one long one.
        total = 0
        while True:
            deleted, consumed = await self._eval("delete_batch", kind, _DELETE_BATCH)
            total += int(deleted)
            if consumed < _DELETE_BATCH:
                return total


def _check(answer: bytes) -> bool:
    """True for a script's ``ok``; a caller bug (ValueError) for its other answers."""
    if answer != b"ok":
        raise ValueError(_BUGS.get(text(answer), text(answer)))
    return True
