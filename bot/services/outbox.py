"""The outbox: every message to a villager goes through WeChat's API from here.

``enqueue`` adds a row in the caller's transaction (so a reply exists iff the change that caused it
committed). ``OutboxWorker`` claims due rows in batches, sends them, and marks them:

* claim — ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`` on PostgreSQL; on SQLite the
  same single ``UPDATE`` (``BEGIN IMMEDIATE`` serialises writers). A claim sets ``status='sending'``,
  ``claimed_by``/``claimed_at`` and counts the attempt.
* send — concurrently, but messages to the same openid in a batch go in order.
* mark — ``sent``; or ``pending`` again after an exponential backoff with jitter (temporary errors);
  or ``failed`` with a readable ``last_error`` (permanent errors, or too many attempts).
* 48-hour window — a customer-service message (``cs_*``) to a villager who has not written for 48
  hours (``Villager.last_inbound_at``), or one WeChat refuses with 45015 (or 45047, too many
  messages since the villager last wrote), is ``held``; a template
  notification 「您的咨询有新回复，回复任意内容查看」 is queued instead (once per window; only if
  ``LAWBOT_WECHAT_TEMPLATE_ID`` is set). ``release_held`` re-queues held rows when the villager
  writes again.
* crash safety — a claim older than ``stale_after`` (its worker died) is put back to ``pending``.
  Delivery is at least once: a message whose API call succeeded just before its worker died is
  sent again; template and mass messages carry a ``client_msg_id``/``clientmsgid`` derived from the
  idempotency key so WeChat drops those repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
import random
import signal
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.settings import Settings
from bot.storage.db import SessionFactory, create_engine, create_session_factory
from bot.storage.models import OutboxMessage, Villager, utcnow
from bot.wechat.api import CLIENTMSGID_MAX, WeChatClient
from bot.wechat.errors import PermanentError, WeChatError
from bot.wechat.ratelimit import DEFAULT_RATES, RateLimiter, parse_rates
from bot.wechat.token import token_store_for

log = logging.getLogger(__name__)

MARK_ATTEMPTS = 3
#: Once ``outbox.result`` (JSON) exists, sent rows keep WeChat's answer there (mass msg_id, template msgid).
HAS_RESULT_COLUMN = "result" in OutboxMessage.__table__.columns

CS_KINDS = frozenset({"cs_text", "cs_news", "cs_image"})
MASS_KINDS = frozenset({"mass_tag", "mass_openids"})
KINDS = CS_KINDS | MASS_KINDS | frozenset({"template", "subscribe", "mass_preview", "untag"})

#: 45015 outside the 48-hour window; 45047 too many messages since the villager last wrote.
#: Both clear when the villager writes again, so the message is held rather than failed.
WAIT_FOR_VILLAGER_CODES = frozenset({45015, 45047})

HELD_NOTICE_TEXT = "您的咨询有新回复，回复任意内容查看"
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))

REASON_OUTSIDE_WINDOW = (
    "超出48小时客服消息窗口，等村民下次发消息后再发 / outside the 48-hour window; waits for the villager's next message"
)
REASON_NO_TEMPLATE = "未设置提醒模板（LAWBOT_WECHAT_TEMPLATE_ID），未发提醒 / no notification template configured"
REASON_STALE = "发送中断（处理进程停止），重新排队 / the worker stopped while sending; re-queued"


def default_held_notice_data(now: dt.datetime) -> dict[str, Any]:
    """Template data of the 'new reply' notification. The keys must match the template chosen in the
    WeChat console; pass ``held_notice_data=`` to :class:`OutboxWorker` for a different template."""
    return {
        "first": {"value": HELD_NOTICE_TEXT},
        "keyword1": {"value": "法律咨询回复"},
        "keyword2": {"value": now.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")},
        "remark": {"value": "回复任意内容查看"},
    }


# ---------------------------------------------------------------- enqueue
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


# ---------------------------------------------------------------- the worker
@dataclass(frozen=True)
class OutboxPolicy:
    batch_size: int = 200
    #: API calls in flight at once
    concurrency: int = 64
    #: batches processed at once by ``run`` (messages to one openid stay in order only within a batch)
    lanes: int = 1
    max_attempts: int = 8
    backoff_base: float = 5.0
    backoff_max: float = 3600.0
    #: the delay is multiplied by a random factor in [1 - jitter, 1 + jitter]
    jitter: float = 0.5
    #: a 'sending' claim older than this is taken back (its worker died)
    stale_after: float = 600.0
    reclaim_every: float = 30.0
    idle_sleep: float = 0.5
    window: dt.timedelta = dt.timedelta(hours=48)
    #: hold a little before WeChat's limit, so a message is not refused in flight
    window_margin: dt.timedelta = dt.timedelta(minutes=5)

    def backoff(self, attempts: int) -> float:
        delay: float = min(self.backoff_max, self.backoff_base * 2.0 ** max(0, attempts - 1))
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass(slots=True)
class _Claimed:
    id: int
    kind: str
    openid: str | None
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int


@dataclass(slots=True)
class _Outcome:
    status: str  # sent | retry | failed | held
    error: str | None = None
    notify: bool = False
    result: dict[str, Any] | None = None  # WeChat's answer worth keeping (msgid, msg_id …)


@dataclass
class WorkerStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0
    reclaimed: int = 0
    batches: int = 0


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event | None) -> Iterator[asyncio.Event]:
    """``stop`` as given, or (for a process of its own, e.g. `lawbot worker`) a new event that
    SIGTERM and SIGINT set while the block runs."""
    if stop is not None:
        yield stop
        return
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, event.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    try:
        yield event
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def client_msg_id(idempotency_key: str) -> str:
    """A ``clientmsgid``/``client_msg_id`` (≤ 64 characters) derived from the idempotency key."""
    if len(idempotency_key) <= CLIENTMSGID_MAX and idempotency_key.isascii():
        return idempotency_key
    return "h-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:48]


def _worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class OutboxWorker:
    """Sends due outbox rows. ``run(stop)`` until stopped; ``run_once()`` handles one batch."""

    def __init__(
        self,
        settings: Settings,
        session_factory: SessionFactory,
        api_client: WeChatClient,
        *,
        policy: OutboxPolicy | None = None,
        worker_id: str | None = None,
        held_notice_data: Callable[[dt.datetime], dict[str, Any]] = default_held_notice_data,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.client = api_client
        self.policy = policy or OutboxPolicy()
        self.worker_id = (worker_id or _worker_id())[:64]
        self.held_notice_data = held_notice_data
        self.stats = WorkerStats()
        self._semaphore = asyncio.Semaphore(self.policy.concurrency)
        self._dialect: str | None = None
        self._last_reclaim = float("-inf")

    async def _get_dialect(self) -> str:
        if self._dialect is None:
            async with self.session_factory() as session:
                self._dialect = session.get_bind().dialect.name
        return self._dialect

    # ------------------------------------------------------------ loop
    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set; a batch in progress is finished first."""
        log.info("outbox worker %s started", self.worker_id)

        async def lane() -> None:
            while not stop.is_set():
                try:
                    done = await self.run_once()
                except Exception:
                    log.exception("outbox worker %s: batch failed", self.worker_id)
                    done = 0
                if done == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.policy.idle_sleep)

        await asyncio.gather(*(lane() for _ in range(max(1, self.policy.lanes))))
        log.info("outbox worker %s stopped: %s", self.worker_id, self.stats)

    async def run_once(self) -> int:
        """Reclaim stale claims when due, then claim, send and mark one batch. Returns rows handled."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_reclaim >= self.policy.reclaim_every:
            self._last_reclaim = loop.time()
            await self.reclaim_stale()
        batch = await self._claim()
        if not batch:
            return 0
        self.stats.batches += 1
        windows = await self._windows(batch)
        outcomes: dict[int, _Outcome] = {}
        groups: dict[str, list[_Claimed]] = {}
        for row in batch:
            if row.kind in CS_KINDS and row.openid in windows and not self._inside_window(windows[row.openid]):
                outcomes[row.id] = _Outcome("held", REASON_OUTSIDE_WINDOW, notify=True)
                continue
            groups.setdefault(row.openid or f"#{row.id}", []).append(row)

        async def send_group(rows: list[_Claimed]) -> None:
            for row in rows:
                async with self._semaphore:
                    outcomes[row.id] = await self._send(row)

        await asyncio.gather(*(send_group(rows) for rows in groups.values()))
        await self._mark(batch, outcomes, windows)
        return len(batch)

    # ------------------------------------------------------------ claim
    async def _claim(self) -> list[_Claimed]:
        now = utcnow()
        ids = (
            select(OutboxMessage.id)
            .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(self.policy.batch_size)
        )
        if await self._get_dialect() == "postgresql":
            ids = ids.with_for_update(skip_locked=True)
        stmt = (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids.scalar_subquery()))
            .values(status="sending", claimed_by=self.worker_id, claimed_at=now, attempts=OutboxMessage.attempts + 1)
            .returning(
                OutboxMessage.id,
                OutboxMessage.kind,
                OutboxMessage.openid,
                OutboxMessage.payload,
                OutboxMessage.idempotency_key,
                OutboxMessage.attempts,
            )
            .execution_options(synchronize_session=False)
        )
        async with self.session_factory() as session, session.begin():
            rows = (await session.execute(stmt)).all()
        claimed = [_Claimed(r[0], r[1], r[2], dict(r[3] or {}), r[4], r[5]) for r in rows]
        claimed.sort(key=lambda c: c.id)
        return claimed

    async def reclaim_stale(self) -> int:
        """Put rows claimed longer than ``stale_after`` ago (their worker died) back in the queue."""
        now = utcnow()
        cutoff = now - dt.timedelta(seconds=self.policy.stale_after)
        too_many = OutboxMessage.attempts >= self.policy.max_attempts
        stmt = (
            update(OutboxMessage)
            .where(OutboxMessage.status == "sending", OutboxMessage.claimed_at < cutoff)
            .values(
                status=case((too_many, "failed"), else_="pending"),
                claimed_by=None,
                claimed_at=None,
                next_attempt_at=now,
                last_error=REASON_STALE,
            )
            .execution_options(synchronize_session=False)
        )
        async with self.session_factory() as session, session.begin():
            count = int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
        if count:
            log.warning("outbox: reclaimed %d stale claims", count)
            self.stats.reclaimed += count
        return count

    # ------------------------------------------------------------ the 48-hour window
    async def _windows(self, batch: Sequence[_Claimed]) -> dict[str, dt.datetime | None]:
        """openid → last_inbound_at for the batch's customer-service recipients that we know."""
        openids = {r.openid for r in batch if r.kind in CS_KINDS and r.openid}
        if not openids:
            return {}
        async with self.session_factory() as session:
            rows = await session.execute(
                select(Villager.openid, Villager.last_inbound_at).where(Villager.openid.in_(openids))
            )
            return {openid: last for openid, last in rows.all()}

    def _inside_window(self, last_inbound_at: dt.datetime | None) -> bool:
        if last_inbound_at is None:
            return False
        return utcnow() - last_inbound_at < self.policy.window - self.policy.window_margin

    # ------------------------------------------------------------ send
    async def _send(self, row: _Claimed) -> _Outcome:
        try:
            result = await self._call(row)
        except PermanentError as exc:
            if exc.errcode in WAIT_FOR_VILLAGER_CODES and row.kind in CS_KINDS:
                return _Outcome("held", f"{REASON_OUTSIDE_WINDOW} [{exc.reason}]", notify=True)
            if exc.errcode == 45065 and row.kind in MASS_KINDS:  # this clientmsgid was already sent
                msg_id = exc.response.get("msg_id")
                note = f"已群发过，未重复发送 / already sent, not repeated (msg_id {msg_id})"
                return _Outcome("sent", note, result={"msg_id": msg_id} if msg_id else None)
            return _Outcome("failed", exc.reason)
        except WeChatError as exc:  # retryable, token trouble, or an unknown errcode
            return self._retry_or_fail(row, exc.reason)
        except (ValueError, KeyError, TypeError) as exc:
            return _Outcome("failed", f"消息内容不正确 / invalid payload: {exc}")
        except Exception as exc:
            log.exception("outbox: unexpected error sending %s", row.id)
            return self._retry_or_fail(row, f"内部错误 / internal error: {type(exc).__name__}: {exc}")
        return _Outcome("sent", result=result)

    def _retry_or_fail(self, row: _Claimed, reason: str) -> _Outcome:
        if row.attempts >= self.policy.max_attempts:
            return _Outcome("failed", f"重试{row.attempts}次仍失败 / gave up after {row.attempts} attempts: {reason}")
        return _Outcome("retry", reason)

    async def _call(self, row: _Claimed) -> dict[str, Any] | None:
        """Send one row; returns the part of WeChat's answer worth keeping (mass msg_id, template msgid)."""
        p, openid, client = row.payload, row.openid or "", self.client
        if row.kind == "cs_text":
            await client.send_text(openid, str(p["content"]))
        elif row.kind == "cs_news":
            articles = p.get("articles") or [{k: p[k] for k in ("title", "description", "url", "picurl") if k in p}]
            await client.send_news(openid, articles[:1])  # WeChat sends one article per message
        elif row.kind == "cs_image":
            await client.send_image(openid, str(p["media_id"]))
        elif row.kind == "template":
            template_id = p.get("template_id") or self.settings.wechat_template_id
            if not template_id:
                raise ValueError("no template_id (and LAWBOT_WECHAT_TEMPLATE_ID is not set)")
            msgid = await client.send_template(
                openid,
                str(template_id),
                p["data"],
                url=p.get("url"),
                miniprogram=p.get("miniprogram"),
                client_msg_id=client_msg_id(row.idempotency_key),
            )
            return {"msgid": msgid}
        elif row.kind == "subscribe":
            await client.send_subscribe(openid, str(p["template_id"]), p["data"], page=p.get("page"))
        elif row.kind == "mass_tag":
            mass = await client.mass_send_by_tag(
                p["message"],
                tag_id=p.get("tag_id"),
                is_to_all=bool(p.get("is_to_all", False)),
                clientmsgid=client_msg_id(row.idempotency_key),
                send_ignore_reprint=bool(p.get("send_ignore_reprint", False)),
            )
            return {"msg_id": mass.msg_id, "msg_data_id": mass.msg_data_id}
        elif row.kind == "mass_openids":
            mass = await client.mass_send_to_openids(
                list(p["openids"]),
                p["message"],
                clientmsgid=client_msg_id(row.idempotency_key),
                send_ignore_reprint=bool(p.get("send_ignore_reprint", False)),
            )
            return {"msg_id": mass.msg_id, "msg_data_id": mass.msg_data_id}
        elif row.kind == "mass_preview":
            await client.mass_preview(openid, p["message"])
        elif row.kind == "untag":
            await client.untag_users(int(p["tag_id"]), [str(o) for o in p["openids"]])
        else:
            raise ValueError(f"unknown kind {row.kind!r}")
        return None

    # ------------------------------------------------------------ mark
    async def _mark(
        self, batch: Sequence[_Claimed], outcomes: dict[int, _Outcome], windows: Mapping[str, dt.datetime | None]
    ) -> None:
        """Record the batch's outcomes in one transaction (retried on a database error: a batch left in
        'sending' would be sent again after ``stale_after``)."""
        for attempt in range(1, MARK_ATTEMPTS + 1):
            try:
                await self._mark_once(batch, outcomes, windows)
                break
            except DBAPIError:
                if attempt == MARK_ATTEMPTS:
                    raise
                log.warning("outbox: marking a batch failed (attempt %d); retrying", attempt, exc_info=True)
                await asyncio.sleep(0.2 * attempt)
        for outcome in outcomes.values():
            if outcome.status == "sent":
                self.stats.sent += 1
            elif outcome.status == "retry":
                self.stats.retried += 1
            elif outcome.status == "failed":
                self.stats.failed += 1
            else:
                self.stats.held += 1

    async def _wrote_meanwhile(
        self, session: AsyncSession, openids: set[str], seen: Mapping[str, dt.datetime | None]
    ) -> set[str]:
        """Villagers who wrote after the batch looked at their window.

        Their ``release_held`` may already have run while our rows were still 'sending', so those rows
        must not be held. On PostgreSQL the villager rows are locked first: a webhook transaction that
        updates ``last_inbound_at`` and then calls ``release_held`` either commits before this check
        (and we see its time) or waits for our commit (and then releases what we held)."""
        query = select(Villager.openid, Villager.last_inbound_at).where(Villager.openid.in_(openids))
        if await self._get_dialect() == "postgresql":
            query = query.order_by(Villager.openid).with_for_update()
        wrote = set()
        for openid, last in (await session.execute(query)).all():
            before = seen.get(openid)
            if last is not None and (before is None or last > before):
                wrote.add(openid)
        return wrote

    async def _mark_once(
        self, batch: Sequence[_Claimed], outcomes: Mapping[int, _Outcome], windows: Mapping[str, dt.datetime | None]
    ) -> None:
        now = utcnow()
        by_id = {r.id: r for r in batch}
        sent_plain = [i for i, o in outcomes.items() if o.status == "sent" and not self._individual(o)]
        mine = (OutboxMessage.claimed_by == self.worker_id, OutboxMessage.status == "sending")
        async with self.session_factory() as session, session.begin():
            held_openids = {by_id[i].openid or "" for i, o in outcomes.items() if o.status == "held"} - {""}
            wrote = await self._wrote_meanwhile(session, held_openids, windows) if held_openids else set()
            if sent_plain:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(sent_plain))
                    .values(status="sent", sent_at=now, claimed_by=None)
                    .execution_options(synchronize_session=False)
                )
            for row_id, outcome in outcomes.items():
                row = by_id[row_id]
                values: dict[str, Any]
                stmt = update(OutboxMessage).where(OutboxMessage.id == row_id, *mine)
                if outcome.status == "sent":
                    if not self._individual(outcome):
                        continue
                    values = {"status": "sent", "sent_at": now, "claimed_by": None}
                    if outcome.error is not None:
                        values["last_error"] = outcome.error
                    if HAS_RESULT_COLUMN and outcome.result is not None:
                        values["result"] = outcome.result
                    stmt = update(OutboxMessage).where(OutboxMessage.id == row_id)
                elif outcome.status == "retry":
                    next_at = now + dt.timedelta(seconds=self.policy.backoff(row.attempts))
                    values = {
                        "status": "pending",
                        "next_attempt_at": next_at,
                        "claimed_by": None,
                        "last_error": outcome.error,
                    }
                elif outcome.status == "held" and row.openid in wrote:
                    # the villager wrote while we were sending: send again now, not a failed attempt
                    values = {
                        "status": "pending",
                        "next_attempt_at": now,
                        "claimed_by": None,
                        "attempts": OutboxMessage.attempts - 1,
                    }
                elif outcome.status == "held":
                    # waiting for the villager is not a failed attempt
                    values = {
                        "status": "held",
                        "claimed_by": None,
                        "attempts": OutboxMessage.attempts - 1,
                        "last_error": outcome.error,
                    }
                    if outcome.notify and row.openid:
                        note = await self._notify_held(session, row.openid, windows.get(row.openid), row.id, now)
                        values["last_error"] = f"{outcome.error}; {note}"
                else:
                    values = {"status": "failed", "claimed_by": None, "last_error": outcome.error}
                await session.execute(stmt.values(values).execution_options(synchronize_session=False))

    @staticmethod
    def _individual(outcome: _Outcome) -> bool:
        """A sent row that needs its own UPDATE (a note, or WeChat's answer to keep)."""
        return outcome.error is not None or (HAS_RESULT_COLUMN and outcome.result is not None)

    async def _notify_held(
        self, session: AsyncSession, openid: str, last_inbound_at: dt.datetime | None, row_id: int, now: dt.datetime
    ) -> str:
        """Queue the 'new reply' template notification: once per villager per window."""
        template_id = self.settings.wechat_template_id
        if not template_id:
            return REASON_NO_TEMPLATE
        episode = last_inbound_at.isoformat() if last_inbound_at else "never"
        await enqueue(
            session,
            kind="template",
            openid=openid,
            payload={"template_id": template_id, "data": self.held_notice_data(now)},
            idempotency_key=f"held-notice:{openid}:{episode}",
            source=f"outbox:{row_id}",
        )
        return "已发模板提醒 / template notification queued"


