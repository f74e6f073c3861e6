"""Choosing a store from a database URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from twofold.errors import ConfigurationError
from twofold.store.factory import sqlite_path, store_from_url
from twofold.store.sqlite import SQLiteStore


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///twofold.db", Path("twofold.db")),
        ("sqlite:///data/twofold.db", Path("data/twofold.db")),
        ("sqlite:////var/lib/twofold/twofold.db", Path("/var/lib/twofold/twofold.db")),
        ("sqlite+pysqlite:////srv/a%20b.db", Path("/srv/a b.db")),
    ],
    ids=["relative", "relative-dir", "absolute", "driver-and-escape"],
)
def test_sqlite_path(url: str, path: Path) -> None:
    """sqlite_path follows SQLAlchemy's URL rules, which the migrations also use."""
    assert sqlite_path(url) == path


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "sqlite:///x.db?mode=ro", "postgresql://h/db"],
    ids=["no-path", "memory", "query", "other-scheme"],
)
def test_sqlite_path_refuses_what_is_not_a_file(url: str) -> None:
    """URLs that name no single file are a configuration error."""
    with pytest.raises(ConfigurationError):
        sqlite_path(url)


def test_store_from_sqlite_url() -> None:
    """A sqlite URL gives an unopened SQLiteStore on that file."""
    store = store_from_url("sqlite:////srv/twofold/twofold.db")
    assert isinstance(store, SQLiteStore)
    assert store.path == Path("/srv/twofold/twofold.db")


@pytest.mark.parametrize(
    "url", ["mysql://u:pw@h/db", "mongodb://u:pw@h/db"], ids=["mysql", "mongodb"]
)
def test_unsupported_scheme_is_a_configuration_error(url: str) -> None:
    """An unknown scheme names itself and the supported ones."""
    with pytest.raises(ConfigurationError, match="unsupported database URL scheme") as caught:
        store_from_url(url)
    assert "pw" not in str(caught.value)


def test_unparseable_url_does_not_echo_it() -> None:
    """A malformed URL is refused without repeating it (it may hold a password)."""
    with pytest.raises(ConfigurationError) as caught:
        store_from_url("not a url with s3cret")
    assert "s3cret" not in str(caught.value)
