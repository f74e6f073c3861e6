"""The PostgreSQL store: the records of ``store/base.py`` over a psycopg 3 connection pool,
one written-out statement each (``postgres_statements.py``).

Pooled connections are in autocommit mode and nothing is sent on them at checkout, so an
operation costs one round trip: the multi-row ones are single statements too (data-
modifying ``WITH``), and the revocation append is one implicit transaction sent as one
pipeline.

Every wait is bounded (connecting, waiting for a pooled connection, each statement) and
every connection-level failure becomes ``StoreUnavailable``: an outage fails closed, and
once the server is back the pool replaces its dead connections by itself (SECURITY.md O3).
"""

from __future__ import annotations

import dataclasses
import select
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from twofold.errors import ConfigurationError, StoreUnavailable
from twofold.store import postgres_statements as sql
from twofold.store.factory import parse_url
from twofold.store.migrate import POSTGRES_DRIVER_NAMES, head_revision
from twofold.store.paging import audit_query, check_page
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

# Records map to rows the same way on both backends: same columns, in the same order.
from twofold.store.sqlite_statements import (
    audit_from_row,
    audit_params,
    client_params,
    family_params,
    key_from_row,
    key_params,
    refresh_token_params,
    revocation_from_row,
    revocation_params,
    roles_json,
    scoped_token_from_row,
    scoped_token_params,
    session_params,
    user_from_row,
    user_params,
)

Connection = psycopg.AsyncConnection[TupleRow]
Params = Sequence[Any] | Mapping[str, Any]

# libpq settings a URL may override. Each bounds a wait: connecting; a dead peer behind an
# idle or a waiting connection (keepalives); data the server never acknowledges. The
# statement_timeout is the server's side of the same promise: no statement, lock waits
# included, runs longer than 5 s.
_LIBPQ_DEFAULTS: Mapping[str, str] = {
    "connect_timeout": "3",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
    "application_name": "twofold",
}
_SERVER_OPTIONS = "-c statement_timeout=5000"
_POOL_MAX = 10
_POOL_MIN = 2
_POOL_TIMEOUT = 5.0
_MIGRATE_HINT = "run `twofold migrate` to create or upgrade it"


def conninfo_from_url(url: str) -> tuple[str, int]:
    """A libpq connection string and the pool size for a ``postgresql://`` URL.

    The URL's query holds libpq parameters (``?sslmode=verify-full``), plus ``pool_max``.
    Errors never repeat the URL: it may hold a password.
    """
    parsed = parse_url(url)
    if parsed.drivername not in POSTGRES_DRIVER_NAMES:
        raise ConfigurationError("Not a postgresql:// (psycopg) database URL.")
    query: dict[str, str] = {}
    for key, value in parsed.query.items():
        if not isinstance(value, str):
            raise ConfigurationError(f"The database URL repeats its {key!r} option.")
        query[key] = value
    pool_max = _pool_max(query.pop("pool_max", str(_POOL_MAX)))
    # Later -c settings win, so the URL's own options override the defaults.
    options = f"{_SERVER_OPTIONS} {query.pop('options', '')}".strip()
    params: dict[str, Any] = {**_LIBPQ_DEFAULTS, **query, "options": options}
    for key, part in [
        ("host", parsed.host),
        ("port", parsed.port),
        ("user", parsed.username),
        ("password", parsed.password),
        ("dbname", parsed.database),
    ]:
        if part is not None:
            params[key] = part
    try:
        return make_conninfo(**params), pool_max
    except psycopg.ProgrammingError:
        raise ConfigurationError("The database URL has an option libpq does not know.") from None


