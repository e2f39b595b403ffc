"""villagers.last_staff_reply_at: skip the follow-up ticket query for villagers nobody replied to

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("villagers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_staff_reply_at", sa.DateTime(timezone=True), nullable=True))
    # replies made before this revision still open their follow-up window
    op.execute(
        """
        UPDATE villagers SET last_staff_reply_at = (
            SELECT max(tickets.last_staff_reply_at) FROM tickets WHERE tickets.openid = villagers.openid
        )
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("villagers", schema=None) as batch_op:
        batch_op.drop_column("last_staff_reply_at")
