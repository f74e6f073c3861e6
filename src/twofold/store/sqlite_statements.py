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
from twofold.store.records import (
    KEY_STATES,
    REVOCATION_KINDS,
    AuditEvent,
    Client,
    RefreshFamily,
    RefreshToken,
    Revocation,
    ScopedTokenRecord,
    SessionRecord,
    StoredKey,
    User,
)

SCHEMA_REVISION = "SELECT version_num FROM alembic_version"

INSERT_USER = """
INSERT INTO users (id, email, password_hash, roles, created_at, password_changed_at, locked,
                   roles_changed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
GET_USER = """
SELECT id, email, password_hash, roles, created_at, password_changed_at, locked,
       roles_changed_at
FROM users WHERE id = ?
"""
GET_USER_BY_EMAIL = """
SELECT id, email, password_hash, roles, created_at, password_changed_at, locked,
       roles_changed_at
FROM users WHERE email = ?
"""
LIST_USERS = """
SELECT id, email, password_hash, roles, created_at, password_changed_at, locked,
       roles_changed_at
FROM users ORDER BY created_at, id LIMIT ? OFFSET ?
"""
SET_USER_HASH = "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?"
REHASH_USER = "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?"
SET_USER_LOCKED = "UPDATE users SET locked = ? WHERE id = ?"
# uq_users_email refuses another user's address; the user's own is no change.
SET_USER_EMAIL = "UPDATE users SET email = ? WHERE id = ?"
# The epoch only moves forward, even for two changes in the same instant.
SET_USER_ROLES = """
UPDATE users SET roles = ?, roles_changed_at = MAX(?, roles_changed_at + 0.001) WHERE id = ?
"""

# "Put" replaces: ON CONFLICT ... DO UPDATE (not INSERT OR REPLACE, which deletes the row
# first) is also PostgreSQL's syntax.
PUT_SESSION = """
INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, idle_expires_at,
                      absolute_expires_at, client_address, user_agent, password_changed_at,
                      roles_changed_at, renewed_to)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id_hash) DO UPDATE SET
    user_id = excluded.user_id,
    created_at = excluded.created_at,
    last_seen_at = excluded.last_seen_at,
    idle_expires_at = excluded.idle_expires_at,
    absolute_expires_at = excluded.absolute_expires_at,
    client_address = excluded.client_address,
    user_agent = excluded.user_agent,
    password_changed_at = excluded.password_changed_at,
    roles_changed_at = excluded.roles_changed_at,
    renewed_to = excluded.renewed_to
"""
GET_SESSION = """
SELECT id_hash, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at, roles_changed_at, renewed_to
FROM sessions WHERE id_hash = ?
"""
# A session request's one read: the session and the user's current state (roles, lock,
# password and privilege epochs) together.
GET_SESSION_AND_USER = """
SELECT s.id_hash, s.user_id, s.created_at, s.last_seen_at, s.idle_expires_at,
       s.absolute_expires_at, s.client_address, s.user_agent, s.password_changed_at,
       s.roles_changed_at, s.renewed_to,
       u.id, u.email, u.password_hash, u.roles, u.created_at, u.password_changed_at, u.locked,
       u.roles_changed_at
FROM sessions AS s JOIN users AS u ON u.id = s.user_id
WHERE s.id_hash = ?
"""
TOUCH_SESSION = "UPDATE sessions SET last_seen_at = ?, idle_expires_at = ? WHERE id_hash = ?"
DELETE_SESSION = "DELETE FROM sessions WHERE id_hash = ?"
RETIRE_RENEWED_SESSION = """
UPDATE sessions SET roles_changed_at = ?, renewed_to = ?,
    idle_expires_at = MIN(idle_expires_at, ?), absolute_expires_at = MIN(absolute_expires_at, ?)
