"""disputes: cases, parties, timeline, monthly screening reports; staff_users.position (三长联动)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 14:25:18
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.storage.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dispute_counters",
        sa.Column("word", sa.String(length=16), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("word", "year", name=op.f("pk_dispute_counters")),
    )
    op.create_table(
        "dispute_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("zero", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("submitted_by_id", sa.Integer(), nullable=True),
        sa.Column("submitted_at", bot.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"],
            ["staff_users.id"],
            name=op.f("fk_dispute_reports_submitted_by_id_staff_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["village_id"], ["villages.id"], name=op.f("fk_dispute_reports_village_id_villages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_reports")),
        sa.UniqueConstraint("village_id", "month", name=op.f("uq_dispute_reports_village_id")),
    )
    op.create_table(
        "dispute_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_no", sa.String(length=40), nullable=False),
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("found_on", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("risk", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("points", sa.Text(), nullable=False),
        sa.Column("responsibility", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("committee", sa.String(length=64), nullable=False),
        sa.Column("mediator_id", sa.Integer(), nullable=True),
        sa.Column("mediator_name", sa.String(length=64), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.Column("queue_entered_at", bot.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("queue_left_at", bot.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agreement_kind", sa.String(length=4), nullable=False),
        sa.Column("agreement_terms", sa.Text(), nullable=False),
        sa.Column("performance_method", sa.Text(), nullable=False),
        sa.Column("performance_deadline", sa.String(length=64), nullable=False),
        sa.Column("agreement_on", sa.Date(), nullable=True),
        sa.Column("confirmation", sa.String(length=8), nullable=False),
        sa.Column("confirmation_on", sa.Date(), nullable=True),
        sa.Column("confirm_reminder_stage", sa.Integer(), nullable=False),
        sa.Column("visit_due_on", sa.Date(), nullable=True),
        sa.Column("visited_on", sa.Date(), nullable=True),
        sa.Column("visit_result", sa.String(length=8), nullable=False),
        sa.Column("visit_notes", sa.Text(), nullable=False),
        sa.Column("visit_reminded_at", bot.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("import_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", bot.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("anonymised_at", bot.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["mediator_id"],
            ["staff_users.id"],
            name=op.f("fk_dispute_cases_mediator_id_staff_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["staff_users.id"],
            name=op.f("fk_dispute_cases_recorded_by_id_staff_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_dispute_cases_ticket_id_tickets"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["village_id"], ["villages.id"], name=op.f("fk_dispute_cases_village_id_villages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_cases")),
        sa.UniqueConstraint("case_no", name=op.f("uq_dispute_cases_case_no")),
        sa.UniqueConstraint("import_key", name=op.f("uq_dispute_cases_import_key")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_dispute_cases_ticket_id")),
    )
    with op.batch_alter_table("dispute_cases", schema=None) as batch_op:
        batch_op.create_index("ix_dispute_cases_found_on", ["found_on"], unique=False)
        batch_op.create_index("ix_dispute_cases_mediator_id", ["mediator_id"], unique=False)
        batch_op.create_index("ix_dispute_cases_village_found", ["village_id", "found_on"], unique=False)

    op.create_table(
        "dispute_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("at", bot.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["dispute_cases.id"], name=op.f("fk_dispute_events_case_id_dispute_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff_users.id"], name=op.f("fk_dispute_events_staff_id_staff_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_events")),
    )
    with op.batch_alter_table("dispute_events", schema=None) as batch_op:
        batch_op.create_index("ix_dispute_events_case", ["case_id", "id"], unique=False)

    op.create_table(
        "dispute_parties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("gender", sa.String(length=2), nullable=False),
        sa.Column("ethnicity", sa.String(length=16), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("phone_consent_at", bot.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("openid", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["dispute_cases.id"], name=op.f("fk_dispute_parties_case_id_dispute_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_parties")),
    )
    with op.batch_alter_table("dispute_parties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispute_parties_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispute_parties_openid"), ["openid"], unique=False)

    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.String(length=32), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("position")

    with op.batch_alter_table("dispute_parties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispute_parties_openid"))
        batch_op.drop_index(batch_op.f("ix_dispute_parties_case_id"))

    op.drop_table("dispute_parties")
    with op.batch_alter_table("dispute_events", schema=None) as batch_op:
        batch_op.drop_index("ix_dispute_events_case")

    op.drop_table("dispute_events")
    with op.batch_alter_table("dispute_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_dispute_cases_village_found")
        batch_op.drop_index("ix_dispute_cases_mediator_id")
        batch_op.drop_index("ix_dispute_cases_found_on")

    op.drop_table("dispute_cases")
    op.drop_table("dispute_reports")
    op.drop_table("dispute_counters")
