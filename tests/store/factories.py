"""Record factories for store tests: valid by default, any field overridable."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import Any

from twofold.store.base import Store
from twofold.store.records import (
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

T0 = 1_800_000_000.0


def make_user(n: int = 0, **changes: Any) -> User:
    user = User(
        id=f"user-{n}",
        email=f"user{n}@example.test",
        password_hash=f"$argon2id$v=19$m=65536,t=3,p=4$salt{n}$hash{n}",
        roles=(),
        created_at=T0 + n,
        password_changed_at=T0 + n,
        roles_changed_at=T0 + n + 0.5,
    )
    return dataclasses.replace(user, **changes)


def new_id_hash() -> bytes:
    return hashlib.sha256(secrets.token_bytes(32)).digest()


def make_session(user_id: str, **changes: Any) -> SessionRecord:
    record = SessionRecord(
        id_hash=new_id_hash(),
        user_id=user_id,
        created_at=T0,
        last_seen_at=T0,
        idle_expires_at=T0 + 1800,
        absolute_expires_at=T0 + 86400,
        client_address="203.0.113.7",
        user_agent="Mozilla/5.0 (conformance)",
        password_changed_at=T0,
        roles_changed_at=T0 + 0.25,
    )
    return dataclasses.replace(record, **changes)


def make_key(kid: str, created_at: float = T0, **changes: Any) -> StoredKey:
    material = b"\x00sealed\xff" + kid.encode()
    key = StoredKey(kid=kid, alg="EdDSA", material=material, created_at=created_at, state="active")
    return dataclasses.replace(key, **changes)


async def add_user(store: Store, n: int = 0, **changes: Any) -> User:
    user = make_user(n, **changes)
    await store.add_user(user)
    return user


def make_family(user_id: str, n: int = 0, **changes: Any) -> RefreshFamily:
    family = RefreshFamily(
        id=f"family-{user_id}-{n}",
        user_id=user_id,
        created_at=T0 + n,
        last_used_at=T0 + n,
        idle_expires_at=T0 + 86400,
        absolute_expires_at=T0 + 30 * 86400,
        client_address="198.51.100.4",
        user_agent="Mozilla/5.0 (conformance)",
        password_changed_at=T0,
    )
    return dataclasses.replace(family, **changes)


def make_refresh_token(family_id: str, **changes: Any) -> RefreshToken:
    token = RefreshToken(hash=new_id_hash(), family_id=family_id, created_at=T0)
    return dataclasses.replace(token, **changes)


async def add_family(
    store: Store, user_id: str, n: int = 0, **changes: Any
) -> tuple[RefreshFamily, RefreshToken]:
    family = make_family(user_id, n, **changes)
    first = make_refresh_token(family.id, created_at=family.created_at)
    await store.create_family(family, first)
    return family, first


def make_revocation(subject: str = "jti-1", **changes: Any) -> Revocation:
    revocation = Revocation(kind="token", subject=subject, at=T0, expires_at=T0 + 900)
    return dataclasses.replace(revocation, **changes)


def make_audit(kind: str = "login", **changes: Any) -> AuditEvent:
    event = AuditEvent(kind=kind, at=T0, client_address="192.0.2.1")
    return dataclasses.replace(event, **changes)


def make_client(n: int = 0, **changes: Any) -> Client:
    client = Client(
        id=f"client-{n}",
        name=f"Resource server {n}",
        secret_hash=hashlib.sha256(f"secret-{n}".encode()).digest(),
        created_at=T0 + n,
    )
    return dataclasses.replace(client, **changes)


def make_scoped_token(user_id: str, n: int = 0, **changes: Any) -> ScopedTokenRecord:
    record = ScopedTokenRecord(
        id=f"tfs_{secrets.token_urlsafe(16)}",
        user_id=user_id,
        name=f"App {n}",
        scopes=("read", "write"),
        secret_hash=hashlib.sha256(secrets.token_bytes(32)).digest(),
        password_changed_at=T0,
        created_at=T0 + n,
        expires_at=T0 + 90 * 86400,
    )
    return dataclasses.replace(record, **changes)


async def add_scoped_token(
    store: Store, user_id: str, n: int = 0, **changes: Any
) -> ScopedTokenRecord:
    record = make_scoped_token(user_id, n, **changes)
    await store.add_scoped_token(record)
    return record
