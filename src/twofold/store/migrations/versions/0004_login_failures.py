"""Counters of failed logins (SECURITY.md P3), one row per throttled key.

Revision ID: 0004
Revises: 0003
Create Date: 2025-04-01

Dialect-neutral like 0001. A key is an opaque ASCII string of at most 128 characters (an
account, a client address, a known device), hence ``VARCHAR(128)``. Every login looks its
keys up by primary key, so SQLite keeps the table without a rowid (one B-tree descent, as
for sessions). The purge deletes rows whose last failure is older than the window:
``ix_login_failures_last_failure_at`` finds them without a full scan.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_login_failures_last_failure_at", "login_failures", ["last_failure_at"])


def downgrade() -> None:
    # Counters only slow guessing down for a while; nothing else refers to them.
    op.drop_index("ix_login_failures_last_failure_at", table_name="login_failures")
    op.drop_table("login_failures")
