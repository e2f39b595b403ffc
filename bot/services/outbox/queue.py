"""What goes into the outbox: message kinds, ``enqueue`` in the caller's transaction, and
``release_held`` when a villager writes again.

``enqueue`` adds a row in the caller's transaction, so a message exists iff the change that caused
it committed; its ``idempotency_key`` makes a second ``enqueue`` of the same message a no-op and
gives template and mass sends their ``client_msg_id``/``clientmsgid`` (:func:`client_msg_id`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.storage.models import OutboxMessage, utcnow
from bot.wechat.api import CLIENTMSGID_MAX

CS_KINDS = frozenset({"cs_text", "cs_news", "cs_image"})
MASS_KINDS = frozenset({"mass_tag", "mass_openids"})
KINDS = CS_KINDS | MASS_KINDS | frozenset({"template", "subscribe", "mass_preview", "untag"})


def _validate(kind: str, openid: str | None, payload: Mapping[str, Any]) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}; one of {sorted(KINDS)}")
    if kind in CS_KINDS | {"template", "subscribe", "mass_preview"} and not openid:
        raise ValueError(f"{kind} needs an openid")
    required = {
        "cs_text": ("content",),
        "cs_image": ("media_id",),
        "subscribe": ("template_id", "data"),
        "mass_tag": ("message",),
        "mass_openids": ("message", "openids"),
        "mass_preview": ("message",),
        "template": ("data",),
        "untag": ("tag_id", "openids"),
    }.get(kind, ())
    missing = [k for k in required if k not in payload]
    if missing:
        raise ValueError(f"{kind} payload needs {', '.join(missing)}")
    if kind == "cs_news" and "articles" not in payload and "title" not in payload:
        raise ValueError("cs_news payload needs articles (or title/description/url/picurl)")


async def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    openid: str | None,
    payload: Mapping[str, Any],
    idempotency_key: str,
    source: str | None = None,
    not_before: dt.datetime | None = None,
) -> OutboxMessage:
    """Add a message to the outbox in the caller's transaction (no commit).

    An ``idempotency_key`` that already exists is a no-op: the existing row is returned.

    Kinds and payloads: ``cs_text`` {content}; ``cs_news`` {articles: [{title, description, url,
    picurl}]}; ``cs_image`` {media_id}; ``template`` {template_id (default: the notification
    template), data, url?, miniprogram?}; ``subscribe`` {template_id, data, page?};
    ``mass_tag`` {message, tag_id | is_to_all}; ``mass_openids`` {message, openids};
    ``mass_preview`` {message} — ``message`` is e.g. ``bot.wechat.api.text_message("…")``;
    ``untag`` {tag_id, openids} takes followers out of a tag (删除我的信息, bot.services.campaigns.privacy).

    ``source`` says who asked (``ticket:45``, ``inbound:123``, ``campaign:7`` …); rows from a
    ticket or answering a push retry transient errors longer (``OutboxPolicy.patient_sources``).
    """
    _validate(kind, openid, payload)
    if len(idempotency_key) > 191 or not idempotency_key:
        raise ValueError("idempotency_key must be 1 to 191 characters")
    dialect = session.get_bind().dialect.name
    now = utcnow()
    values = {
        "kind": kind,
        "openid": openid,
        "payload": dict(payload),
        "idempotency_key": idempotency_key,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": not_before or now,
        "created_at": now,
        "source": source,
    }
    if dialect == "postgresql":
        stmt: Any = pg_insert(OutboxMessage).values(values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    elif dialect == "sqlite":
        stmt = sqlite_insert(OutboxMessage).values(values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    else:  # pragma: no cover
        raise NotImplementedError(f"outbox on {dialect}")
    await session.execute(stmt)
    row = await session.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key))
    assert row is not None
    return row


RELEASE_HELD = (
    update(OutboxMessage)
    .where(OutboxMessage.openid == bindparam("release_openid"), OutboxMessage.status == "held")
    .values(
        status="pending", next_attempt_at=bindparam("release_now"), claimed_by=None, claimed_at=None, last_error=None
    )
    .execution_options(synchronize_session=False)
)


async def release_held(session: AsyncSession | AsyncConnection, openid: str) -> int:
    """The villager wrote again: re-queue their held messages (in the caller's transaction).

    Call it in the transaction that sets ``Villager.last_inbound_at``, after that update: a worker
    that is holding one of the villager's messages at that moment sees the new time and re-queues
    the message itself. Returns how many rows were released. (Runs on every push: the statement
    is built once.)"""
    result = await session.execute(RELEASE_HELD, {"release_openid": openid, "release_now": utcnow()})
    return int(result.rowcount)  # type: ignore[attr-defined]


def client_msg_id(idempotency_key: str) -> str:
    """A ``clientmsgid``/``client_msg_id`` (≤ 64 characters) derived from the idempotency key."""
    if len(idempotency_key) <= CLIENTMSGID_MAX and idempotency_key.isascii():
        return idempotency_key
    return "h-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:48]
