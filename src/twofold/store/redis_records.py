"""The records of ``store/base.py`` as the Redis store keeps them.

Users, sessions, refresh families and tokens, scoped tokens, clients, signing keys and
failed-login counters are hashes: times as Python's ``repr`` of the float (which
round-trips exactly), counts as decimal integers, flags as ``0``/``1``, roles and scopes as
a JSON list, and None as no field at all. Revocations and audit events are compact JSON
strings (see the key layout in ``redis_scripts.py``).

Encoders check what a reader could not take back before anything is stored; decoders fail
closed: a malformed record is ``StoreUnavailable``, never a partial grant.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from twofold.errors import StoreUnavailable
from twofold.store.records import (
    KEY_STATES,
    REVOCATION_KINDS,
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

_R = TypeVar("_R")
_V = TypeVar("_V")

#: A record's hash as HGETALL returns it.
Fields = Mapping[bytes, bytes]
#: A record's field/value items, flat, as HSET takes them.
Pairs = tuple[str | bytes, ...]

# -- values ----------------------------------------------------------------------------


def num(value: float) -> str:
    return repr(float(value))


def flag(value: bool) -> str:
    return "1" if value else "0"


def roles_json(roles: tuple[str, ...]) -> str:
    return json.dumps(list(roles))


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _opt_text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _opt_num(value: bytes | None) -> float | None:
    return None if value is None else float(value)


def _opt_num_text(value: float | None) -> str | None:
    return None if value is None else num(value)


def _pairs(**values: str | bytes | None) -> Pairs:
    return tuple(item for name, v in values.items() if v is not None for item in (name, v))


# -- encoders --------------------------------------------------------------------------


def user_fields(user: User) -> Pairs:
    return _pairs(
        id=user.id,
        email=user.email,
        password_hash=user.password_hash,
        roles=roles_json(user.roles),
        created_at=num(user.created_at),
        password_changed_at=num(user.password_changed_at),
        locked=flag(user.locked),
        roles_changed_at=num(user.roles_changed_at),
    )


def session_fields(record: SessionRecord) -> Pairs:
    return _pairs(
        id_hash=record.id_hash,
        user_id=record.user_id,
        created_at=num(record.created_at),
        last_seen_at=num(record.last_seen_at),
        idle_expires_at=num(record.idle_expires_at),
        absolute_expires_at=num(record.absolute_expires_at),
        client_address=record.client_address,
        user_agent=record.user_agent,
        password_changed_at=num(record.password_changed_at),
        roles_changed_at=num(record.roles_changed_at),
        renewed_to=record.renewed_to,
    )


def family_fields(family: RefreshFamily) -> Pairs:
    return _pairs(
        id=family.id,
        user_id=family.user_id,
        created_at=num(family.created_at),
        last_used_at=num(family.last_used_at),
        idle_expires_at=num(family.idle_expires_at),
        absolute_expires_at=num(family.absolute_expires_at),
        client_address=family.client_address,
        user_agent=family.user_agent,
        password_changed_at=num(family.password_changed_at),
    )


def token_fields(token: RefreshToken) -> Pairs:
    return _pairs(
        hash=token.hash,
        family_id=token.family_id,
        created_at=num(token.created_at),
        spent_at=_opt_num_text(token.spent_at),
        successor_hash=token.successor_hash,
    )


def scoped_token_fields(record: ScopedTokenRecord) -> Pairs:
    return _pairs(
        id=record.id,
        user_id=record.user_id,
        name=record.name,
        scopes=roles_json(record.scopes),
        secret_hash=record.secret_hash,
        password_changed_at=num(record.password_changed_at),
        created_at=num(record.created_at),
        expires_at=num(record.expires_at),
        last_used_at=_opt_num_text(record.last_used_at),
    )


def client_fields(client: Client) -> Pairs:
    return _pairs(
        id=client.id,
        name=client.name,
        secret_hash=client.secret_hash,
        created_at=num(client.created_at),
    )


def key_fields(key: StoredKey) -> Pairs:
    return _pairs(
        kid=key.kid, alg=key.alg, material=key.material, created_at=num(key.created_at)
    ) + key_state_fields(key.state, key.retire_after)


def key_state_fields(state: KeyState, retire_after: float | None) -> Pairs:
    # Checked before storing: a key that cannot be read back would stop the whole key ring.
    if state not in KEY_STATES:
        raise ValueError(f"unknown key state {state!r}")
    return _pairs(state=state, retire_after=_opt_num_text(retire_after))


def revocation_entry(revocation: Revocation) -> str:
    # Checked before storing: an entry that followers cannot read would stop them all.
    if revocation.kind not in REVOCATION_KINDS:
        raise ValueError(f"unknown revocation kind {revocation.kind!r}")
    return json.dumps(
        [revocation.kind, revocation.subject, revocation.at, revocation.expires_at],
        separators=(",", ":"),
        allow_nan=False,
    )


def audit_entry(event: AuditEvent) -> str:
    # Compact and strict: NaN and Infinity are not JSON.
    return json.dumps(
        {
            "kind": event.kind,
            "at": event.at,
            "user_id": event.user_id,
            "actor_id": event.actor_id,
            "client_address": event.client_address,
            "detail": event.detail,
        },
        separators=(",", ":"),
        allow_nan=False,
    )


# -- decoders (they may raise anything on a malformed record: see ``decoded``) ----------


def _names(stored: bytes) -> tuple[str, ...]:
    """Roles or scopes: a JSON list of strings."""
    names = json.loads(stored)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("names")
    return tuple(names)


def user_from_fields(f: Fields) -> User:
    return User(
        f[b"id"].decode(),
        f[b"email"].decode(),
        f[b"password_hash"].decode(),
        _names(f[b"roles"]),
        float(f[b"created_at"]),
        float(f[b"password_changed_at"]),
        {b"0": False, b"1": True}[f[b"locked"]],
        float(f[b"roles_changed_at"]),
    )


def session_from_fields(f: Fields) -> SessionRecord:
    return SessionRecord(
        f[b"id_hash"],
        f[b"user_id"].decode(),
        float(f[b"created_at"]),
        float(f[b"last_seen_at"]),
        float(f[b"idle_expires_at"]),
        float(f[b"absolute_expires_at"]),
        _opt_text(f.get(b"client_address")),
        _opt_text(f.get(b"user_agent")),
        float(f[b"password_changed_at"]),
        float(f[b"roles_changed_at"]),
        f.get(b"renewed_to"),
    )


def family_from_fields(f: Fields) -> RefreshFamily:
    return RefreshFamily(
        f[b"id"].decode(),
        f[b"user_id"].decode(),
        float(f[b"created_at"]),
        float(f[b"last_used_at"]),
        float(f[b"idle_expires_at"]),
        float(f[b"absolute_expires_at"]),
        _opt_text(f.get(b"client_address")),
        _opt_text(f.get(b"user_agent")),
        float(f[b"password_changed_at"]),
    )


def token_from_fields(f: Fields) -> RefreshToken:
    return RefreshToken(
        f[b"hash"],
        f[b"family_id"].decode(),
        float(f[b"created_at"]),
        _opt_num(f.get(b"spent_at")),
        f.get(b"successor_hash"),
    )


def scoped_token_from_fields(f: Fields) -> ScopedTokenRecord:
    return ScopedTokenRecord(
        f[b"id"].decode(),
        f[b"user_id"].decode(),
        f[b"name"].decode(),
        _names(f[b"scopes"]),
        f[b"secret_hash"],
        float(f[b"password_changed_at"]),
        float(f[b"created_at"]),
        float(f[b"expires_at"]),
        _opt_num(f.get(b"last_used_at")),
    )


def client_from_fields(f: Fields) -> Client:
    return Client(
        f[b"id"].decode(), f[b"name"].decode(), f[b"secret_hash"], float(f[b"created_at"])
    )


def key_from_fields(f: Fields) -> StoredKey:
    return StoredKey(
        f[b"kid"].decode(),
        f[b"alg"].decode(),
        f[b"material"],
        float(f[b"created_at"]),
        KEY_STATES[f[b"state"].decode()],
        _opt_num(f.get(b"retire_after")),
    )


def revocation_from_member(member: bytes) -> Revocation:
    seq, _, entry = member.partition(b":")
    kind, subject, at, expires_at = json.loads(entry)
    return Revocation(REVOCATION_KINDS[kind], subject, float(at), float(expires_at), int(seq))


def audit_from_entry(pair: tuple[bytes, bytes]) -> AuditEvent:
    seq, raw = pair
    event = json.loads(raw)
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        raise ValueError("detail")
    return AuditEvent(
        event["kind"],
        float(event["at"]),
        event["user_id"],
        event["actor_id"],
        event["client_address"],
        event["detail"],
        int(seq),
    )


def failures_from_pair(pair: tuple[bytes, bytes]) -> tuple[int, float]:
    """A failed-login counter as HMGET of ``failures`` and ``last_failure_at`` gives it."""
    failures, last_failure_at = pair
    return int(failures), float(last_failure_at)


# -- failing closed --------------------------------------------------------------------


def decoded(decode: Callable[[_V], _R], stored: _V) -> _R:
    """A stored record, or ``StoreUnavailable`` if it is malformed: fail closed rather than
    grant anything on the strength of a corrupt record."""
    try:
        return decode(stored)
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise StoreUnavailable("A record stored in Redis is malformed.") from exc


def from_reply(decode: Callable[[Fields], _R], reply: Any) -> _R:
    """A record from HGETALL's answer (a dict from the driver, a flat list from a script)."""
    return decoded(lambda stored: decode(_as_fields(stored)), reply)


def maybe_from_reply(decode: Callable[[Fields], _R], reply: Any) -> _R | None:
    """None for a missing record (an empty HGETALL or a nil from a script)."""
    return None if not reply else from_reply(decode, reply)


def _as_fields(reply: Any) -> Fields:
    if isinstance(reply, dict):
        return reply
    pairs = iter(reply)
    return dict(zip(pairs, pairs, strict=True))
