"""The PostgreSQL store's statements and error translation.

Statements are written out in full, as in ``sqlite_statements.py``, with the same column
lists in the same order, so the row mapping there serves both stores. Each operation is
one statement, hence one round trip and atomic on its own: where SQLite runs several
statements in a transaction, these use data-modifying ``WITH`` clauses. The exception is
the revocation stream's append, which must take a lock before its ``seq`` is drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout, TooManyRequests

from twofold.errors import Conflict, StoreUnavailable, TwofoldError

SCHEMA_REVISION = "SELECT version_num FROM alembic_version"

INSERT_USER = """
INSERT INTO users (id, email, password_hash, roles, created_at, password_changed_at, locked,
                   roles_changed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""
GET_USER = """
SELECT id, email, password_hash, roles, created_at, password_changed_at, locked,
       roles_changed_at
FROM users WHERE id = %s
"""
GET_USER_BY_EMAIL = """
SELECT id, email, password_hash, roles, created_at, password_changed_at, locked,
       roles_changed_at
FROM users WHERE email = %s
"""
LIST_USERS = """
SELECT id, email, password_hash, roles, created_at, password_changed_at, locked,
       roles_changed_at
FROM users ORDER BY created_at, id LIMIT %s OFFSET %s
"""
SET_USER_HASH = "UPDATE users SET password_hash = %s, password_changed_at = %s WHERE id = %s"
REHASH_USER = "UPDATE users SET password_hash = %s WHERE id = %s AND password_hash = %s"
SET_USER_LOCKED = "UPDATE users SET locked = %s WHERE id = %s"
# uq_users_email refuses another user's address; the user's own is no change.
SET_USER_EMAIL = "UPDATE users SET email = %s WHERE id = %s"
# The epoch only moves forward, even for two changes in the same instant. Concurrent
# changes of one user queue on its row lock, and each reads the epoch its predecessor left.
SET_USER_ROLES = """
UPDATE users SET roles = %s, roles_changed_at = GREATEST(%s, roles_changed_at + 0.001)
WHERE id = %s
"""

PUT_SESSION = """
INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, idle_expires_at,
                      absolute_expires_at, client_address, user_agent, password_changed_at,
                      roles_changed_at, renewed_to)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
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
FROM sessions WHERE id_hash = %s
"""
# A session request's one read: the session and the user's current state together.
GET_SESSION_AND_USER = """
SELECT s.id_hash, s.user_id, s.created_at, s.last_seen_at, s.idle_expires_at,
       s.absolute_expires_at, s.client_address, s.user_agent, s.password_changed_at,
       s.roles_changed_at, s.renewed_to,
       u.id, u.email, u.password_hash, u.roles, u.created_at, u.password_changed_at, u.locked,
       u.roles_changed_at
FROM sessions AS s JOIN users AS u ON u.id = s.user_id
WHERE s.id_hash = %s
"""
TOUCH_SESSION = "UPDATE sessions SET last_seen_at = %s, idle_expires_at = %s WHERE id_hash = %s"
DELETE_SESSION = "DELETE FROM sessions WHERE id_hash = %s"
# Retire the old record (``old_hash``) and insert the new one (named by its fields) in one
# statement. Of racing renewals, the first UPDATE locks the old row; the others wait for
# it, then re-check their WHERE on the row it left (renewed_to is set now), match nothing
# and insert nothing. The ::bytea cast: a NULL parameter in a SELECT list would otherwise
# be taken for text.
RENEW_SESSION = """
WITH retired AS (
    UPDATE sessions SET roles_changed_at = %(roles_changed_at)s, renewed_to = %(id_hash)s,
        idle_expires_at = LEAST(idle_expires_at, %(old_expires_at)s),
        absolute_expires_at = LEAST(absolute_expires_at, %(old_expires_at)s)
    WHERE id_hash = %(old_hash)s AND roles_changed_at < %(roles_changed_at)s
          AND renewed_to IS NULL
    RETURNING id_hash
)
INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, idle_expires_at,
                      absolute_expires_at, client_address, user_agent, password_changed_at,
                      roles_changed_at, renewed_to)
SELECT %(id_hash)s, %(user_id)s, %(created_at)s, %(last_seen_at)s, %(idle_expires_at)s,
       %(absolute_expires_at)s, %(client_address)s, %(user_agent)s, %(password_changed_at)s,
       %(roles_changed_at)s, %(renewed_to)s::bytea
FROM retired
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
# IS DISTINCT FROM a NULL keep is true for every row: every session of the user goes.
DELETE_USER_SESSIONS = "DELETE FROM sessions WHERE user_id = %s AND id_hash IS DISTINCT FROM %s"
DELETE_ALL_SESSIONS = "DELETE FROM sessions"
LIST_USER_SESSIONS = """
SELECT id_hash, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at, roles_changed_at, renewed_to
FROM sessions WHERE user_id = %s ORDER BY created_at DESC, id_hash DESC
"""
# PostgreSQL has no DELETE ... LIMIT: the sub-select bounds the batch.
PURGE_EXPIRED_SESSIONS = """
DELETE FROM sessions WHERE id_hash IN (
    SELECT id_hash FROM sessions
    WHERE idle_expires_at <= %s OR absolute_expires_at <= %s
    LIMIT %s
)
"""
LIST_LIVE_SESSIONS = """
SELECT id_hash, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at, roles_changed_at, renewed_to
FROM sessions WHERE idle_expires_at > %s AND absolute_expires_at > %s
ORDER BY last_seen_at DESC, id_hash DESC LIMIT %s OFFSET %s
"""

# The family and its first token in one statement: the token's foreign key is checked at
# the end of the statement, when the family row is there.
CREATE_FAMILY = """
WITH family AS (
    INSERT INTO refresh_families (id, user_id, created_at, last_used_at, idle_expires_at,
                                  absolute_expires_at, client_address, user_agent,
                                  password_changed_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
)
INSERT INTO refresh_tokens (hash, family_id, created_at, spent_at, successor_hash)
VALUES (%s, %s, %s, %s, %s)
"""
GET_FAMILY = """
SELECT id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at
FROM refresh_families WHERE id = %s
"""
DELETE_FAMILY = "DELETE FROM refresh_families WHERE id = %s"
DELETE_USER_FAMILIES = """
DELETE FROM refresh_families WHERE user_id = %s AND id IS DISTINCT FROM %s RETURNING id
"""
DELETE_ALL_FAMILIES = "DELETE FROM refresh_families"
LIST_USER_FAMILIES = """
SELECT id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at
FROM refresh_families WHERE user_id = %s ORDER BY created_at DESC, id DESC
"""
LIST_LIVE_FAMILIES = """
SELECT id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at,
       client_address, user_agent, password_changed_at
FROM refresh_families WHERE idle_expires_at > %s AND absolute_expires_at > %s
ORDER BY last_used_at DESC, id DESC LIMIT %s OFFSET %s
"""
PURGE_EXPIRED_FAMILIES = """
DELETE FROM refresh_families WHERE id IN (
    SELECT id FROM refresh_families
    WHERE idle_expires_at <= %s OR absolute_expires_at <= %s
    LIMIT %s
)
"""

GET_REFRESH_TOKEN = """
SELECT hash, family_id, created_at, spent_at, successor_hash
FROM refresh_tokens WHERE hash = %s
"""  # noqa: S105 (SQL, not a secret)
GET_REFRESH_TOKEN_FAMILY = "SELECT family_id FROM refresh_tokens WHERE hash = %s"  # noqa: S105
# Rotation in one statement (SECURITY.md T8). The UPDATE is the compare-and-set: of racing
# spends of one token, the first locks the row and the others, once it commits, re-check
# "spent_at IS NULL" on the row it left and match nothing, so they neither insert a
# successor nor touch the family. A successor filed under another family matches nothing
# either; the caller then looks the token up to tell that bug from a lost race. Casts as
# for RENEW_SESSION.
SPEND_REFRESH_TOKEN = """
WITH spent AS (
    UPDATE refresh_tokens SET spent_at = %(new_created_at)s, successor_hash = %(new_hash)s
    WHERE hash = %(old_hash)s AND spent_at IS NULL AND family_id = %(family_id)s
    RETURNING family_id
), touched AS (
    UPDATE refresh_families SET last_used_at = %(last_used_at)s,
                                idle_expires_at = %(idle_expires_at)s
    WHERE id IN (SELECT family_id FROM spent)
)
INSERT INTO refresh_tokens (hash, family_id, created_at, spent_at, successor_hash)
SELECT %(new_hash)s, family_id, %(new_created_at)s, %(new_spent_at)s::double precision,
       %(new_successor_hash)s::bytea
FROM spent
"""  # noqa: S105 (SQL, not a secret)

# Appends are serialised by this transaction-level lock, taken before the INSERT draws its
# seq and held until COMMIT: a BIGSERIAL value is drawn at INSERT but becomes visible at
# COMMIT, so two unserialised appends could commit in the opposite order, and a follower
# that had read the higher seq would skip the lower one for good. The key is an arbitrary
# constant that names this lock within the database (migrations use another).
LOCK_REVOCATIONS = "SELECT pg_advisory_xact_lock(7461932857102469121)"
INSERT_REVOCATION = """
INSERT INTO revocations (kind, subject, at, expires_at) VALUES (%s, %s, %s, %s)
RETURNING seq
"""
# Delivered at COMMIT, and only if the transaction commits.
NOTIFY_REVOCATIONS = "SELECT pg_notify('twofold_revocations', '')"
LISTEN_REVOCATIONS = "LISTEN twofold_revocations"
REVOCATIONS_AFTER = """
SELECT kind, subject, at, expires_at, seq
FROM revocations WHERE seq > %s AND expires_at > %s ORDER BY seq LIMIT %s
"""
PURGE_EXPIRED_REVOCATIONS = """
DELETE FROM revocations WHERE seq IN (
    SELECT seq FROM revocations WHERE expires_at <= %s ORDER BY seq LIMIT %s
)
"""

INSERT_AUDIT = """
INSERT INTO audit_events (at, kind, user_id, actor_id, client_address, detail)
VALUES (%s, %s, %s, %s, %s, %s)
RETURNING seq
"""
LIST_AUDIT = """
SELECT kind, at, user_id, actor_id, client_address, detail, seq
FROM audit_events WHERE seq < %s ORDER BY seq DESC LIMIT %s
"""
LIST_AUDIT_OF_USER = """
SELECT kind, at, user_id, actor_id, client_address, detail, seq
FROM audit_events WHERE seq < %s AND (user_id = %s OR actor_id = %s)
ORDER BY seq DESC LIMIT %s
"""
LIST_AUDIT_OF_KIND = """
SELECT kind, at, user_id, actor_id, client_address, detail, seq
FROM audit_events WHERE seq < %s AND kind = %s ORDER BY seq DESC LIMIT %s
"""
LIST_AUDIT_OF_USER_AND_KIND = """
SELECT kind, at, user_id, actor_id, client_address, detail, seq
FROM audit_events WHERE seq < %s AND (user_id = %s OR actor_id = %s) AND kind = %s
ORDER BY seq DESC LIMIT %s
"""

# Count a failure and return the new count, in one statement. ON CONFLICT DO UPDATE gives
# every call an insert or an update, never neither: racing calls on one key (a fresh one
# too) wait for each other's row and each updates the row its predecessor committed, so n
# racing failures return 1..n. A counter whose last failure is before the window
# (%(since)s) starts again at 1.
RECORD_FAILURE = """
INSERT INTO login_failures (key, failures, last_failure_at) VALUES (%(key)s, 1, %(now)s)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN login_failures.last_failure_at < %(since)s THEN 1
                    ELSE login_failures.failures + 1 END,
    last_failure_at = excluded.last_failure_at
RETURNING failures
"""
# The keys as one array parameter: any number of them is one fixed statement.
GET_FAILURES = """
SELECT key, failures, last_failure_at FROM login_failures
WHERE key = ANY(%s) AND last_failure_at >= %s
"""
CLEAR_FAILURES = "DELETE FROM login_failures WHERE key = %s"
PURGE_STALE_FAILURES = """
DELETE FROM login_failures WHERE key IN (
    SELECT key FROM login_failures WHERE last_failure_at < %s LIMIT %s
)
"""

INSERT_SCOPED_TOKEN = """
INSERT INTO scoped_tokens (id, user_id, name, scopes, secret_hash, password_changed_at,
                           created_at, expires_at, last_used_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""  # noqa: S105 (SQL, not a secret)
GET_SCOPED_TOKEN = """
SELECT id, user_id, name, scopes, secret_hash, password_changed_at, created_at, expires_at,
       last_used_at
FROM scoped_tokens WHERE id = %s
"""  # noqa: S105 (SQL, not a secret)
LIST_USER_SCOPED_TOKENS = """
SELECT id, user_id, name, scopes, secret_hash, password_changed_at, created_at, expires_at,
       last_used_at
FROM scoped_tokens WHERE user_id = %s AND expires_at > %s ORDER BY created_at DESC, id DESC
"""
TOUCH_SCOPED_TOKEN = "UPDATE scoped_tokens SET last_used_at = %s WHERE id = %s"  # noqa: S105
# COALESCE: with no owner given (NULL) the condition is "user_id = user_id", always true.
DELETE_SCOPED_TOKEN = """
DELETE FROM scoped_tokens WHERE id = %s AND user_id = COALESCE(%s, user_id)
"""  # noqa: S105 (SQL, not a secret)
DELETE_USER_SCOPED_TOKENS = """
DELETE FROM scoped_tokens WHERE user_id = %s RETURNING id
"""
PURGE_EXPIRED_SCOPED_TOKENS = """
DELETE FROM scoped_tokens WHERE id IN (
    SELECT id FROM scoped_tokens WHERE expires_at <= %s LIMIT %s
)
"""

INSERT_CLIENT = "INSERT INTO clients (id, name, secret_hash, created_at) VALUES (%s, %s, %s, %s)"
GET_CLIENT = "SELECT id, name, secret_hash, created_at FROM clients WHERE id = %s"
LIST_CLIENTS = "SELECT id, name, secret_hash, created_at FROM clients ORDER BY created_at, id"
DELETE_CLIENT = "DELETE FROM clients WHERE id = %s"

INSERT_KEY = """
INSERT INTO signing_keys (kid, alg, material, created_at, state, retire_after)
VALUES (%s, %s, %s, %s, %s, %s)
"""
LIST_KEYS = """
SELECT kid, alg, material, created_at, state, retire_after
FROM signing_keys ORDER BY created_at, kid
"""
SET_KEY_STATE = "UPDATE signing_keys SET state = %s, retire_after = %s WHERE kid = %s"


def translate_error(exc: psycopg.Error, conflict: str | None = None) -> TwofoldError | None:
    """The Twofold error for ``exc``, or None when it is a bug to surface unchanged.

    ``conflict`` is the message for a unique violation; without it a unique violation is
    unexpected and stays a psycopg ``IntegrityError``, as do foreign-key, CHECK and NOT NULL
    failures. Messages name the kind of failure only: a driver's message can carry host
    names, and the HTTP layer shows none of it anyway.
    """
    if isinstance(exc, pg_errors.UniqueViolation):
        return None if conflict is None else Conflict(conflict)
    if isinstance(exc, psycopg.OperationalError | psycopg.InternalError):
        # Connection refused or lost, pool exhausted, server shutting down, statement
        # timeout, deadlock, disk full: fail closed (SECURITY.md O3).
        return StoreUnavailable(f"The PostgreSQL store is unavailable ({_cause(exc)}).")
    # ProgrammingError, DataError, InterfaceError, IntegrityError: a bug here or above.
    return None


@contextmanager
def translated_errors(conflict: str | None = None) -> Iterator[None]:
    """Driver errors raised inside as :func:`translate_error` maps them, chained."""
    try:
        yield
    except psycopg.Error as exc:
        mapped = translate_error(exc, conflict)
        if mapped is None:
            raise
        raise mapped from exc


def _cause(exc: psycopg.Error) -> str:
    if isinstance(exc, PoolTimeout | TooManyRequests):
        return "no connection became free in time"
    if isinstance(exc, pg_errors.QueryCanceled):
        return "a statement ran past its time limit"
    if isinstance(exc, pg_errors.TransactionRollback):
        return "a transaction collided with another; retry"
    if exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P")):
        return "the connection to the server failed"
    return "the server refused the operation"