# ---------------------------------------------------------------- the process entry point
async def run_worker(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    policy: OutboxPolicy | None = None,
    rate_limiter: RateLimiter | None = None,
    worker_id: str | None = None,
    session_factory: SessionFactory | None = None,
) -> None:
    """Build engine, session factory, token store and API client; send until ``stop`` (or SIGTERM/SIGINT
    when no ``stop`` is given, i.e. ``lawbot worker``).

    ``session_factory``: share the caller's (the in-process worker of `lawbot serve` on SQLite must, as
    SQLite runs on the loop thread with one connection per process)."""
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size) if session_factory is None else None
    if session_factory is None:
        assert engine is not None
        session_factory = create_session_factory(engine)
    store = token_store_for(settings, session_factory)
    limiter = (
        rate_limiter
        if rate_limiter is not None
        else RateLimiter(
            {**DEFAULT_RATES, **parse_rates(settings.wechat_rate_limits)}, redis_url=settings.redis_url or None
        )
    )
    client = WeChatClient.from_settings(settings, token_store=store, rate_limiter=limiter)
    try:
        with stop_on_signals(stop) as until:
            await OutboxWorker(settings, session_factory, client, policy=policy, worker_id=worker_id).run(until)
    finally:
        await client.close()
        if rate_limiter is None:
            await limiter.close()
        await store.close()
        if engine is not None:
            await engine.dispose()