def _pool_max(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise ConfigurationError("pool_max in the database URL must be between 1 and 1000.")
    return int(value)


class PostgresStore:
    """A :class:`twofold.store.base.Store` on a PostgreSQL database, shared safely by any
    number of processes and instances."""

    def __init__(
        self, conninfo: str, *, pool_max: int = _POOL_MAX, pool_timeout: float = _POOL_TIMEOUT
    ) -> None:
        self._conninfo = conninfo
        self._pool_max = pool_max
        self._pool_timeout = pool_timeout
        self._pool: AsyncConnectionPool[Connection] | None = None

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        conninfo, pool_max = conninfo_from_url(url)
        return cls(conninfo, pool_max=pool_max)

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Check the schema, then open the pool; ``StoreUnavailable`` if the server cannot
        be reached, ``ConfigurationError`` unless the schema is at head."""
        if self._pool is not None:
            return
        # A connection of its own, not the pool's: an unreachable server fails here at
        # once (connect_timeout) instead of after the pool's wait, with the cause chained.
        async with await self._connect() as conn:
            await _check_revision(conn)
        pool = AsyncConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=min(_POOL_MIN, self._pool_max),
            max_size=self._pool_max,
            timeout=self._pool_timeout,
            # The pool retries a failed connection with a doubling delay; after a long
            # outage the next retry could be minutes away. Giving up soon instead lets the
            # next request start a fresh attempt, so service resumes within seconds.
            reconnect_timeout=self._pool_timeout,
            name="twofold",
            open=False,
        )
        await pool.open()
        self._pool = pool

    async def close(self) -> None:
        """Close the pool's connections; closing twice is harmless."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the server answers."""
        await self._fetch_one("SELECT 1", ())

    async def _connect(self) -> Connection:
        """A new connection outside the pool."""
        try:
            return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                "The PostgreSQL server cannot be reached or refused the connection."
            ) from exc

    # -- plumbing ----------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self, conflict: str | None = None) -> AsyncIterator[Connection]:
        """A pooled connection; driver errors leave as Twofold errors (``conflict`` is the
        message for a unique violation where the protocol expects one)."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("The PostgreSQL store is not open.")
        with sql.translated_errors(conflict):
            conn = await _checkout(pool)
            try:
                yield conn
            finally:
                # A connection left broken or mid-query is closed by the pool and replaced.
                await pool.putconn(conn)

    async def _fetch_one(self, statement: str, params: Params) -> TupleRow | None:
        async with self._connection() as conn:
            cursor = await conn.execute(statement, params)
            return await cursor.fetchone()

    async def _fetch_all(self, statement: str, params: Params) -> list[TupleRow]:
        async with self._connection() as conn:
            cursor = await conn.execute(statement, params)
            return await cursor.fetchall()

    async def _execute(self, statement: str, params: Params, conflict: str | None = None) -> int:
        """Run one write statement; returns the number of rows it changed."""
        async with self._connection(conflict) as conn:
            cursor = await conn.execute(statement, params)
            return cursor.rowcount

    # -- users -------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        conflict = "A user with this id or e-mail address already exists."
        await self._execute(sql.INSERT_USER, user_params(user), conflict)

    async def get_user(self, user_id: str) -> User | None:
        row = await self._fetch_one(sql.GET_USER, (user_id,))
        return None if row is None else user_from_row(row)

    async def get_user_by_email(self, email: str) -> User | None:
        row = await self._fetch_one(sql.GET_USER_BY_EMAIL, (email,))
        return None if row is None else user_from_row(row)

    async def set_password(self, user_id: str, password_hash: str, changed_at: float) -> None:
        await self._execute(sql.SET_USER_HASH, (password_hash, changed_at, user_id))

    async def rehash_password(self, user_id: str, old_hash: str, new_hash: str) -> None:
        # The compare-and-set lives in the WHERE clause: a password change that lands
        # first is never overwritten by a stale rehash.
        await self._execute(sql.REHASH_USER, (new_hash, user_id, old_hash))

    async def list_users(self, limit: int = 100, offset: int = 0) -> list[User]:
        check_page(limit, offset)
        return [
            user_from_row(row) for row in await self._fetch_all(sql.LIST_USERS, (limit, offset))
        ]

    async def set_locked(self, user_id: str, locked: bool) -> bool:
        return await self._execute(sql.SET_USER_LOCKED, (locked, user_id)) > 0

    async def set_roles(self, user_id: str, roles: tuple[str, ...], changed_at: float) -> bool:
        params = (roles_json(roles), changed_at, user_id)
        return await self._execute(sql.SET_USER_ROLES, params) > 0

    async def set_email(self, user_id: str, email: str) -> bool:
        conflict = "A user with this e-mail address already exists."
        return await self._execute(sql.SET_USER_EMAIL, (email, user_id), conflict) > 0

    # -- sessions ----------------------------------------------------------------------

    async def put_session(self, record: SessionRecord) -> None:
        await self._execute(sql.PUT_SESSION, session_params(record))

    async def get_session(self, id_hash: bytes) -> SessionRecord | None:
        row = await self._fetch_one(sql.GET_SESSION, (id_hash,))
        return None if row is None else SessionRecord(*row)

    async def get_session_and_user(self, id_hash: bytes) -> tuple[SessionRecord, User] | None:
        row = await self._fetch_one(sql.GET_SESSION_AND_USER, (id_hash,))
        return None if row is None else (SessionRecord(*row[:11]), user_from_row(row[11:]))

    async def touch_session(
        self, id_hash: bytes, last_seen_at: float, idle_expires_at: float
    ) -> None:
        await self._execute(sql.TOUCH_SESSION, (last_seen_at, idle_expires_at, id_hash))

    async def delete_session(self, id_hash: bytes) -> bool:
        return await self._execute(sql.DELETE_SESSION, (id_hash,)) > 0

    async def delete_user_sessions(self, user_id: str, keep: bytes | None = None) -> int:
        return await self._execute(sql.DELETE_USER_SESSIONS, (user_id, keep))

    async def renew_session(
        self, old_hash: bytes, new: SessionRecord, old_expires_at: float
    ) -> bool:
        # The new record's fields by name, and the old record's.
        params = {**dataclasses.asdict(new), "old_hash": old_hash, "old_expires_at": old_expires_at}
        return await self._execute(sql.RENEW_SESSION, params) == 1

    async def delete_all_sessions(self) -> int:
        return await self._execute(sql.DELETE_ALL_SESSIONS, ())

    async def list_user_sessions(self, user_id: str) -> list[SessionRecord]:
        rows = await self._fetch_all(sql.LIST_USER_SESSIONS, (user_id,))
        return [SessionRecord(*row) for row in rows]

    async def purge_expired_sessions(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return await self._execute(sql.PURGE_EXPIRED_SESSIONS, (now, now, limit))

    async def list_live_sessions(
        self, now: float, limit: int = 100, offset: int = 0
    ) -> list[SessionRecord]:
        check_page(limit, offset)
        rows = await self._fetch_all(sql.LIST_LIVE_SESSIONS, (now, now, limit, offset))
        return [SessionRecord(*row) for row in rows]

    # -- refresh-token families --------------------------------------------------------

    async def create_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        params = (*family_params(family), *refresh_token_params(first))
        await self._execute(sql.CREATE_FAMILY, params)

    async def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        row = await self._fetch_one(sql.GET_REFRESH_TOKEN, (token_hash,))
        return None if row is None else RefreshToken(*row)

    async def get_family(self, family_id: str) -> RefreshFamily | None:
        row = await self._fetch_one(sql.GET_FAMILY, (family_id,))
        return None if row is None else RefreshFamily(*row)

    async def spend_refresh_token(
        self,
        token_hash: bytes,
        successor: RefreshToken,
        last_used_at: float,
        idle_expires_at: float,
    ) -> bool:
        params = {
            "old_hash": token_hash,
            "family_id": successor.family_id,
            "new_hash": successor.hash,
            "new_created_at": successor.created_at,
            "new_spent_at": successor.spent_at,
            "new_successor_hash": successor.successor_hash,
            "last_used_at": last_used_at,
            "idle_expires_at": idle_expires_at,
        }
        if await self._execute(sql.SPEND_REFRESH_TOKEN, params) == 1:
            return True
        # Lost a race, spent already, unknown, or filed under another family: only the
        # last is a bug (in the caller), and only the losing path pays for telling it.
        row = await self._fetch_one(sql.GET_REFRESH_TOKEN_FAMILY, (token_hash,))
        if row is not None and row[0] != successor.family_id:
            raise ValueError("the successor must belong to the spent token's family")
        return False

    async def delete_family(self, family_id: str) -> bool:
        return await self._execute(sql.DELETE_FAMILY, (family_id,)) > 0

    async def delete_user_families(self, user_id: str, keep: str | None = None) -> list[str]:
        rows = await self._fetch_all(sql.DELETE_USER_FAMILIES, (user_id, keep))
        return sorted(row[0] for row in rows)

    async def delete_all_families(self) -> int:
        return await self._execute(sql.DELETE_ALL_FAMILIES, ())

    async def list_user_families(self, user_id: str) -> list[RefreshFamily]:
        rows = await self._fetch_all(sql.LIST_USER_FAMILIES, (user_id,))
        return [RefreshFamily(*row) for row in rows]

    async def list_live_families(
        self, now: float, limit: int = 100, offset: int = 0
    ) -> list[RefreshFamily]:
        check_page(limit, offset)
        rows = await self._fetch_all(sql.LIST_LIVE_FAMILIES, (now, now, limit, offset))
        return [RefreshFamily(*row) for row in rows]

    async def purge_expired_families(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        # The count is of families: their tokens go by ON DELETE CASCADE.
        return await self._execute(sql.PURGE_EXPIRED_FAMILIES, (now, now, limit))

    # -- revocations -------------------------------------------------------------------

    async def append_revocation(self, revocation: Revocation) -> Revocation:
        async with self._connection() as conn:
            # One pipeline, one Sync: the server runs everything before a Sync as one
            # implicit transaction, committed at the Sync, or rolled back there if a
            # statement failed (the rest are skipped). So the lock is held for the
            # server's work and the commit only, never for a round trip to this process.
            async with conn.pipeline():
                await conn.execute(sql.LOCK_REVOCATIONS)
                cursor = await conn.execute(sql.INSERT_REVOCATION, revocation_params(revocation))
                await conn.execute(sql.NOTIFY_REVOCATIONS)
            row = await cursor.fetchone()
        if row is None:
            raise RuntimeError("the insert returned no seq")
        return dataclasses.replace(revocation, seq=row[0])

    async def listen_revocations(self) -> PostgresRevocationListener:
        conn = await self._connect()
        try:
            with sql.translated_errors():
                await conn.execute(sql.LISTEN_REVOCATIONS)
        except BaseException:
            await conn.close()
            raise
        return PostgresRevocationListener(conn)

    async def revocations_after(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        check_page(limit, 0)
        rows = await self._fetch_all(sql.REVOCATIONS_AFTER, (seq, now, limit))
        return [revocation_from_row(row) for row in rows]

    async def purge_expired_revocations(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return await self._execute(sql.PURGE_EXPIRED_REVOCATIONS, (now, limit))

    # -- audit -------------------------------------------------------------------------

    async def append_audit(self, event: AuditEvent) -> int:
        row = await self._fetch_one(sql.INSERT_AUDIT, audit_params(event))
        if row is None:
            raise RuntimeError("the insert returned no seq")
        seq: int = row[0]
        return seq

    async def list_audit(
        self,
        *,
        before: int | None = None,
        limit: int = 50,
        user_id: str | None = None,
        kind: str | None = None,
    ) -> list[AuditEvent]:
        statement, params = audit_query(sql, before=before, limit=limit, user_id=user_id, kind=kind)
        return [audit_from_row(row) for row in await self._fetch_all(statement, params)]

    # -- failed logins -----------------------------------------------------------------

    async def record_failure(self, key: str, now: float, forget_after: float) -> int:
        params = {"key": key, "now": now, "since": now - forget_after}
        row = await self._fetch_one(sql.RECORD_FAILURE, params)
        if row is None:
            raise RuntimeError("the upsert returned no count")
        failures: int = row[0]
        return failures

    async def get_failures(
        self, keys: Sequence[str], now: float, forget_after: float
    ) -> dict[str, tuple[int, float]]:
        if not keys:
            return {}
        rows = await self._fetch_all(sql.GET_FAILURES, (list(keys), now - forget_after))
        return {key: (failures, last) for key, failures, last in rows}

    async def clear_failures(self, key: str) -> None:
        await self._execute(sql.CLEAR_FAILURES, (key,))

    async def purge_stale_failures(self, before: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return await self._execute(sql.PURGE_STALE_FAILURES, (before, limit))

    # -- clients -----------------------------------------------------------------------

    async def add_client(self, client: Client) -> None:
        conflict = "A client with this id or name already exists."
        await self._execute(sql.INSERT_CLIENT, client_params(client), conflict)

    async def get_client(self, client_id: str) -> Client | None:
        row = await self._fetch_one(sql.GET_CLIENT, (client_id,))
        return None if row is None else Client(*row)

    async def list_clients(self) -> list[Client]:
        return [Client(*row) for row in await self._fetch_all(sql.LIST_CLIENTS, ())]

    async def delete_client(self, client_id: str) -> bool:
        return await self._execute(sql.DELETE_CLIENT, (client_id,)) > 0

    # -- scoped tokens -----------------------------------------------------------------

    async def add_scoped_token(self, record: ScopedTokenRecord) -> None:
        await self._execute(sql.INSERT_SCOPED_TOKEN, scoped_token_params(record))

    async def get_scoped_token(self, token_id: str) -> ScopedTokenRecord | None:
        row = await self._fetch_one(sql.GET_SCOPED_TOKEN, (token_id,))
        return None if row is None else scoped_token_from_row(row)

    async def list_scoped_tokens(self, user_id: str, now: float) -> list[ScopedTokenRecord]:
        rows = await self._fetch_all(sql.LIST_USER_SCOPED_TOKENS, (user_id, now))
        return [scoped_token_from_row(row) for row in rows]

    async def touch_scoped_token(self, token_id: str, at: float) -> None:
        await self._execute(sql.TOUCH_SCOPED_TOKEN, (at, token_id))

    async def delete_scoped_token(self, token_id: str, user_id: str | None = None) -> bool:
        return await self._execute(sql.DELETE_SCOPED_TOKEN, (token_id, user_id)) > 0

    async def delete_user_scoped_tokens(self, user_id: str) -> list[str]:
        rows = await self._fetch_all(sql.DELETE_USER_SCOPED_TOKENS, (user_id,))
        return sorted(row[0] for row in rows)

    async def purge_expired_scoped_tokens(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return await self._execute(sql.PURGE_EXPIRED_SCOPED_TOKENS, (now, limit))

    # -- signing keys ------------------------------------------------------------------

    async def add_key(self, key: StoredKey) -> None:
        conflict = "A signing key with this kid already exists."
        await self._execute(sql.INSERT_KEY, key_params(key), conflict)

    async def list_keys(self) -> list[StoredKey]:
        return [key_from_row(row) for row in await self._fetch_all(sql.LIST_KEYS, ())]

    async def set_key_state(self, kid: str, state: KeyState, retire_after: float | None) -> bool:
        return await self._execute(sql.SET_KEY_STATE, (state, retire_after, kid)) > 0


class PostgresRevocationListener:
    """A :class:`twofold.store.base.RevocationListener` on a LISTEN connection of its own
    (a pooled one would carry the subscription to whoever borrowed it next)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 (see the protocol)
        heard = False
        try:
            # stop_after=1 returns once a packet brings a notice; the loop still takes
            # every notice in that packet, so none is left to wake the next wait early.
            async for _ in self._conn.notifies(timeout=max(timeout, 0.0), stop_after=1):
                heard = True
        except psycopg.Error as exc:
            raise StoreUnavailable("The revocation subscription lost its connection.") from exc
        return heard

    async def close(self) -> None:
        await self._conn.close()


