"""The SQLite store: the records of ``store/base.py`` on the connections of
``sqlite_connection.py``, one written-out statement each (``sqlite_statements.py``)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from twofold.store import sqlite_statements as sql
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
from twofold.store.sqlite_connection import SQLiteConnection


class SQLiteStore(SQLiteConnection):
    """A :class:`twofold.store.base.Store` on one SQLite file.

    Use it from the event loop that opened it: the read connection belongs to that thread.
    """

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
        check_page(limit, offset)
        return [sql.user_from_row(row) for row in self._read_all(sql.LIST_USERS, (limit, offset))]

    async def set_locked(self, user_id: str, locked: bool) -> bool:
        return await self._execute(sql.SET_USER_LOCKED, (locked, user_id)) > 0

    async def set_roles(self, user_id: str, roles: tuple[str, ...], changed_at: float) -> bool:
        params = (sql.roles_json(roles), changed_at, user_id)
        return await self._execute(sql.SET_USER_ROLES, params) > 0

    async def set_email(self, user_id: str, email: str) -> bool:
        changed = await self._write(
            lambda conn: conn.execute(sql.SET_USER_EMAIL, (email, user_id)).rowcount,
            conflict="A user with this e-mail address already exists.",
        )
        return changed > 0

    # -- sessions ----------------------------------------------------------------------

    async def put_session(self, record: SessionRecord) -> None:
        params = sql.session_params(record)
        await self._write(lambda conn: conn.execute(sql.PUT_SESSION, params))

    async def get_session(self, id_hash: bytes) -> SessionRecord | None:
        row = self._read_one(sql.GET_SESSION, (id_hash,))
        return None if row is None else SessionRecord(*row)

    async def get_session_and_user(self, id_hash: bytes) -> tuple[SessionRecord, User] | None:
        row = self._read_one(sql.GET_SESSION_AND_USER, (id_hash,))
        return None if row is None else (SessionRecord(*row[:11]), sql.user_from_row(row[11:]))

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
        epoch = new.roles_changed_at
        params = sql.session_params(new)

        def renew(conn: sqlite3.Connection) -> bool:
            retire = (epoch, new.id_hash, old_expires_at, old_expires_at, old_hash, epoch)
            changed = conn.execute(sql.RETIRE_RENEWED_SESSION, retire).rowcount
            if changed != 1:
                return False
            conn.execute(sql.PUT_SESSION, params)
            return True

        return await self._atomic(renew)

    async def delete_all_sessions(self) -> int:
        return await self._execute(sql.DELETE_ALL_SESSIONS, ())

    async def list_user_sessions(self, user_id: str) -> list[SessionRecord]:
        return [SessionRecord(*row) for row in self._read_all(sql.LIST_USER_SESSIONS, (user_id,))]

    async def purge_expired_sessions(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return await self._execute(sql.PURGE_EXPIRED_SESSIONS, (now, now, limit))

    async def list_live_sessions(
        self, now: float, limit: int = 100, offset: int = 0
    ) -> list[SessionRecord]:
        check_page(limit, offset)
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
        check_page(limit, offset)
        rows = self._read_all(sql.LIST_LIVE_FAMILIES, (now, now, limit, offset))
        return [RefreshFamily(*row) for row in rows]

    async def purge_expired_families(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        # The count is of families: their tokens go by ON DELETE CASCADE.
        return await self._execute(sql.PURGE_EXPIRED_FAMILIES, (now, now, limit))

    # -- revocations -------------------------------------------------------------------

    async def append_revocation(self, revocation: Revocation) -> Revocation:
        params = sql.revocation_params(revocation)
        seq = await self._write(lambda conn: _insert_seq(conn, sql.INSERT_REVOCATION, params))
        return dataclasses.replace(revocation, seq=seq)

    async def revocations_after(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        check_page(limit, 0)
        rows = self._read_all(sql.REVOCATIONS_AFTER, (seq, now, limit))
        return [sql.revocation_from_row(row) for row in rows]

    async def listen_revocations(self) -> None:
        # No push between processes on one file: the follower polls.
        return None

    async def purge_expired_revocations(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
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
        statement, params = audit_query(sql, before=before, limit=limit, user_id=user_id, kind=kind)
        return [sql.audit_from_row(row) for row in self._read_all(statement, params)]

    # -- failed logins -----------------------------------------------------------------

    async def record_failure(self, key: str, now: float, forget_after: float) -> int:
        params = (key, now, now - forget_after)

        def record(conn: sqlite3.Connection) -> int:
            # One writer thread, and BEGIN IMMEDIATE keeps other processes out until
            # COMMIT: the count read back is the one this failure made.
            conn.execute(sql.RECORD_FAILURE, params)
            failures: int = conn.execute(sql.READ_FAILURES, (key,)).fetchone()[0]
            return failures

        return await self._atomic(record)

    async def get_failures(
        self, keys: Sequence[str], now: float, forget_after: float
    ) -> dict[str, tuple[int, float]]:
        if not keys:
            return {}
        rows = self._read_all(sql.GET_FAILURES, (json.dumps(list(keys)), now - forget_after))
        return {key: (failures, last) for key, failures, last in rows}

    async def clear_failures(self, key: str) -> None:
        await self._execute(sql.CLEAR_FAILURES, (key,))

    async def purge_stale_failures(self, before: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return await self._execute(sql.PURGE_STALE_FAILURES, (before, limit))

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

    # -- scoped tokens -----------------------------------------------------------------

    async def add_scoped_token(self, record: ScopedTokenRecord) -> None:
        params = sql.scoped_token_params(record)
        await self._write(lambda conn: conn.execute(sql.INSERT_SCOPED_TOKEN, params))

    async def get_scoped_token(self, token_id: str) -> ScopedTokenRecord | None:
        row = self._read_one(sql.GET_SCOPED_TOKEN, (token_id,))
        return None if row is None else sql.scoped_token_from_row(row)

    async def list_scoped_tokens(self, user_id: str, now: float) -> list[ScopedTokenRecord]:
        rows = self._read_all(sql.LIST_USER_SCOPED_TOKENS, (user_id, now))
        return [sql.scoped_token_from_row(row) for row in rows]

    async def touch_scoped_token(self, token_id: str, at: float) -> None:
        await self._execute(sql.TOUCH_SCOPED_TOKEN, (at, token_id))

    async def delete_scoped_token(self, token_id: str, user_id: str | None = None) -> bool:
        return await self._execute(sql.DELETE_SCOPED_TOKEN, (token_id, user_id)) > 0

    async def delete_user_scoped_tokens(self, user_id: str) -> list[str]:
        def delete(conn: sqlite3.Connection) -> list[str]:
            ids = [row[0] for row in conn.execute(sql.LIST_USER_SCOPED_TOKEN_IDS, (user_id,))]
            conn.execute(sql.DELETE_USER_SCOPED_TOKENS, (user_id,))
            return ids

        return await self._atomic(delete)

    async def purge_expired_scoped_tokens(self, now: float, limit: int = 1000) -> int:
        check_page(limit, 0)
        return await self._execute(sql.PURGE_EXPIRED_SCOPED_TOKENS, (now, limit))

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


def _insert_seq(conn: sqlite3.Connection, statement: str, params: tuple[Any, ...]) -> int:
    """Run an INSERT into a table keyed by ``seq`` (its rowid) and return the new seq."""
    seq = conn.execute(statement, params).lastrowid
    if seq is None:  # only after a statement that inserted nothing
        raise RuntimeError("the insert assigned no seq")
    return seq