WHERE id_hash = ? AND roles_changed_at < ? AND renewed_to IS NULL
"""
# "IS NOT NULL" when keep is None: every session of the user goes.
DELETE_USER_SESSIONS = "DELETE FROM sessions WHERE user_id = ? AND id_hash IS NOT ?"
DELETE_ALL_SESSIONS = "DELETE FROM sessions"
LIST_USER_SESSIONS = """
SELECT id_hash, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at, roles_changed_at, renewed_to
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
# Both expiries after now, most recently seen first; DESC on both columns lets SQLite walk
# ix_sessions_last_seen_at backwards (the table has no rowid: the index ends in id_hash).
LIST_LIVE_SESSIONS = """
SELECT id_hash, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at, roles_changed_at, renewed_to
FROM sessions WHERE idle_expires_at > ? AND absolute_expires_at > ?
ORDER BY last_seen_at DESC, id_hash DESC LIMIT ? OFFSET ?
"""

INSERT_FAMILY = """
INSERT INTO refresh_families (id, user_id, created_at, last_used_at, idle_expires_at,
                              absolute_expires_at, client_address, user_agent,
                              password_changed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
GET_FAMILY = """
SELECT id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at
FROM refresh_families WHERE id = ?
"""
TOUCH_FAMILY = "UPDATE refresh_families SET last_used_at = ?, idle_expires_at = ? WHERE id = ?"
DELETE_FAMILY = "DELETE FROM refresh_families WHERE id = ?"
# "IS NOT NULL" when keep is None, as for sessions. Select and delete run in one
# transaction (RETURNING would need SQLite 3.35).
LIST_USER_FAMILY_IDS = """
SELECT id FROM refresh_families WHERE user_id = ? AND id IS NOT ? ORDER BY id
"""
DELETE_USER_FAMILIES = "DELETE FROM refresh_families WHERE user_id = ? AND id IS NOT ?"
DELETE_ALL_FAMILIES = "DELETE FROM refresh_families"
LIST_USER_FAMILIES = """
SELECT id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at
FROM refresh_families WHERE user_id = ? ORDER BY created_at DESC, id DESC
"""
LIST_LIVE_FAMILIES = """
SELECT id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at
FROM refresh_families WHERE idle_expires_at > ? AND absolute_expires_at > ?
ORDER BY last_used_at DESC, id DESC LIMIT ? OFFSET ?
"""
PURGE_EXPIRED_FAMILIES = """
DELETE FROM refresh_families WHERE id IN (
    SELECT id FROM refresh_families
    WHERE idle_expires_at <= ? OR absolute_expires_at <= ?
    LIMIT ?
)
"""

INSERT_REFRESH_TOKEN = """
INSERT INTO refresh_tokens (hash, family_id, created_at, spent_at, successor_hash)
VALUES (?, ?, ?, ?, ?)
"""  # noqa: S105 (SQL, not a secret)
GET_REFRESH_TOKEN = """
SELECT hash, family_id, created_at, spent_at, successor_hash
FROM refresh_tokens WHERE hash = ?
"""  # noqa: S105 (SQL, not a secret)
# The compare-and-set of rotation: of racing spends of one token, only the first matches
# "spent_at IS NULL" (SECURITY.md T8).
SPEND_REFRESH_TOKEN = """
UPDATE refresh_tokens SET spent_at = ?, successor_hash = ?
WHERE hash = ? AND spent_at IS NULL
"""  # noqa: S105 (SQL, not a secret)
GET_REFRESH_TOKEN_FAMILY = "SELECT family_id FROM refresh_tokens WHERE hash = ?"  # noqa: S105

INSERT_REVOCATION = """
INSERT INTO revocations (kind, subject, at, expires_at) VALUES (?, ?, ?, ?)
"""
REVOCATIONS_AFTER = """
SELECT kind, subject, at, expires_at, seq
FROM revocations WHERE seq > ? AND expires_at > ? ORDER BY seq LIMIT ?
"""
PURGE_EXPIRED_REVOCATIONS = """
DELETE FROM revocations WHERE seq IN (
    SELECT seq FROM revocations WHERE expires_at <= ? ORDER BY seq LIMIT ?
)
"""

INSERT_AUDIT = """
INSERT INTO audit_events (at, kind, user_id, actor_id, client_address, detail)
VALUES (?, ?, ?, ?, ?, ?)
"""
# One statement per filter combination, so each can use its index; "seq < ?" takes the
# largest 64-bit integer when there is no "before".
LIST_AUDIT = """
SELECT kind, at, user_id, actor_id, client_address, detail, seq
FROM audit_events WHERE seq < ? ORDER BY seq DESC LIMIT ?
"""
LIST_AUDIT_OF_USER = """
SELECT kind, at, user_id, actor_id, client_address, detail, seq
FROM audit_events WHERE seq < ? AND (user_id = ? OR actor_id = ?)
ORDER BY seq DESC LIMIT ?
"""
LIST_AUDIT_OF_KIND = """
SELECT kind, at, user_id, actor_id, client_address, detail, seq
FROM audit_events WHERE seq < ? AND kind = ? ORDER BY seq DESC LIMIT ?
"""
LIST_AUDIT_OF_USER_AND_KIND = """
SELECT kind, at, user_id, actor_id, client_address, detail, seq
FROM audit_events WHERE seq < ? AND (user_id = ? OR actor_id = ?) AND kind = ?
ORDER BY seq DESC LIMIT ?
"""

# Count a failure: a counter whose last failure is before the window ("since") starts
# again at 1. The writer runs this and READ_FAILURES in one transaction rather than one
# statement with RETURNING, which would need SQLite 3.35 (RHEL 9 and Debian 11 have 3.34).
RECORD_FAILURE = """
INSERT INTO login_failures (key, failures, last_failure_at) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN login_failures.last_failure_at < ? THEN 1
                    ELSE login_failures.failures + 1 END,
    last_failure_at = excluded.last_failure_at
