"""Paging rules every store enforces the same way, and the choice of audit query the SQL
stores share (their statement modules define the same four ``LIST_AUDIT*`` statements)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

#: list_audit's largest page.
MAX_AUDIT_PAGE = 1000
# list_audit's "no before": larger than any seq a store assigns (64-bit).
_MAX_SEQ = 2**63 - 1


def check_page(limit: int, offset: int = 0) -> None:
    """A negative limit or offset is a ValueError on every backend (SQLite would read a
    negative LIMIT as "no limit" and return everything)."""
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")


def check_audit_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_AUDIT_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_AUDIT_PAGE}")


def audit_query(
    statements: ModuleType,
    *,
    before: int | None,
    limit: int,
    user_id: str | None,
    kind: str | None,
) -> tuple[str, tuple[Any, ...]]:
    """The statement and parameters of a list_audit page, from ``statements``."""
    check_audit_limit(limit)
    below = _MAX_SEQ if before is None else before
    if user_id is None and kind is None:
        return statements.LIST_AUDIT, (below, limit)
    if kind is None:
        return statements.LIST_AUDIT_OF_USER, (below, user_id, user_id, limit)
    if user_id is None:
        return statements.LIST_AUDIT_OF_KIND, (below, kind, limit)
    return statements.LIST_AUDIT_OF_USER_AND_KIND, (below, user_id, user_id, kind, limit)
