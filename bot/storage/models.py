"""Typed SQLAlchemy 2 models. Times are stored in UTC and always come back tz-aware."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is stored as UTC and read back tz-aware on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Village(Base):
    __tablename__ = "villages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    wechat_tag_id: Mapped[int | None] = mapped_column(Integer, default=None)


class Villager(Base):
    """One WeChat follower (openid). The 48-hour customer-service window runs from last_inbound_at."""

    __tablename__ = "villagers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"), default=None)
    village_source: Mapped[str | None] = mapped_column(String(16), default=None)  # qrscene | asked | staff
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_inbound_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    subscribed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)  # 退订 follow-up notices
    display_name: Mapped[str | None] = mapped_column(String(64), default=None)  # only with consent
    phone: Mapped[str | None] = mapped_column(String(32), default=None)  # only with consent
    phone_consent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # When staff last replied to one of this villager's tickets: the chat looks for a follow-up
    # thread (a ticket query) only within 48 hours of it. Set by tickets.staff_reply.
    last_staff_reply_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class InboundMessage(Base):
    """Every push, stored before any handler runs. ``dedup_key`` makes WeChat's retries idempotent."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    openid: Mapped[str] = mapped_column(String(64))  # indexed with received_at, below
    msg_type: Mapped[str] = mapped_column(String(32))
    event: Mapped[str | None] = mapped_column(String(64), default=None)
    event_key: Mapped[str | None] = mapped_column(String(255), default=None)
    msg_id: Mapped[str | None] = mapped_column(String(64), default=None)
    content: Mapped[str | None] = mapped_column(Text, default=None)  # text, or recognised voice
    media_id: Mapped[str | None] = mapped_column(String(255), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)  # every field of the push
    wechat_created_at: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)  # recovery looks by time
    # received -> replied (passive reply stored) | deferred (reply went to the outbox) | failed;
    # recovering = the recovery job is re-running it
    status: Mapped[str] = mapped_column(String(16), default="received")
    handler: Mapped[str | None] = mapped_column(String(64), default=None)
    # what the bot made of a question (answer | picked | clarify | handoff | smalltalk), for the monthly
    # report: the FAQ topic and entry it answered with, or the nearest one
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    topic: Mapped[str | None] = mapped_column(String(64), default=None)
    entry_id: Mapped[str | None] = mapped_column(String(64), default=None)
    reply: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # the reply, to answer retries
    replied_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # the recovery job (a crash left the push unanswered): when a worker last claimed it, how often
    recovery_claimed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    recovery_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (Index("ix_inbound_messages_openid_received", "openid", "received_at"),)


class ConversationState(Base):
    """Wizard steps and chat context (last answer, last suggestions), one row per villager."""

    __tablename__ = "conversation_states"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(64), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxMessage(Base):
    """A message to send through the WeChat API; written in the transaction that causes it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(
        String(32)
    )  # cs_text | cs_news | template | subscribe | mass_tag | mass_openids | ...
    openid: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(191), unique=True)
    # pending -> sending -> sent | failed ; held = waiting for the villager's next message (48-hour window)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # pending: when to try; sending: when the worker's claim (lease) runs out and another may take it
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    source: Mapped[str | None] = mapped_column(String(64), default=None)  # e.g. inbound:123, ticket:45
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # WeChat's answer (msg_id of a mass send …)

    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)


class AccessToken(Base):
    """One row per appid: the shared access token (the DB store; Redis replaces it when configured)."""

    __tablename__ = "access_tokens"

    appid: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str | None] = mapped_column(Text, default=None)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    refreshed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    lock_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lock_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class KnowledgeGap(Base):
    """A question the FAQ could not answer confidently (clarify or handoff)."""

    __tablename__ = "knowledge_gaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str | None] = mapped_column(String(64), default=None)
    text: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(16))
    candidates: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class JobMark(Base):
    """How far a periodic job got through a growing table (the last id it handled), shared by every worker:
    e.g. the 180-day removal of phone numbers from old pushes and outbox payloads (bot.services.retention)."""

    __tablename__ = "job_marks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PushNonce(Base):
    """A (timestamp, nonce) pair WeChat signed a push with, kept for the timestamp window.

    A second push with the same pair is refused unless it is the same push again (WeChat's retry):
    ``digest`` is a hash of what WeChat signed (the Encrypt payload in safe mode, the body otherwise).
    The Redis store (LAWBOT_REDIS_URL) replaces this table when configured."""

    __tablename__ = "push_nonces"

    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(32))

    # SQLite: the key is the table (one B-tree to write per push, not a table and an index)
    __table_args__ = ({"sqlite_with_rowid": False},)


class AttemptCounter(Base):
    """Attempts within a fixed window under one key (sign-in guesses per account or address, binding codes).

    Counted with one atomic upsert before the attempt is evaluated, so parallel guesses cannot all slip
    in; Redis INCR replaces this table when LAWBOT_REDIS_URL is set."""

    __tablename__ = "attempt_counters"

    key: Mapped[str] = mapped_column(String(191), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[dt.datetime] = mapped_column(index=True)
