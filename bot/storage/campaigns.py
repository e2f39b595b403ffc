"""Legal-education campaigns: the broadcast, its parts (one WeChat mass-send call each), previews,
MASSSENDJOBFINISH reach reports and the village-tag membership we have set in WeChat.

Status of a campaign: draft → awaiting_approval → scheduled → sending → sent | failed; cancelled from
draft, awaiting_approval or scheduled. See :mod:`bot.services.campaigns`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, utcnow

STATUSES = ("draft", "awaiting_approval", "scheduled", "sending", "sent", "failed", "cancelled")
KINDS = ("text", "news")
AUDIENCES = ("all", "villages", "openids")


class Campaign(Base):
    """One legal-education broadcast."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8), default="text")  # text | news
    text: Mapped[str] = mapped_column(Text, default="")  # the message of a text campaign
    article_title: Mapped[str] = mapped_column(String(64), default="")
    article_description: Mapped[str] = mapped_column(Text, default="")
    article_url: Mapped[str] = mapped_column(String(1024), default="")
    article_cover_url: Mapped[str] = mapped_column(String(1024), default="")
    # all | villages (village_ids, through WeChat tags) | openids (mass send by openid list)
    audience: Mapped[str] = mapped_column(String(16), default="all")
    village_ids: Mapped[list[Any]] = mapped_column(default=list)
    openids: Mapped[list[Any]] = mapped_column(default=list)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(default=None)  # None: as soon as approved
    follow_up_text: Mapped[str] = mapped_column(Text, default="")  # customer-service notice after the broadcast
    follow_up_at: Mapped[dt.datetime | None] = mapped_column(default=None)  # None: right after it is sent
    follow_up_done_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    follow_up_count: Mapped[int] = mapped_column(Integer, default=0)
    archive: Mapped[bool] = mapped_column(Boolean, default=True)  # shown on the public /campaigns page once sent
    calendar_id: Mapped[str | None] = mapped_column(String(64), default=None)  # the suggestion it started from

    status: Mapped[str] = mapped_column(String(24), default="draft", index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)  # +1 on every change of content or audience
    send_key: Mapped[str] = mapped_column(String(16))  # random; part of every clientmsgid of this campaign

    created_by: Mapped[int | None] = mapped_column(Integer, default=None)  # staff id
    created_by_name: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by_name: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    approved_by: Mapped[int | None] = mapped_column(Integer, default=None)
    approved_by_name: Mapped[str] = mapped_column(String(64), default="")
    approved_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    cancelled_by_name: Mapped[str] = mapped_column(String(64), default="")
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    return_note: Mapped[str] = mapped_column(Text, default="")  # why an admin sent it back to draft
    sending_at: Mapped[dt.datetime | None] = mapped_column(default=None)  # handed to the outbox
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")

    # a news campaign with a cover goes out as mpnews: the worker uploads the cover (an image material)
    # and makes a WeChat draft of the article for the campaign's current version
    mpnews_media_id: Mapped[str | None] = mapped_column(String(128), default=None)  # from /cgi-bin/draft/add
    mpnews_version: Mapped[int | None] = mapped_column(Integer, default=None)  # the version it was made for
    mpnews_thumb_media_id: Mapped[str | None] = mapped_column(String(128), default=None)  # the uploaded cover
    mpnews_thumb_url: Mapped[str] = mapped_column(String(1024), default="")  # the cover URL it came from
    mpnews_error: Mapped[str] = mapped_column(Text, default="")  # the last preparation failure (for staff)

    # reach: sums of the MASSSENDJOBFINISH reports of its parts
    total_count: Mapped[int] = mapped_column(Integer, default=0)
    filter_count: Mapped[int] = mapped_column(Integer, default=0)
    sent_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    reports: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_campaigns_status_scheduled_at", "status", "scheduled_at"),)


class CampaignPart(Base):
    """One mass-send API call of a campaign: all followers, one village tag, or ≤ 10,000 openids.

    ``idempotency_key`` is the outbox row's key; the worker derives the ``clientmsgid`` from it, so a
    retried call cannot send twice."""

    __tablename__ = "campaign_parts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(8))  # all | tag | openids
    village_id: Mapped[int | None] = mapped_column(Integer, default=None)
    tag_id: Mapped[int | None] = mapped_column(Integer, default=None)
    openids: Mapped[list[Any]] = mapped_column(default=list)
    size: Mapped[int] = mapped_column(Integer, default=0)  # expected recipients (known villagers / openids)
    idempotency_key: Mapped[str] = mapped_column(String(191), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    error: Mapped[str] = mapped_column(Text, default="")
    msg_id: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    __table_args__ = (UniqueConstraint("campaign_id", "seq", name="uq_campaign_parts_campaign_seq"),)


class CampaignPreview(Base):
    """A preview of one version of a campaign, sent to a staff member's own WeChat."""

    __tablename__ = "campaign_previews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    openid: Mapped[str] = mapped_column(String(64))
    staff_id: Mapped[int | None] = mapped_column(Integer, default=None)
    staff_name: Mapped[str] = mapped_column(String(64), default="")
    idempotency_key: Mapped[str] = mapped_column(String(191), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CampaignReport(Base):
    """A MASSSENDJOBFINISH event: WeChat's count of one mass send. Linked to its part when known."""

    __tablename__ = "campaign_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    msg_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    part_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign_parts.id", ondelete="SET NULL"), default=None, unique=True
    )
    matched_by: Mapped[str | None] = mapped_column(String(8), default=None)  # msg_id | order
    status: Mapped[str] = mapped_column(String(64), default="")  # "send success", "send fail", "err(20013)" …
    total_count: Mapped[int] = mapped_column(Integer, default=0)
    filter_count: Mapped[int] = mapped_column(Integer, default=0)
    sent_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class VillageTagMember(Base):
    """The village tag we have put on a follower in WeChat (one village, so one tag, per follower)."""

    __tablename__ = "village_tag_members"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    village_id: Mapped[int] = mapped_column(Integer)
    tag_id: Mapped[int] = mapped_column(Integer, index=True)
    synced_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StaffWeChat(Base):
    """A staff member's own WeChat openid, for campaign previews. Bound by sending "预览绑定 <code>" to the
    account from that WeChat (the code is shown in the back-office and expires in minutes)."""

    __tablename__ = "campaign_staff_wechat"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True)
    openid: Mapped[str | None] = mapped_column(String(64), default=None)
    bound_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    code: Mapped[str | None] = mapped_column(String(16), default=None, index=True)
    code_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
