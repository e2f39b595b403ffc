"""The township's own layer of knowledge: published versions (each a whole layer) and staff proposals.

A version row holds the *whole* layer as JSON (new phrasings for shipped entries, new entries,
local replacements of an entry's answer, local site values), so restoring is copying an old
row into a new one and the layer in use is always the row with the highest id. Version ids are
given explicitly (latest + 1): two reviewers publishing at once cannot both build on the same
version, the second gets a duplicate key and builds again on the first one's layer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, utcnow

PROPOSAL_KINDS: tuple[str, ...] = ("variant", "entry", "edit", "site")
PROPOSAL_STATUSES: tuple[str, ...] = ("pending", "approved", "rejected", "withdrawn")


class KnowledgeVersion(Base):
    """One published state of the township's layer: who, when, why, and the whole layer."""

    __tablename__ = "knowledge_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # the version number
    layer: Mapped[dict[str, Any]] = mapped_column(default=dict)
    action: Mapped[str] = mapped_column(String(16))  # approve | restore | import | review
    summary: Mapped[str] = mapped_column(Text, default="")  # what changed, in plain Chinese
    reason: Mapped[str] = mapped_column(Text, default="")  # why (the reviewer's words)
    proposal_id: Mapped[int | None] = mapped_column(
        ForeignKey("knowledge_proposals.id", ondelete="SET NULL"), default=None
    )
    restored_from: Mapped[int | None] = mapped_column(Integer, default=None)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    by_name: Mapped[str] = mapped_column(String(64), default="")  # kept if the account is deleted
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KnowledgeProposal(Base):
    """A staff member's suggestion: a phrasing for an entry, a new entry, an edit of an answer, a site value.

    ``checks`` caches what the reviewer sees (problems, quality before/after), computed off the
    event loop against layer version ``checks_version``; it is recomputed when either changes.
    """

    __tablename__ = "knowledge_proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # variant | entry | edit | site
    status: Mapped[str] = mapped_column(String(16), default="pending")
    entry_id: Mapped[str | None] = mapped_column(String(64), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(16), default="page")  # page | gap | ticket | cli
    source_ref: Mapped[str] = mapped_column(String(64), default="")  # the gap's text key, the ticket number
    #: drafted from a ticket reply: a reviewer must edit it before it can be published
    needs_edit: Mapped[bool] = mapped_column(Boolean, default=False)
    proposed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="SET NULL"), default=None
    )
    proposed_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    checks: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    checks_version: Mapped[int | None] = mapped_column(Integer, default=None)
    checks_started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="SET NULL"), default=None
    )
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    version_id: Mapped[int | None] = mapped_column(Integer, default=None)  # the version that published it

    __table_args__ = (Index("ix_knowledge_proposals_status_id", "status", "id"),)
