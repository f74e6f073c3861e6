"""Refresh-token families, the revocation stream, the audit log, registered clients.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

Dialect-neutral like 0001 (``sa.Double`` times, ``sa.LargeBinary`` hashes, named
constraints and indexes). The two sequence-numbered tables are worth a note:

- ``revocations.seq`` and ``audit_events.seq`` never go backwards and are never reused.
  In SQLite that takes ``AUTOINCREMENT`` (a plain ``INTEGER PRIMARY KEY`` hands the
  largest rowid + 1 to the next insert, so purging the newest entry would give its seq to
  the next one, and a follower that already read that seq would miss the new entry).
  PostgreSQL gets a ``BIGSERIAL``, whose sequence never rewinds either.
- ``AUTOINCREMENT`` needs the column to be exactly ``INTEGER PRIMARY KEY`` in SQLite, hence
  ``BigInteger`` with an ``Integer`` variant there (SQLite integers are 64-bit anyway).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # list_live_sessions orders every live session by last_seen_at.
    op.create_index("ix_sessions_last_seen_at", "sessions", ["last_seen_at"])
    # The privilege epoch, like the password epoch: a session whose value differs from its
    # user's gets a new id on its next request (SECURITY.md S3). Sessions from 0001 carry
    # 0 like their users, so they keep their ids until the next role change.
    op.add_column(
        "users",
        sa.Column("roles_changed_at", sa.Double(), nullable=False, server_default="0"),
    )
    op.add_column(
        "sessions",
        sa.Column("roles_changed_at", sa.Double(), nullable=False, server_default="0"),
    )
    # A renewed session's record points at its successor for its last seconds, so that a
    # logout with the old id ends the new one too.
    op.add_column("sessions", sa.Column("renewed_to", sa.LargeBinary(), nullable=True))

    op.create_table(
        "refresh_families",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_used_at", sa.Double(), nullable=False),
        sa.Column("idle_expires_at", sa.Double(), nullable=False),
        sa.Column("absolute_expires_at", sa.Double(), nullable=False),
        sa.Column("client_address", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("password_changed_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_families"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_refresh_families_user_id_users",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_refresh_families_user_id", "refresh_families", ["user_id"])
    # As for sessions: one index per expiry for the OR in the purge, one for the listing.
    op.create_index("ix_refresh_families_idle_expires_at", "refresh_families", ["idle_expires_at"])
    op.create_index(
        "ix_refresh_families_absolute_expires_at", "refresh_families", ["absolute_expires_at"]
    )
    op.create_index("ix_refresh_families_last_used_at", "refresh_families", ["last_used_at"])

    op.create_table(
        "refresh_tokens",
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("family_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("spent_at", sa.Double(), nullable=True),
        sa.Column("successor_hash", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("hash", name="pk_refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["refresh_families.id"],
            name="fk_refresh_tokens_family_id_refresh_families",
            ondelete="CASCADE",
        ),
        # Looked up by hash on every refresh: one B-tree descent, as for sessions.
        sqlite_with_rowid=False,
    )
    # Deleting a family cascades to its tokens: without this index, a full scan each time.
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])

    op.create_table(
        "revocations",
        sa.Column("seq", _SEQ, nullable=False, autoincrement=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_revocations"),
        sa.CheckConstraint(
            "kind IN ('token', 'family', 'user', 'key')", name="ck_revocations_kind"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_revocations_expires_at", "revocations", ["expires_at"])

    op.create_table(
        "audit_events",
        sa.Column("seq", _SEQ, nullable=False, autoincrement=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        # No foreign keys: the audit log outlives the users it names.
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.Text(), nullable=True),
        sa.Column("client_address", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sqlite_autoincrement=True,
    )
    # list_audit pages newest first by seq within a user (as subject or actor) or a kind.
    op.create_index("ix_audit_events_user_id_seq", "audit_events", ["user_id", "seq"])
    op.create_index("ix_audit_events_actor_id_seq", "audit_events", ["actor_id", "seq"])
    op.create_index("ix_audit_events_kind_seq", "audit_events", ["kind", "seq"])

    op.create_table(
        "clients",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_clients"),
        sa.UniqueConstraint("name", name="uq_clients_name"),
    )


def downgrade() -> None:
    op.drop_table("clients")
    op.drop_index("ix_audit_events_kind_seq", table_name="audit_events")
    op.drop_index("ix_audit_events_actor_id_seq", table_name="audit_events")
    op.drop_index("ix_audit_events_user_id_seq", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_revocations_expires_at", table_name="revocations")
    op.drop_table("revocations")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index("ix_refresh_families_last_used_at", table_name="refresh_families")
    op.drop_index("ix_refresh_families_absolute_expires_at", table_name="refresh_families")
    op.drop_index("ix_refresh_families_idle_expires_at", table_name="refresh_families")
    op.drop_index("ix_refresh_families_user_id", table_name="refresh_families")
    op.drop_table("refresh_families")
    op.drop_column("sessions", "renewed_to")
    op.drop_column("sessions", "roles_changed_at")
    op.drop_column("users", "roles_changed_at")
    op.drop_index("ix_sessions_last_seen_at", table_name="sessions")
