"""urgent alerts and the duty roster: tickets.urgent_kind / duty_staff_id / first_opened_* / alert_* /
escalation_seen_at, staff_users.last_seen_at, duty_shifts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STAFF_COLUMNS = ("duty_staff_id", "first_opened_by", "alert_seen_by")


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("urgent_kind", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("duty_staff_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("first_opened_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("first_opened_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("alert_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("alert_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("alert_seen_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("alert_escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("escalation_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_tickets_alert_at"), ["alert_at"], unique=False)
        for column in _STAFF_COLUMNS:
            batch_op.create_foreign_key(
                batch_op.f(f"fk_tickets_{column}_staff_users"), "staff_users", [column], ["id"], ondelete="SET NULL"
            )
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "duty_shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=True),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff_users.id"], name=op.f("fk_duty_shifts_staff_id_staff_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_shifts")),
        sa.UniqueConstraint("day", name=op.f("uq_duty_shifts_day")),
        sa.UniqueConstraint("weekday", name=op.f("uq_duty_shifts_weekday")),
    )
    # tickets filed before this revision: their alerts and escalations count as already seen
    op.execute("UPDATE tickets SET alert_at = created_at, alert_seen_at = created_at WHERE urgent")
    op.execute("UPDATE tickets SET escalation_seen_at = escalated_at WHERE escalated_at IS NOT NULL")


def downgrade() -> None:
    op.drop_table("duty_shifts")
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        for column in reversed(_STAFF_COLUMNS):
            batch_op.drop_constraint(batch_op.f(f"fk_tickets_{column}_staff_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_tickets_alert_at"))
        for column in (
            "escalation_seen_at",
            "alert_escalated_at",
            "alert_seen_by",
            "alert_seen_at",
            "alert_at",
            "first_opened_by",
            "first_opened_at",
            "duty_staff_id",
            "urgent_kind",
        ):
            batch_op.drop_column(column)