"""
READ_FAILURES = "SELECT failures FROM login_failures WHERE key = ?"
# The keys come as one JSON array, so any number of them is one fixed statement (no
# placeholder list to build, no limit on bound variables); each is a primary-key lookup.
GET_FAILURES = """
SELECT key, failures, last_failure_at FROM login_failures
WHERE key IN (SELECT value FROM json_each(?)) AND last_failure_at >= ?
"""
CLEAR_FAILURES = "DELETE FROM login_failures WHERE key = ?"
PURGE_STALE_FAILURES = """
DELETE FROM login_failures WHERE key IN (
    SELECT key FROM login_failures WHERE last_failure_at < ? LIMIT ?
)
"""

INSERT_SCOPED_TOKEN = """
INSERT INTO scoped_tokens (id, user_id, name, scopes, secret_hash, password_changed_at,
                           created_at, expires_at, last_used_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""  # noqa: S105 (SQL, not a secret)
GET_SCOPED_TOKEN = """
SELECT id, user_id, name, scopes, secret_hash, password_changed_at, created_at, expires_at,
       last_used_at
FROM scoped_tokens WHERE id = ?
"""  # noqa: S105 (SQL, not a secret)
LIST_USER_SCOPED_TOKENS = """
SELECT id, user_id, name, scopes, secret_hash, password_changed_at, created_at, expires_at,
       last_used_at
FROM scoped_tokens WHERE user_id = ? AND expires_at > ? ORDER BY created_at DESC, id DESC
"""
TOUCH_SCOPED_TOKEN = "UPDATE scoped_tokens SET last_used_at = ? WHERE id = ?"  # noqa: S105
# COALESCE: with no owner given (NULL) the condition is "user_id = user_id", always true.
DELETE_SCOPED_TOKEN = """
DELETE FROM scoped_tokens WHERE id = ? AND user_id = COALESCE(?, user_id)
"""  # noqa: S105 (SQL, not a secret)
# Select and delete run in one transaction, as for families.
LIST_USER_SCOPED_TOKEN_IDS = """
SELECT id FROM scoped_tokens WHERE user_id = ? ORDER BY id
"""  # noqa: S105 (SQL, not a secret)
DELETE_USER_SCOPED_TOKENS = "DELETE FROM scoped_tokens WHERE user_id = ?"
PURGE_EXPIRED_SCOPED_TOKENS = """
DELETE FROM scoped_tokens WHERE id IN (
    SELECT id FROM scoped_tokens WHERE expires_at <= ? LIMIT ?
)
"""

INSERT_CLIENT = "INSERT INTO clients (id, name, secret_hash, created_at) VALUES (?, ?, ?, ?)"
GET_CLIENT = "SELECT id, name, secret_hash, created_at FROM clients WHERE id = ?"
LIST_CLIENTS = "SELECT id, name, secret_hash, created_at FROM clients ORDER BY created_at, id"
DELETE_CLIENT = "DELETE FROM clients WHERE id = ?"

INSERT_KEY = """
INSERT INTO signing_keys (kid, alg, material, created_at, state, retire_after)
VALUES (?, ?, ?, ?, ?, ?)
"""
LIST_KEYS = """
SELECT kid, alg, material, created_at, state, retire_after
FROM signing_keys ORDER BY created_at, kid
"""
SET_KEY_STATE = "UPDATE signing_keys SET state = ?, retire_after = ? WHERE kid = ?"

_UNIQUE_VIOLATIONS = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
)


