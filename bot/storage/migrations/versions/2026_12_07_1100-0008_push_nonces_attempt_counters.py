"""push_nonces (a signed push's timestamp+nonce, kept for the window) and attempt_counters (sign-in limits)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_nonces",
        sa.Column("timestamp", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("timestamp", "nonce", name=op.f("pk_push_nonces")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "attempt_counters",
        sa.Column("key", sa.String(length=191), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_attempt_counters")),
    )
    with op.batch_alter_table("attempt_counters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attempt_counters_window_start"), ["window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attempt_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempt_counters_window_start"))
    op.drop_table("attempt_counters")
    op.drop_table("push_nonces")
