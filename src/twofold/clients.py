"""Registered resource servers: the clients allowed to introspect and revoke tokens.

A client authenticates with its id and a secret made here (256 random bits, shown once).
Only SHA-256 of the secret is stored: a slow hash protects guessable passwords, and this
secret is not guessable, so a fast hash loses nothing and keeps each call cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from twofold.clock import Clock
from twofold.errors import InvalidClient, InvalidRequest
from twofold.store.base import ClientStore
from twofold.store.records import Client

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ID = re.compile(r"tfc_[A-Za-z0-9_-]{22}")
MAX_SECRET_LENGTH = 256


@dataclass(frozen=True, slots=True)
class NewClient:
    client: Client
    secret: str  # shown once, never stored


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


# A hash compared when the client id is unknown, so that both failures take as long.
_DUMMY_HASH = _hash(secrets.token_urlsafe(32))


class Clients:
    def __init__(self, store: ClientStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def add(self, name: str) -> NewClient:
        if not _NAME.fullmatch(name):
            raise InvalidRequest(
                "A client name is 1-64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit."
            )
        secret = secrets.token_urlsafe(32)
        client = Client(
            id="tfc_" + secrets.token_urlsafe(16),
            name=name,
            secret_hash=_hash(secret),
            created_at=self._clock.now(),
        )
        await self._store.add_client(client)
        return NewClient(client=client, secret=secret)

    async def authenticate(self, client_id: str, secret: str) -> Client:
        """The client these credentials belong to; ``InvalidClient`` otherwise."""
        well_formed = _ID.fullmatch(client_id) is not None and len(secret) <= MAX_SECRET_LENGTH
        client = await self._store.get_client(client_id) if well_formed else None
        expected = client.secret_hash if client is not None else _DUMMY_HASH
        if not hmac.compare_digest(expected, _hash(secret[:MAX_SECRET_LENGTH])) or client is None:
            raise InvalidClient()
        return client

    async def list(self) -> list[Client]:
        return await self._store.list_clients()

    async def remove(self, client_id: str) -> bool:
        return await self._store.delete_client(client_id)
