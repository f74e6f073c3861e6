"""Scoped tokens: the tokens users make for third-party apps, one row per token.

Revision ID: 0005
Revises: 0004
Create Date: 2025-05-01

Dialect-neutral like 0001. A token goes with its user (``ON DELETE CASCADE``, as sessions
and refresh families do). Only the SHA-256 of its secret is kept (``secret_hash``); its
scopes are a JSON array in ``sa.Text``, as a user's roles are. Every use of a token looks
it up by id, so SQLite keeps the table without a rowid (one B-tree descent, as for
sessions). ``ix_scoped_tokens_user_id`` serves the owner's listing and the cascade from
``users``; ``ix_scoped_tokens_expires_at`` lets the purge find expired rows without a
full scan.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "scoped_tokens",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("password_changed_at", sa.Double(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scoped_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_scoped_tokens_user_id_users", ondelete="CASCADE"
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_scoped_tokens_user_id", "scoped_tokens", ["user_id"])
    op.create_index("ix_scoped_tokens_expires_at", "scoped_tokens", ["expires_at"])


def downgrade() -> None:
    # Dropping the table ends every scoped token: the code of 0004 knows none of them.
    op.drop_index("ix_scoped_tokens_expires_at", table_name="scoped_tokens")
    op.drop_index("ix_scoped_tokens_user_id", table_name="scoped_tokens")
    op.drop_table("scoped_tokens")