def user_params(user: User) -> tuple[Any, ...]:
    return (
        user.id,
        user.email,
        user.password_hash,
        roles_json(user.roles),
        user.created_at,
        user.password_changed_at,
        user.locked,
        user.roles_changed_at,
    )


def user_from_row(row: Any) -> User:
    roles = _names(row[3], "A stored user has malformed roles.")
    return User(row[0], row[1], row[2], roles, row[4], row[5], bool(row[6]), row[7])


def _names(stored: str, malformed: str) -> tuple[str, ...]:
    """A JSON array of strings (roles, scopes) back as a tuple; ``StoreUnavailable`` with
    the message ``malformed`` if it is anything else: fail closed."""
    try:
        names = json.loads(stored)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise StoreUnavailable(malformed)
    return tuple(names)


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
        record.roles_changed_at,
        record.renewed_to,
    )


def roles_json(roles: tuple[str, ...]) -> str:
    return names_json(roles)


def names_json(names: tuple[str, ...]) -> str:
    """Roles or scopes as stored: a JSON array, order kept."""
    return json.dumps(list(names))


def family_params(family: RefreshFamily) -> tuple[Any, ...]:
    return (
        family.id,
        family.user_id,
        family.created_at,
        family.last_used_at,
        family.idle_expires_at,
        family.absolute_expires_at,
        family.client_address,
        family.user_agent,
        family.password_changed_at,
    )


def refresh_token_params(token: RefreshToken) -> tuple[Any, ...]:
    return (token.hash, token.family_id, token.created_at, token.spent_at, token.successor_hash)


def revocation_params(revocation: Revocation) -> tuple[Any, ...]:
    return (revocation.kind, revocation.subject, revocation.at, revocation.expires_at)


def revocation_from_row(row: Any) -> Revocation:
    kind = REVOCATION_KINDS.get(row[0])
    if kind is None:
        raise StoreUnavailable("A stored revocation has an unknown kind.")
    return Revocation(kind, row[1], row[2], row[3], row[4])


def audit_params(event: AuditEvent) -> tuple[Any, ...]:
    # Compact and strict: NaN and Infinity are not JSON, and PostgreSQL's json refuses them.
    detail = json.dumps(event.detail, separators=(",", ":"), allow_nan=False)
    return (event.at, event.kind, event.user_id, event.actor_id, event.client_address, detail)


def audit_from_row(row: Any) -> AuditEvent:
    try:
        detail = json.loads(row[5])
    except ValueError:
        detail = None
    if not isinstance(detail, dict):
        raise StoreUnavailable("A stored audit event has a malformed detail.")
    return AuditEvent(row[0], row[1], row[2], row[3], row[4], detail, row[6])


def scoped_token_params(record: ScopedTokenRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.user_id,
        record.name,
        names_json(record.scopes),
        record.secret_hash,
        record.password_changed_at,
        record.created_at,
        record.expires_at,
        record.last_used_at,
    )


def scoped_token_from_row(row: Any) -> ScopedTokenRecord:
    scopes = _names(row[3], "A stored scoped token has malformed scopes.")
    return ScopedTokenRecord(row[0], row[1], row[2], scopes, *row[4:9])


def client_params(client: Client) -> tuple[Any, ...]:
    return (client.id, client.name, client.secret_hash, client.created_at)


def key_params(key: StoredKey) -> tuple[Any, ...]:
    return (key.kid, key.alg, key.material, key.created_at, key.state, key.retire_after)


def key_from_row(row: Any) -> StoredKey:
    state = KEY_STATES.get(row[4])
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
