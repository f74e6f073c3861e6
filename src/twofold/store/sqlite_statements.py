"""The SQLite store's statements, row mapping and error translation.

Statements are written out in full (no string building) so each one can be read, grepped
and checked against ``migrations/versions``. Column lists follow the record fields in
order, so a row unpacks straight into its record.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from twofold.errors import Conflict, StoreUnavailable, TwofoldError
from twofold.store.records import KeyState, SessionRecord, StoredKey, User

SCHEMA_REVISION = "SELECT version_num FROM alembic_version"

INSERT_USER = """
INSERT INTO users (id, email, password_hash, roles, created_at, password_changed_at, locked)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
GET_USER = """
SELECT id, email, password_hash, roles, created_at, password_changed_at, locked
FROM users WHERE id = ?
"""
GET_USER_BY_EMAIL = """
SELECT id, email, password_hash, roles, created_at, password_changed_at, locked
FROM users WHERE email = ?
"""
LIST_USERS = """
SELECT id, email, password_hash, roles, created_at, password_changed_at, locked
FROM users ORDER BY created_at, id LIMIT ? OFFSET ?
"""
SET_USER_HASH = "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?"
REHASH_USER = "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?"

# "Put" replaces: ON CONFLICT ... DO UPDATE (not INSERT OR REPLACE, which deletes the row
# first) is also PostgreSQL's syntax.
PUT_SESSION = """
INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, idle_expires_at,
                      absolute_expires_at, client_address, user_agent, password_changed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id_hash) DO UPDATE SET
    user_id = excluded.user_id,
    created_at = excluded.created_at,
    last_seen_at = excluded.last_seen_at,
    idle_expires_at = excluded.idle_expires_at,
    absolute_expires_at = excluded.absolute_expires_at,
    client_address = excluded.client_address,
    user_agent = excluded.user_agent,
    password_changed_at = excluded.password_changed_at
"""
GET_SESSION = """
SELECT id_hash, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at
FROM sessions WHERE id_hash = ?
"""
TOUCH_SESSION = "UPDATE sessions SET last_seen_at = ?, idle_expires_at = ? WHERE id_hash = ?"
DELETE_SESSION = "DELETE FROM sessions WHERE id_hash = ?"
# "IS NOT NULL" when keep is None: every session of the user goes.
DELETE_USER_SESSIONS = "DELETE FROM sessions WHERE user_id = ? AND id_hash IS NOT ?"
LIST_USER_SESSIONS = """
SELECT id_hash, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at
FROM sessions WHERE user_id = ? ORDER BY created_at DESC, id_hash DESC
"""
# DELETE ... LIMIT needs a compile-time option; the sub-select bounds the batch anywhere.
PURGE_EXPIRED_SESSIONS = """
DELETE FROM sessions WHERE id_hash IN (
    SELECT id_hash FROM sessions
    WHERE idle_expires_at <= ? OR absolute_expires_at <= ?
    LIMIT ?
)
"""

INSERT_KEY = """
INSERT INTO signing_keys (kid, alg, material, created_at, state, retire_after)
VALUES (?, ?, ?, ?, ?, ?)
"""
LIST_KEYS = """
SELECT kid, alg, material, created_at, state, retire_after
FROM signing_keys ORDER BY created_at, kid
"""
SET_KEY_STATE = "UPDATE signing_keys SET state = ?, retire_after = ? WHERE kid = ?"

_KEY_STATES: dict[str, KeyState] = {"active": "active", "verify": "verify", "retired": "retired"}
_UNIQUE_VIOLATIONS = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
)


def user_params(user: User) -> tuple[Any, ...]:
    roles = json.dumps(list(user.roles))
    return (
        user.id,
        user.email,
        user.password_hash,
        roles,
        user.created_at,
        user.password_changed_at,
        user.locked,
    )


def user_from_row(row: Any) -> User:
    try:
        roles = json.loads(row[3])
    except ValueError:
        roles = None
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise StoreUnavailable("A stored user has malformed roles.")
    return User(row[0], row[1], row[2], tuple(roles), row[4], row[5], bool(row[6]))


def session_params(record: SessionRecord) -> tuple[Any, ...]:
    return (
        record.id_hash,
        record.user_id,
        record.created_at,
        record.last_seen_at,
        record.idle_expires_at,
        record.absolute_expires_at,
        record.client_address,
        record.user_agent,
        record.password_changed_at,
    )


def key_params(key: StoredKey) -> tuple[Any, ...]:
    return (key.kid, key.alg, key.material, key.created_at, key.state, key.retire_after)


def key_from_row(row: Any) -> StoredKey:
    state = _KEY_STATES.get(row[4])
    if state is None:
        raise StoreUnavailable("A stored signing key has an unknown state.")
    return StoredKey(row[0], row[1], row[2], row[3], state, row[5])


def translate_error(exc: sqlite3.Error, conflict: str | None = None) -> TwofoldError | None:
    """The Twofold error for ``exc``, or None when it is a bug to surface unchanged.

    ``conflict`` is the message for a unique violation; without it a unique violation is
    unexpected and stays an ``IntegrityError``, as do foreign-key and NOT NULL failures.
    """
    if isinstance(exc, sqlite3.IntegrityError):
        if conflict is not None and exc.sqlite_errorcode in _UNIQUE_VIOLATIONS:
            return Conflict(conflict)
        return None
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError) or (
        type(exc) is sqlite3.DatabaseError  # "file is not a database", corruption
    ):
        # Locked past busy_timeout, disk full, I/O error, unable to open, corrupt file:
        # fail closed (SECURITY.md O3). The SQLite message names no data, only the cause.
        return StoreUnavailable(f"The SQLite store is unavailable ({exc}).")
    # ProgrammingError, InterfaceError, DataError: a bug in the caller or in this module.
    return None
