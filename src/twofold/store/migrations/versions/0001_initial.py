"""Initial schema: users, sessions, signing keys.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Dialect-neutral on purpose (the PostgreSQL store reuses these migrations):

- Times are Unix seconds as ``sa.Double`` (REAL in SQLite, DOUBLE PRECISION in
  PostgreSQL): the records carry floats, and an 8-byte double round-trips them exactly.
- Session id hashes and key material are ``sa.LargeBinary`` (BLOB / BYTEA).
- Roles are a JSON array in a ``sa.Text`` column: they are a handful of names, always read
  with the user and never queried by role, so a side table would only add a join (or a
  second query) to every user read.
- Constraints and indexes carry explicit names so later migrations can address them on
  every backend.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("password_changed_at", sa.Double(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    # list_users pages by (created_at, id).
    op.create_index("ix_users_created_at_id", "users", ["created_at", "id"])

    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_seen_at", sa.Double(), nullable=False),
        sa.Column("idle_expires_at", sa.Double(), nullable=False),
        sa.Column("absolute_expires_at", sa.Double(), nullable=False),
        sa.Column("client_address", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("password_changed_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"
        ),
        # The session read is a primary-key lookup on every authenticated request: without
        # a rowid, SQLite finds the row in one B-tree descent instead of index + table.
        sqlite_with_rowid=False,
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    # The purge deletes where either expiry is past; one index per column lets SQLite
    # (OR-by-union) and PostgreSQL (BitmapOr) find them without a full scan.
    op.create_index("ix_sessions_idle_expires_at", "sessions", ["idle_expires_at"])
    op.create_index("ix_sessions_absolute_expires_at", "sessions", ["absolute_expires_at"])

    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("alg", sa.Text(), nullable=False),
        sa.Column("material", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("retire_after", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
        sa.CheckConstraint(
            "state IN ('active', 'verify', 'retired')", name="ck_signing_keys_state"
        ),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_index("ix_sessions_absolute_expires_at", table_name="sessions")
    op.drop_index("ix_sessions_idle_expires_at", table_name="sessions")
    op.drop_index("ix_sessions_user_id", table_name="sessions")
    op.drop_table("sessions")
    op.drop_index("ix_users_created_at_id", table_name="users")
    op.drop_table("users")
