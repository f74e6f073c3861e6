"""Store test fixtures: a migrated SQLite template, copied per test (migrating is slower)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# The conformance suite is imported by backend modules, not collected itself: have pytest
# rewrite its asserts so failures show values.
pytest.register_assert_rewrite("tests.store.conformance")

from twofold.store.migrate import upgrade  # noqa: E402


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated to head once per run."""
    path = tmp_path_factory.mktemp("template") / "twofold.db"
    upgrade(sqlite_url(path))
    return path


@pytest.fixture
def db_path(tmp_path: Path, migrated_template: Path) -> Path:
    """A fresh copy of the migrated database for one test."""
    path = tmp_path / "twofold.db"
    # Closing the last connection checkpointed the WAL into the file: the file is all.
    shutil.copyfile(migrated_template, path)
    return path
