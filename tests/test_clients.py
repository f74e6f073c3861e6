"""Registered resource servers: secrets made here, shown once, stored only as a hash; every
kind of bad credential is the same ``InvalidClient``."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from twofold.clients import MAX_SECRET_LENGTH, Clients, NewClient
from twofold.clock import FrozenClock
from twofold.errors import Conflict, InvalidClient, InvalidRequest
from twofold.store.records import Client
from twofold.store.sqlite import SQLiteStore

START = 1_800_000_000.0


@pytest.fixture
def clients(store: SQLiteStore) -> Clients:
    return Clients(store, FrozenClock(START))


@pytest.fixture
async def added(clients: Clients) -> NewClient:
    return await clients.add("billing-api")


async def test_add_makes_a_256_bit_secret_and_a_well_formed_id(clients: Clients) -> None:
    """The secret is 43 url-safe characters (256 bits), the id `tfc_` + 22; each is new."""
    first = await clients.add("one")
    second = await clients.add("two")
    for new in (first, second):
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", new.secret)
        assert re.fullmatch(r"tfc_[A-Za-z0-9_-]{22}", new.client.id)
        assert new.client.created_at == START
    assert first.secret != second.secret
    assert first.client.id != second.client.id
    assert sorted(c.name for c in await clients.list()) == ["one", "two"]


async def test_authenticate_answers_the_client(clients: Clients, added: NewClient) -> None:
    """The right id and secret answer the stored client."""
    client = await clients.authenticate(added.client.id, added.secret)
    assert (client.id, client.name) == (added.client.id, "billing-api")
    assert client.secret_hash == hashlib.sha256(added.secret.encode()).digest()


def _flip_first(secret: str) -> str:
    return ("A" if secret[0] != "A" else "B") + secret[1:]


Credentials = Callable[[str, str], tuple[str, str]]
BAD_CREDENTIALS: list[tuple[str, Credentials]] = [
    ("wrong-secret", lambda cid, secret: (cid, _flip_first(secret))),
    ("empty-secret", lambda cid, secret: (cid, "")),
    ("secret-prefix", lambda cid, secret: (cid, secret[:-1])),
    ("secret-longer", lambda cid, secret: (cid, secret + "x")),
    ("overlong-secret", lambda cid, secret: (cid, secret + "x" * MAX_SECRET_LENGTH)),
    ("secret-space", lambda cid, secret: (cid, secret + " ")),
    ("unknown-id", lambda cid, secret: ("tfc_" + "A" * 22, secret)),
    ("empty-id", lambda cid, secret: ("", secret)),
    ("short-id", lambda cid, secret: ("tfc_short", secret)),
    ("id-newline", lambda cid, secret: (cid + "\n", secret)),
    ("id-upper", lambda cid, secret: (cid.upper(), secret)),
    ("id-bad-char", lambda cid, secret: (cid[:-1] + "!", secret)),
    ("id-sql", lambda cid, secret: ("' OR '1'='1", secret)),
    ("id-longer", lambda cid, secret: (cid + "A", secret)),
]


@pytest.mark.parametrize(
    "credentials",
    [make for _, make in BAD_CREDENTIALS],
    ids=[name for name, _ in BAD_CREDENTIALS],
)
async def test_bad_credentials_are_invalid_client(
    clients: Clients, added: NewClient, credentials: Credentials
) -> None:
    """Wrong secret, unknown, malformed or overlong input: all ``InvalidClient``."""
    client_id, secret = credentials(added.client.id, added.secret)
    with pytest.raises(InvalidClient):
        await clients.authenticate(client_id, secret)
    # The right credentials still work afterwards (nothing was locked or changed).
    assert (await clients.authenticate(added.client.id, added.secret)).id == added.client.id


class CountingStore:
    """A client store that counts look-ups."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.lookups: list[str] = []

    async def add_client(self, client: Client) -> None:
        await self.store.add_client(client)

    async def get_client(self, client_id: str) -> Client | None:
        self.lookups.append(client_id)
        return await self.store.get_client(client_id)

    async def list_clients(self) -> list[Client]:
        return await self.store.list_clients()

    async def delete_client(self, client_id: str) -> bool:
        return await self.store.delete_client(client_id)


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        ("x" * 10_000, "s"),
        ("tfc_" + "A" * 21 + "\n", "s"),
        ("tfc_" + "A" * 22, "s" * (MAX_SECRET_LENGTH + 1)),
    ],
    ids=["long-id", "id-with-newline", "overlong-secret"],
)
async def test_malformed_credentials_never_reach_the_store(
    store: SQLiteStore, client_id: str, secret: str
) -> None:
    """A malformed id or an overlong secret is refused without a store look-up."""
    counting = CountingStore(store)
    clients = Clients(counting, FrozenClock(START))
    with pytest.raises(InvalidClient):
        await clients.authenticate(client_id, secret)
    assert counting.lookups == []
    with pytest.raises(InvalidClient):
        await clients.authenticate("tfc_" + "A" * 22, "s")  # well-formed: looked up
    assert counting.lookups == ["tfc_" + "A" * 22]


async def test_remove_ends_the_credentials(clients: Clients, added: NewClient) -> None:
    """After removal the credentials are refused; a second removal answers False."""
    assert await clients.remove(added.client.id) is True
    with pytest.raises(InvalidClient):
        await clients.authenticate(added.client.id, added.secret)
    assert await clients.remove(added.client.id) is False
    assert await clients.list() == []


@pytest.mark.parametrize(
    "name",
    ["a", "7", "billing-api", "A.b_c-9", "x" * 64],
    ids=["one-letter", "one-digit", "dashed", "mixed", "64-chars"],
)
async def test_valid_names_are_accepted(clients: Clients, name: str) -> None:
    """1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    new = await clients.add(name)
    assert new.client.name == name


@pytest.mark.parametrize(
    "name",
    ["", "-lead", ".lead", "_lead", "x" * 65, "has space", "ünïcode", "name\n", "a/b", "٣"],
    ids=[
        "empty",
        "dash-first",
        "dot-first",
        "underscore-first",
        "65-chars",
        "space",
        "non-ascii",
        "trailing-newline",
        "slash",
        "arabic-digit",
    ],
)
async def test_invalid_names_are_refused(clients: Clients, name: str) -> None:
    """A bad name is ``InvalidRequest`` and nothing is stored."""
    with pytest.raises(InvalidRequest):
        await clients.add(name)
    assert await clients.list() == []


async def test_duplicate_name_is_a_conflict(clients: Clients, added: NewClient) -> None:
    """Names are unique; the first client keeps working."""
    with pytest.raises(Conflict):
        await clients.add("billing-api")
    assert len(await clients.list()) == 1
    assert (await clients.authenticate(added.client.id, added.secret)).name == "billing-api"


async def test_stored_row_holds_no_plaintext_secret(
    store: SQLiteStore, clients: Clients, db_path: Path
) -> None:
    """Only SHA-256 of the secret is stored: not in the row, not anywhere in the files."""
    new = await clients.add("hash-only")
    await store.close()
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT * FROM clients").fetchall()
    conn.close()
    assert len(rows) == 1
    row = rows[0]
    assert hashlib.sha256(new.secret.encode()).digest() in row
    for value in row:
        if isinstance(value, str):
            assert new.secret not in value
        elif isinstance(value, bytes):
            assert new.secret.encode() not in value
    for path in db_path.parent.iterdir():
        assert new.secret.encode() not in path.read_bytes(), path.name
    await store.open()  # the fixture closes it again
