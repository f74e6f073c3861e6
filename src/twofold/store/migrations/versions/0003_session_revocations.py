"""The revocation stream also carries ``session`` entries (a session ended or changed), so
that instances caching sessions in memory drop them within the stream's propagation time.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01

Only the CHECK constraint on ``revocations.kind`` changes. PostgreSQL swaps it in place.
SQLite cannot alter a constraint, so the table is rebuilt by hand rather than with batch
mode, for one reason: the ``AUTOINCREMENT`` high-water mark. A rebuilt table's counter
would restart at its largest *remaining* ``seq``; if the newest entries had been purged,
their numbers would be handed out again, and a follower that had read them would skip the
new entries. The old mark is carried over into ``sqlite_sequence``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_WITH_SESSION = "kind IN ('token', 'family', 'user', 'key', 'session')"
_WITHOUT_SESSION = "kind IN ('token', 'family', 'user', 'key')"


def upgrade() -> None:
    _set_kinds(_WITH_SESSION)


def downgrade() -> None:
    # Entries of the new kind only told caches to drop a session; they refuse nothing.
    op.execute("DELETE FROM revocations WHERE kind = 'session'")
    _set_kinds(_WITHOUT_SESSION)


def _set_kinds(check: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(check)
    else:
        op.drop_constraint("ck_revocations_kind", "revocations", type_="check")
        op.create_check_constraint("ck_revocations_kind", "revocations", check)


def _rebuild_sqlite(check: str) -> None:
    bind = op.get_bind()
    mark = bind.execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'revocations'")
    ).scalar_one_or_none()
    op.create_table(
        "revocations_new",
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_revocations"),
        sa.CheckConstraint(check, name="ck_revocations_kind"),
        sqlite_autoincrement=True,
    )
    op.execute(
        "INSERT INTO revocations_new (seq, kind, subject, at, expires_at) "
        "SELECT seq, kind, subject, at, expires_at FROM revocations"
    )
    op.drop_index("ix_revocations_expires_at", table_name="revocations")
    op.drop_table("revocations")
    op.rename_table("revocations_new", "revocations")
    op.create_index("ix_revocations_expires_at", "revocations", ["expires_at"])
    if mark is not None:
        op.execute("DELETE FROM sqlite_sequence WHERE name = 'revocations'")
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('revocations', :mark)"),
            {"mark": mark},
        )
