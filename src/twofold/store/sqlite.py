"""The SQLite store: stdlib ``sqlite3``, reads on the event loop, writes on one thread.

SQLAlchemy runs the migrations only. At runtime its per-query cost (statement compilation
and caching, result-row wrapping) is several times that of a primary-key lookup itself, and
the session read sits on every authenticated request, so this module speaks ``sqlite3``.

Reads run on the event-loop thread, on a read connection of their own. In WAL mode a reader
never waits for the writer (it reads the last committed snapshot), and a primary-key lookup
(~10 us measured) is cheaper than a round trip to a worker thread (50-80 us). Writes go
to one dedicated thread with its own connection: they never block the loop, and a single
writer serialises them without SQLite lock contention.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from twofold.errors import ConfigurationError, StoreUnavailable
from twofold.store import sqlite_statements as sql
from twofold.store.migrate import head_revision
from twofold.store.records import (
    AuditEvent,
    Client,
    KeyState,
    RefreshFamily,
    RefreshToken,
    Revocation,
    SessionRecord,
    StoredKey,
    User,
)
from twofold.store.sqlite_statements import translate_error

_T = TypeVar("_T")

_MIGRATE_HINT = "run `twofold migrate` to create or upgrade it"

# A WAL reader only meets a lock in rare moments (recovery after a crash, a journal-mode
# change). It waits on the event loop, stalling every request, so it gives up far sooner
# than the writer (busy_timeout_ms, 5 s by default) and the one request fails closed.
_READER_BUSY_TIMEOUT_MS = 200

# list_audit's "no before": larger than any seq SQLite can assign.
_MAX_SEQ = 2**63 - 1
_MAX_AUDIT_PAGE = 1000


class SQLiteStore:
    """A :class:`twofold.store.base.Store` on one SQLite file.

    Use it from the event loop that opened it: the read connection belongs to that thread.
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the connections; ``ConfigurationError`` unless the schema is at head."""
        if self._reader is not None:
            return
        try:
            self._reader = self._connect(min(self._busy_timeout_ms, _READER_BUSY_TIMEOUT_MS))
            self._reader.execute("PRAGMA query_only=ON")
            self._check_revision(self._reader)
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="twofold-sqlite-writer")
            # Created on the writer thread, so it keeps sqlite3's same-thread check.
            self._writer = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._connect_writer
            )
        except BaseException as exc:
            await self.close()
            mapped = translate_error(exc) if isinstance(exc, sqlite3.Error) else None
            if mapped is None:
                raise
            raise mapped from exc

    async def close(self) -> None:
        """Close both connections and stop the writer thread; closing twice is harmless."""
        reader, writer, executor = self._reader, self._writer, self._executor
        self._reader = self._writer = self._executor = None
        try:
            if writer is not None and executor is not None:
                # Queued behind any write still running, so nothing is cut off mid-way.
                await asyncio.get_running_loop().run_in_executor(executor, writer.close)
        finally:
            if executor is not None:
                executor.shutdown(wait=True)
            if reader is not None:
                reader.close()

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless both the read side and the writer answer."""
        self._read_one("SELECT 1", ())
        await self._write(lambda conn: conn.execute("SELECT 1").fetchone())

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        # mode=rw: never create the file here; a missing database is an operator error.
        uri = self.path.resolve().as_uri() + "?mode=rw"
        try:
            # isolation_level=None: autocommit. Every statement here is its own atomic
            # transaction, and the reader never holds a snapshot open between requests
            # (which would stop checkpoints from recycling the WAL).
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
        except sqlite3.Error as exc:
            if not self.path.exists():
                raise ConfigurationError(
                    f"The database file {self.path} does not exist; {_MIGRATE_HINT}."
                ) from exc
            raise StoreUnavailable(f"The SQLite database cannot be opened ({exc}).") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect(self._busy_timeout_ms)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreUnavailable(f"SQLite refused WAL mode (journal_mode={mode}).")
            # FULL, not NORMAL: with NORMAL a commit in WAL mode survives a killed process
            # but not a power cut or OS crash. A registration or a logout that was
            # acknowledged must not come back, so each commit waits for its fsync.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_revision(self, conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute(sql.SCHEMA_REVISION).fetchone()
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith("no such table"):
                raise StoreUnavailable(f"The SQLite database cannot be read ({exc}).") from exc
            row = None
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"The SQLite database cannot be read ({exc}).") from exc
        expected = head_revision()
        if row is None:
            raise ConfigurationError(f"The database {self.path} is not migrated; {_MIGRATE_HINT}.")
        if row[0] != expected:
            raise ConfigurationError(
                f"The database {self.path} is at schema revision {row[0]!r} but this "
                f"Twofold expects {expected!r}; {_MIGRATE_HINT} (with the matching version)."
            )

    # -- plumbing ----------------------------------------------------------------------

    def _read_one(self, statement: str, params: tuple[Any, ...]) -> Any:
        return self._read(statement, params, sqlite3.Cursor.fetchone)

    def _read_all(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        return self._read(statement, params, sqlite3.Cursor.fetchall)

    def _read(
        self,
        statement: str,
        params: tuple[Any, ...],
        fetch: Callable[[sqlite3.Cursor], _T],
    ) -> _T:
        reader = self._reader
        if reader is None:
            raise StoreUnavailable("The SQLite store is not open.")
        try:
            # Fetching steps the statement too, so it can fail like execute can.
            return fetch(reader.execute(statement, params))
        except sqlite3.Error as exc:
            mapped = translate_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def _write(
        self, work: Callable[[sqlite3.Connection], _T], conflict: str | None = None
    ) -> _T:
        writer, executor = self._writer, self._executor
        if writer is None or executor is None:
            raise StoreUnavailable("The SQLite store is not open.")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work, writer)
        except sqlite3.Error as exc:
            mapped = translate_error(exc, conflict)
            if mapped is None:
                raise
            raise mapped from exc

    async def _execute(self, statement: str, params: tuple[Any, ...]) -> int:
        """Run one write statement; returns the number of rows it changed."""
        return await self._write(lambda conn: conn.execute(statement, params).rowcount)

    async def _atomic(
        self, work: Callable[[sqlite3.Connection], _T], conflict: str | None = None
    ) -> _T:
        """Run several statements on the writer as one transaction."""
        return await self._write(lambda conn: _in_transaction(conn, work), conflict)

    # -- users -------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        params = sql.user_params(user)
        await self._write(
            lambda conn: conn.execute(sql.INSERT_USER, params),
            conflict="A user with this id or e-mail address already exists.",
        )

    async def get_user(self, user_id: str) -> User | None:
        row = self._read_one(sql.GET_USER, (user_id,))
        return None if row is None else sql.user_from_row(row)

    async def get_user_by_email(self, email: str) -> User | None:
        row = self._read_one(sql.GET_USER_BY_EMAIL, (email,))
        return None if row is None else sql.user_from_row(row)

    async def set_password(self, user_id: str, password_hash: str, changed_at: float) -> None:
        await self._execute(sql.SET_USER_HASH, (password_hash, changed_at, user_id))

    async def rehash_password(self, user_id: str, old_hash: str, new_hash: str) -> None:
        # The compare-and-set lives in the WHERE clause: one atomic statement, so a
        # password change that lands first is never overwritten by a stale rehash.
        await self._execute(sql.REHASH_USER, (new_hash, user_id, old_hash))

    async def list_users(self, limit: int = 100, offset: int = 0) -> list[User]:
        _check_page(limit, offset)
        return [sql.user_from_row(row) for row in self._read_all(sql.LIST_USERS, (limit, offset))]

    async def set_locked(self, user_id: str, locked: bool) -> bool:
        return await self._execute(sql.SET_USER_LOCKED, (locked, user_id)) > 0

    async def set_roles(self, user_id: str, roles: tuple[str, ...]) -> bool:
        return await self._execute(sql.SET_USER_ROLES, (sql.roles_json(roles), user_id)) > 0

    # -- sessions ----------------------------------------------------------------------

    async def put_session(self, record: SessionRecord) -> None:
        params = sql.session_params(record)
        await self._write(lambda conn: conn.execute(sql.PUT_SESSION, params))

    async def get_session(self, id_hash: bytes) -> SessionRecord | None:
        row = self._read_one(sql.GET_SESSION, (id_hash,))
        return None if row is None else SessionRecord(*row)

    async def touch_session(
        self, id_hash: bytes, last_seen_at: float, idle_expires_at: float
    ) -> None:
        await self._execute(sql.TOUCH_SESSION, (last_seen_at, idle_expires_at, id_hash))

    async def delete_session(self, id_hash: bytes) -> bool:
        return await self._execute(sql.DELETE_SESSION, (id_hash,)) > 0

    async def delete_user_sessions(self, user_id: str, keep: bytes | None = None) -> int:
        return await self._execute(sql.DELETE_USER_SESSIONS, (user_id, keep))

    async def delete_all_sessions(self) -> int:
        return await self._execute(sql.DELETE_ALL_SESSIONS, ())

    async def list_user_sessions(self, user_id: str) -> list[SessionRecord]:
        return [SessionRecord(*row) for row in self._read_all(sql.LIST_USER_SESSIONS, (user_id,))]

    async def purge_expired_sessions(self, now: float, limit: int = 1000) -> int:
        _check_page(limit, 0)
        return await self._execute(sql.PURGE_EXPIRED_SESSIONS, (now, now, limit))

    async def list_live_sessions(
        self, now: float, limit: int = 100, offset: int = 0
    ) -> list[SessionRecord]:
        _check_page(limit, offset)
        rows = self._read_all(sql.LIST_LIVE_SESSIONS, (now, now, limit, offset))
        return [SessionRecord(*row) for row in rows]

    # -- refresh-token families --------------------------------------------------------

    async def create_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        family_row, token_row = sql.family_params(family), sql.refresh_token_params(first)

        def create(conn: sqlite3.Connection) -> None:
            conn.execute(sql.INSERT_FAMILY, family_row)
            conn.execute(sql.INSERT_REFRESH_TOKEN, token_row)

        await self._atomic(create)

    async def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        row = self._read_one(sql.GET_REFRESH_TOKEN, (token_hash,))
        return None if row is None else RefreshToken(*row)

    async def get_family(self, family_id: str) -> RefreshFamily | None:
        row = self._read_one(sql.GET_FAMILY, (family_id,))
        return None if row is None else RefreshFamily(*row)

    async def spend_refresh_token(
        self,
        token_hash: bytes,
        successor: RefreshToken,
        last_used_at: float,
        idle_expires_at: float,
    ) -> bool:
        spend = (successor.created_at, successor.hash, token_hash)
        successor_row = sql.refresh_token_params(successor)
        touch = (last_used_at, idle_expires_at, successor.family_id)

        def rotate(conn: sqlite3.Connection) -> bool:
            # The writer is one thread, and BEGIN IMMEDIATE keeps any other process out
            # until COMMIT: the conditional UPDATE decides the race, the rest follows it.
            if conn.execute(sql.SPEND_REFRESH_TOKEN, spend).rowcount != 1:
                return False
            (family_id,) = conn.execute(sql.GET_REFRESH_TOKEN_FAMILY, (token_hash,)).fetchone()
            if family_id != successor.family_id:
                raise ValueError("the successor must belong to the spent token's family")
            conn.execute(sql.INSERT_REFRESH_TOKEN, successor_row)
            conn.execute(sql.TOUCH_FAMILY, touch)
            return True

        return await self._atomic(rotate)

    async def delete_family(self, family_id: str) -> bool:
        return await self._execute(sql.DELETE_FAMILY, (family_id,)) > 0

    async def delete_user_families(self, user_id: str, keep: str | None = None) -> list[str]:
        def delete(conn: sqlite3.Connection) -> list[str]:
            ids = [row[0] for row in conn.execute(sql.LIST_USER_FAMILY_IDS, (user_id, keep))]
            conn.execute(sql.DELETE_USER_FAMILIES, (user_id, keep))
            return ids

        return await self._atomic(delete)

    async def delete_all_families(self) -> int:
        return await self._execute(sql.DELETE_ALL_FAMILIES, ())

    async def list_user_families(self, user_id: str) -> list[RefreshFamily]:
        rows = self._read_all(sql.LIST_USER_FAMILIES, (user_id,))
        return [RefreshFamily(*row) for row in rows]

    async def list_live_families(
        self, now: float, limit: int = 100, offset: int = 0
    ) -> list[RefreshFamily]:
        _check_page(limit, offset)
        rows = self._read_all(sql.LIST_LIVE_FAMILIES, (now, now, limit, offset))
        return [RefreshFamily(*row) for row in rows]

    async def purge_expired_families(self, now: float, limit: int = 1000) -> int:
        _check_page(limit, 0)
        # The count is of families: their tokens go by ON DELETE CASCADE.
        return await self._execute(sql.PURGE_EXPIRED_FAMILIES, (now, now, limit))

    # -- revocations -------------------------------------------------------------------

    async def append_revocation(self, revocation: Revocation) -> Revocation:
        params = sql.revocation_params(revocation)
        seq = await self._write(lambda conn: _insert_seq(conn, sql.INSERT_REVOCATION, params))
        return dataclasses.replace(revocation, seq=seq)

    async def revocations_after(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        _check_page(limit, 0)
        rows = self._read_all(sql.REVOCATIONS_AFTER, (seq, now, limit))
        return [sql.revocation_from_row(row) for row in rows]

    async def purge_expired_revocations(self, now: float, limit: int = 1000) -> int:
        _check_page(limit, 0)
        return await self._execute(sql.PURGE_EXPIRED_REVOCATIONS, (now, limit))

    # -- audit -------------------------------------------------------------------------

    async def append_audit(self, event: AuditEvent) -> int:
        params = sql.audit_params(event)
        return await self._write(lambda conn: _insert_seq(conn, sql.INSERT_AUDIT, params))

    async def list_audit(
        self,
        *,
        before: int | None = None,
        limit: int = 50,
        user_id: str | None = None,
        kind: str | None = None,
    ) -> list[AuditEvent]:
        if not 1 <= limit <= _MAX_AUDIT_PAGE:
            raise ValueError(f"limit must be between 1 and {_MAX_AUDIT_PAGE}")
        below = _MAX_SEQ if before is None else before
        statement: str
        params: tuple[Any, ...]
        if user_id is None and kind is None:
            statement, params = sql.LIST_AUDIT, (below, limit)
        elif kind is None:
            statement, params = sql.LIST_AUDIT_OF_USER, (below, user_id, user_id, limit)
        elif user_id is None:
            statement, params = sql.LIST_AUDIT_OF_KIND, (below, kind, limit)
        else:
            statement = sql.LIST_AUDIT_OF_USER_AND_KIND
            params = (below, user_id, user_id, kind, limit)
        return [sql.audit_from_row(row) for row in self._read_all(statement, params)]

    # -- clients -----------------------------------------------------------------------

    async def add_client(self, client: Client) -> None:
        params = sql.client_params(client)
        await self._write(
            lambda conn: conn.execute(sql.INSERT_CLIENT, params),
            conflict="A client with this id or name already exists.",
        )

    async def get_client(self, client_id: str) -> Client | None:
        row = self._read_one(sql.GET_CLIENT, (client_id,))
        return None if row is None else Client(*row)

    async def list_clients(self) -> list[Client]:
        return [Client(*row) for row in self._read_all(sql.LIST_CLIENTS, ())]

    async def delete_client(self, client_id: str) -> bool:
        return await self._execute(sql.DELETE_CLIENT, (client_id,)) > 0

    # -- signing keys ------------------------------------------------------------------

    async def add_key(self, key: StoredKey) -> None:
        params = sql.key_params(key)
        await self._write(
            lambda conn: conn.execute(sql.INSERT_KEY, params),
            conflict="A signing key with this kid already exists.",
        )

    async def list_keys(self) -> list[StoredKey]:
        return [sql.key_from_row(row) for row in self._read_all(sql.LIST_KEYS, ())]

    async def set_key_state(self, kid: str, state: KeyState, retire_after: float | None) -> bool:
        return await self._execute(sql.SET_KEY_STATE, (state, retire_after, kid)) > 0


def _in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T]) -> _T:
    # The connection is in autocommit mode, so the transaction is spelled out. IMMEDIATE
    # takes the write lock at BEGIN (waiting up to busy_timeout), not at the first write,
    # where a deferred transaction could fail with SQLITE_BUSY half-way through.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        # Some errors (disk full, I/O) have already rolled the transaction back; a failed
        # COMMIT (busy) has not.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _insert_seq(conn: sqlite3.Connection, statement: str, params: tuple[Any, ...]) -> int:
    """Run an INSERT into a table keyed by ``seq`` (its rowid) and return the new seq."""
    seq = conn.execute(statement, params).lastrowid
    if seq is None:  # only after a statement that inserted nothing
        raise RuntimeError("the insert assigned no seq")
    return seq


def _check_page(limit: int, offset: int) -> None:
    # SQLite reads a negative LIMIT as "no limit": refuse it rather than return everything.
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
