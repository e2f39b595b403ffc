"""The outbox worker: claims due rows in batches, sends them through WeChat's API, records each
outcome.

* claim / lease / takeover / recording acceptance — :mod:`bot.services.outbox.claims`.
* send — concurrently, but messages to the same openid in a batch go in order. A call starts
  only while the batch's claim is sure to outlast it, and is cut off before the claim could run
  out, so a row is never in flight at two workers.
* outcomes — ``sent`` (recorded at once); ``pending`` again after an exponential backoff with
  jitter (transient errors; after a call that may have reached WeChat, no sooner than it could
  have completed); ``pending`` until the quota resets (WeChat's quota errors: not a failed
  attempt); ``failed`` with a readable ``last_error`` (permanent errors, or out of attempts —
  :class:`~bot.services.outbox.policy.OutboxPolicy` says when).
* 48-hour window — a customer-service message (``cs_*``) to a villager who has not written for 48
  hours (``Villager.last_inbound_at``), or one WeChat refuses with 45015 (or 45047, too many
  messages since the villager last wrote), is ``held``; a template
  notification 「您的咨询有新回复，回复任意内容查看」 is queued instead (once per window; only if
  ``LAWBOT_WECHAT_TEMPLATE_ID`` is set). ``release_held`` re-queues held rows when the villager
  writes again.

What is still sent twice (at least once): see ``bench/outbox_README.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.outbox import claims
from bot.services.outbox.claims import Claimed, Lease
from bot.services.outbox.policy import (
    API_OF_KIND,
    API_WIDE_QUOTA_CODES,
    CHINA_TZ,
    OutboxPolicy,
    maybe_delivered_reason,
    quota_reason,
)
from bot.services.outbox.queue import CS_KINDS, MASS_KINDS, client_msg_id, enqueue
from bot.settings import Settings
from bot.storage.db import SessionFactory, create_engine, create_session_factory
from bot.storage.models import OutboxMessage, Villager, utcnow
from bot.wechat.api import WeChatClient
from bot.wechat.errors import PermanentError, WeChatError
from bot.wechat.ratelimit import DEFAULT_RATES, RateLimiter, parse_rates
from bot.wechat.token import token_store_for

log = logging.getLogger(__name__)

MARK_ATTEMPTS = 3

#: 45015 outside the 48-hour window; 45047 too many messages since the villager last wrote.
#: Both clear when the villager writes again, so the message is held rather than failed.
WAIT_FOR_VILLAGER_CODES = frozenset({45015, 45047})

HELD_NOTICE_TEXT = "您的咨询有新回复，回复任意内容查看"

REASON_OUTSIDE_WINDOW = (
    "超出48小时客服消息窗口，等村民下次发消息后再发 / outside the 48-hour window; waits for the villager's next message"
)
REASON_NO_TEMPLATE = "未设置提醒模板（LAWBOT_WECHAT_TEMPLATE_ID），未发提醒 / no notification template configured"
REASON_CUT_OFF = "发送超时（处理进程的认领即将到期） / the call outlasted this worker's claim"


def default_held_notice_data(now: dt.datetime) -> dict[str, Any]:
    """Template data of the 'new reply' notification. The keys must match the template chosen in the
    WeChat console; pass ``held_notice_data=`` to :class:`OutboxWorker` for a different template."""
    return {
        "first": {"value": HELD_NOTICE_TEXT},
        "keyword1": {"value": "法律咨询回复"},
        "keyword2": {"value": now.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")},
        "remark": {"value": "回复任意内容查看"},
    }


@dataclass(slots=True)
class _Outcome:
    #: sent | retry | wait (quota: not an attempt) | released (not tried: not an attempt) | failed | held
    status: str
    error: str | None = None
    notify: bool = False
    result: dict[str, Any] | None = None  # WeChat's answer worth keeping (msgid, msg_id …)
    not_before: dt.datetime | None = None


@dataclass
class WorkerStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0
    #: waiting for WeChat's quota
    waited: int = 0
    #: claimed but not tried (the claim could not be renewed in time)
    released: int = 0
    #: rows of dead workers taken over
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
        self.acceptances = claims.Acceptances(
            session_factory, keep_trying=self.policy.lease, linger=self.policy.record_linger
        )
        self._semaphore = asyncio.Semaphore(self.policy.concurrency)
        self._dialect: str | None = None
        self._last_reclaim = float("-inf")
        #: WeChat API → (until, reason): its quota is used up, so its rows wait without a call
        self._quota_closed: dict[str, tuple[dt.datetime, str]] = {}
        #: the longest one call can take, and what must be left of a claim to start one
        self._call_timeout = float(api_client.timeout.total or 10.0)

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

        try:
            await asyncio.gather(*(lane() for _ in range(max(1, self.policy.lanes))))
        finally:
            await self.acceptances.close()
        log.info("outbox worker %s stopped: %s", self.worker_id, self.stats)

    async def run_once(self) -> int:
        """Take over dead workers' rows when due, then claim, send and mark one batch. Returns rows handled."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_reclaim >= self.policy.reclaim_every:
            self._last_reclaim = loop.time()
            await self.take_over_expired()
        claimed_at = loop.time()
        batch = await claims.claim(
            self.session_factory,
            dialect=await self._get_dialect(),
            worker_id=self.worker_id,
            batch_size=self.policy.batch_size,
            lease=self.policy.lease,
        )
        if not batch:
            return 0
        self.stats.batches += 1
        lease = Lease({r.id for r in batch}, claimed_at + self.policy.lease)
        keeper = asyncio.create_task(self._keep(lease), name=f"outbox-lease:{self.worker_id}")
        try:
            outcomes, windows = await self._send_batch(batch, lease)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await self._mark(batch, outcomes, windows)
        return len(batch)

    async def _keep(self, lease: Lease) -> None:
        """Renew the batch's claim on the rows it has not sent yet, every ``renew_every`` seconds."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.policy.renew_every)
            ids = set(lease.held)
            started = loop.time()
            try:
                ours = await claims.renew(
                    self.session_factory, worker_id=self.worker_id, ids=ids, lease=self.policy.lease
                )
            except Exception:
                log.warning(
                    "outbox: renewing %d claims failed; sending pauses if the claim runs low", len(ids), exc_info=True
                )
                continue
            lease.renewed(started + self.policy.lease, self.policy.clock_margin)
            gone = (ids & lease.held) - ours
            if gone:
                log.warning("outbox: %d claimed rows were taken over by another worker; not sending them", len(gone))
                lease.lost |= gone

    async def take_over_expired(self) -> int:
        """Put rows whose claim ran out (their worker died) back in the queue."""
        count = await claims.take_over(self.session_factory, self.policy)
        if count:
            log.warning("outbox: took over %d rows of a worker that stopped", count)
            self.stats.reclaimed += count
        return count

    # ------------------------------------------------------------ send a batch
    async def _send_batch(
        self, batch: Sequence[Claimed], lease: Lease
    ) -> tuple[dict[int, _Outcome], dict[str, dt.datetime | None]]:
        """Send the batch; rows WeChat accepted are recorded as they go. Returns the other rows'
        outcomes, and the villagers' 48-hour windows as seen before sending."""
        windows = await self._windows(batch)
        outcomes: dict[int, _Outcome] = {}
        recorded: list[asyncio.Future[None]] = []
        groups: dict[str, list[Claimed]] = {}
        for row in batch:
            if row.kind in CS_KINDS and row.openid in windows and not self._inside_window(windows[row.openid]):
                outcomes[row.id] = _Outcome("held", REASON_OUTSIDE_WINDOW, notify=True)
                continue
            groups.setdefault(row.openid or f"#{row.id}", []).append(row)

        async def send_group(rows: list[Claimed]) -> None:
            for row in rows:
                async with self._semaphore:
                    outcome = await self._attempt(row, lease)
                lease.held.discard(row.id)
                if outcome.status == "sent":  # record it now, before anything else can fail
                    recorded.append(self.acceptances.add(row.id, outcome.result, outcome.error))
                else:
                    outcomes[row.id] = outcome

        await asyncio.gather(*(send_group(rows) for rows in groups.values()))
        results = await asyncio.gather(*recorded, return_exceptions=True)
        self.stats.sent += sum(1 for r in results if r is None)
        return outcomes, windows

    async def _attempt(self, row: Claimed, lease: Lease) -> _Outcome:
        """Send one row if the claim allows it and its API has quota left."""
        loop = asyncio.get_running_loop()
        if row.id in lease.lost:
            return _Outcome("released")
        cut_off = lease.valid_until - self.policy.clock_margin
        if cut_off - loop.time() < self._call_timeout:  # the claim could not be renewed: stop sending
            return _Outcome("released")
        api = API_OF_KIND.get(row.kind, row.kind)
        closed = self._quota_closed.get(api)
        if closed is not None:
            if closed[0] > utcnow():
                return _Outcome("wait", closed[1], not_before=closed[0])
            del self._quota_closed[api]
        started_at = utcnow()
        try:
            async with asyncio.timeout_at(cut_off) as lease.calls[row.id]:
                result = await self._call(row)
        except PermanentError as exc:
            if exc.errcode in WAIT_FOR_VILLAGER_CODES and row.kind in CS_KINDS:
                return _Outcome("held", f"{REASON_OUTSIDE_WINDOW} [{exc.reason}]", notify=True)
            if exc.errcode == 45065 and row.kind in MASS_KINDS:  # this clientmsgid was already sent
                msg_id = exc.response.get("msg_id")
                note = f"已群发过，未重复发送 / already sent, not repeated (msg_id {msg_id})"
                return _Outcome("sent", note, result={"msg_id": msg_id} if msg_id else None)
            return _Outcome("failed", exc.reason)
        except WeChatError as exc:  # retryable, quota, token trouble, or an unknown errcode
            now = utcnow()
            until = self.policy.quota_wait(exc.errcode, now)
            if until is not None:
                reason = quota_reason(exc.reason, exc.errcode, until)
                if exc.errcode in API_WIDE_QUOTA_CODES:
                    self._quota_closed[api] = (until, reason)
                return _Outcome("wait", reason, not_before=until)
            return self._retry_or_fail(row, exc.reason, self._no_sooner(started_at) if exc.may_have_reached else None)
        except TimeoutError:  # cut off before the claim could run out: it may have reached WeChat
            return self._retry_or_fail(row, REASON_CUT_OFF, self._no_sooner(started_at))
        except (ValueError, KeyError, TypeError) as exc:
            return _Outcome("failed", f"消息内容不正确 / invalid payload: {exc}")
        except Exception as exc:
            log.exception("outbox: unexpected error sending %s", row.id)
            return self._retry_or_fail(row, f"内部错误 / internal error: {type(exc).__name__}: {exc}")
        finally:
            lease.calls.pop(row.id, None)
        return _Outcome("sent", result=result)

    def _no_sooner(self, started_at: dt.datetime) -> dt.datetime:
        """A call that may have reached WeChat: the next try waits until it could have completed."""
        return started_at + dt.timedelta(seconds=self._call_timeout + self.policy.timeout_margin)

    def _retry_or_fail(self, row: Claimed, reason: str, no_sooner: dt.datetime | None = None) -> _Outcome:
        now = utcnow()
        if self.policy.gives_up(attempts=row.attempts, source=row.source, created_at=row.created_at, now=now):
            return _Outcome("failed", f"重试{row.attempts}次仍失败 / gave up after {row.attempts} attempts: {reason}")
        next_at = now + dt.timedelta(seconds=self.policy.backoff(row.attempts))
        if no_sooner is not None and no_sooner > next_at:
            return _Outcome("retry", maybe_delivered_reason(reason, no_sooner), not_before=no_sooner)
        return _Outcome("retry", reason, not_before=next_at)

    async def _call(self, row: Claimed) -> dict[str, Any] | None:
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

    # ------------------------------------------------------------ the 48-hour window
    async def _windows(self, batch: Sequence[Claimed]) -> dict[str, dt.datetime | None]:
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

    # ------------------------------------------------------------ mark what was not sent
    async def _mark(
        self, batch: Sequence[Claimed], outcomes: dict[int, _Outcome], windows: Mapping[str, dt.datetime | None]
    ) -> None:
        """Record the outcomes of the rows not sent, in one transaction (retried on a database error:
        rows left in 'sending' are taken over when their claim runs out)."""
        if outcomes:
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
            if outcome.status == "retry":
                self.stats.retried += 1
            elif outcome.status == "failed":
                self.stats.failed += 1
            elif outcome.status == "wait":
                self.stats.waited += 1
            elif outcome.status == "released":
                self.stats.released += 1
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
        self, batch: Sequence[Claimed], outcomes: Mapping[int, _Outcome], windows: Mapping[str, dt.datetime | None]
    ) -> None:
        now = utcnow()
        by_id = {r.id: r for r in batch}
        mine = (OutboxMessage.claimed_by == self.worker_id, OutboxMessage.status == "sending")
        not_an_attempt = OutboxMessage.attempts - 1
        async with self.session_factory() as session, session.begin():
            held_openids = {by_id[i].openid or "" for i, o in outcomes.items() if o.status == "held"} - {""}
            wrote = await self._wrote_meanwhile(session, held_openids, windows) if held_openids else set()
            for row_id, outcome in sorted(outcomes.items()):
                row = by_id[row_id]
                values: dict[str, Any]
                if outcome.status == "retry":
                    values = {
                        "status": "pending",
                        "next_attempt_at": outcome.not_before or now,
                        "last_error": outcome.error,
                    }
                elif outcome.status == "wait":  # WeChat's quota: not a failed attempt
                    values = {
                        "status": "pending",
                        "next_attempt_at": outcome.not_before or now,
                        "attempts": not_an_attempt,
                        "last_error": outcome.error,
                    }
                elif outcome.status == "released":  # never tried
                    values = {"status": "pending", "next_attempt_at": now, "attempts": not_an_attempt}
                elif outcome.status == "held" and row.openid in wrote:
                    # the villager wrote while we were sending: send again now, not a failed attempt
                    values = {"status": "pending", "next_attempt_at": now, "attempts": not_an_attempt}
                elif outcome.status == "held":
                    # waiting for the villager is not a failed attempt
                    values = {"status": "held", "attempts": not_an_attempt, "last_error": outcome.error}
                    if outcome.notify and row.openid:
                        note = await self._notify_held(session, row.openid, windows.get(row.openid), row.id, now)
                        values["last_error"] = f"{outcome.error}; {note}"
                else:
                    values = {"status": "failed", "last_error": outcome.error}
                values["claimed_by"] = None
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row_id, *mine)
                    .values(values)
                    .execution_options(synchronize_session=False)
                )

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
