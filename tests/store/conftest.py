"""Store tests share ``migrated_template`` and ``db_path`` with the rest (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

# The conformance suite is imported by backend modules, not collected itself: have pytest
# rewrite its asserts so failures show values.
pytest.register_assert_rewrite("tests.store.conformance")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
