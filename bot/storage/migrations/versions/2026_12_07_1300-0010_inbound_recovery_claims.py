"""inbound_messages: when the recovery job claimed a push, and how often — a worker that dies while
re-running a push leaves it 'recovering'; another worker takes it over later

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recovery_claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("recovery_attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("recovery_attempts")
        batch_op.drop_column("recovery_claimed_at")
