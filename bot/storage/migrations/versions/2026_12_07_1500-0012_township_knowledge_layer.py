"""The township's knowledge layer: published versions, staff proposals, and the reviewer flag on staff accounts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reviewer", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "knowledge_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_ref", sa.String(length=64), nullable=False),
        sa.Column("needs_edit", sa.Boolean(), nullable=False),
        sa.Column("proposed_by_id", sa.Integer(), nullable=True),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=True),
        sa.Column("checks_version", sa.Integer(), nullable=True),
        sa.Column("checks_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["staff_users.id"],
            name=op.f("fk_knowledge_proposals_decided_by_id_staff_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by_id"],
            ["staff_users.id"],
            name=op.f("fk_knowledge_proposals_proposed_by_id_staff_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_proposals")),
    )
    with op.batch_alter_table("knowledge_proposals", schema=None) as batch_op:
        batch_op.create_index("ix_knowledge_proposals_status_id", ["status", "id"], unique=False)
    op.create_table(
        "knowledge_versions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("layer", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("by_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"], ["staff_users.id"], name=op.f("fk_knowledge_versions_by_id_staff_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["knowledge_proposals.id"],
            name=op.f("fk_knowledge_versions_proposal_id_knowledge_proposals"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_versions")),
    )


def downgrade() -> None:
    op.drop_table("knowledge_versions")
    with op.batch_alter_table("knowledge_proposals", schema=None) as batch_op:
        batch_op.drop_index("ix_knowledge_proposals_status_id")
    op.drop_table("knowledge_proposals")
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("reviewer")