async def _checkout(pool: AsyncConnectionPool[Connection]) -> Connection:
    """A pooled connection that is not known to be dead.

    An idle connection has nothing to say: input waiting on one is, in practice, the
    server's goodbye (a restart, ``pg_terminate_backend``, an idle timeout) and the end of
    the stream. A zero-timeout poll finds it without a round trip, and the connection is
    discarded (the pool replaces it) instead of failing the request that drew it.
    """
    for _ in range(pool.max_size + 1):  # each dead one found is gone for good
        conn = await pool.getconn()
        if not conn.closed:
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN)
            if not poller.poll(0):
                return conn
        await conn.close()
        await pool.putconn(conn)
    raise StoreUnavailable("The PostgreSQL store is unavailable (no live connection).")


async def _check_revision(conn: Connection) -> None:
    try:
        with sql.translated_errors():
            cursor = await conn.execute(sql.SCHEMA_REVISION)
            row = await cursor.fetchone()
    except pg_errors.UndefinedTable:
        row = None
    expected = head_revision()
    if row is None:
        raise ConfigurationError(f"The PostgreSQL database is not migrated; {_MIGRATE_HINT}.")
    if row[0] != expected:
        raise ConfigurationError(
            f"The PostgreSQL database is at schema revision {row[0]!r} but this Twofold "
            f"expects {expected!r}; {_MIGRATE_HINT} (with the matching version)."
        )
