"""Who holds which outbox row, in the database: claims with a lease, their renewal, taking over
the rows of a worker that died, and recording each row WeChat accepted as soon as it did.

A claim sets ``status='sending'``, ``claimed_by``/``claimed_at``, counts the attempt and puts
the end of the lease in ``next_attempt_at`` (for a ``sending`` row that column says when its
claim runs out; for a ``pending`` one, when to try). Claiming is one ``UPDATE … WHERE id IN
(SELECT … FOR UPDATE SKIP LOCKED)`` on PostgreSQL; on SQLite the same ``UPDATE`` (``BEGIN
IMMEDIATE`` serialises writers). While its batch is in flight the worker renews the lease of the
rows it has not sent yet; a row whose lease ran out is put back to ``pending`` by any worker.

:class:`Acceptances` marks a row ``sent`` right after WeChat accepted it — before anything else
in its batch can fail — committing the rows accepted meanwhile together (one transaction when the
worker is idle, a few dozen rows per transaction under load). A takeover only ever touches
``sending`` rows, so an accepted row is never sent again unless its worker died in the few
milliseconds between WeChat's answer and that commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Text, and_, any_, bindparam, case, func, not_, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from bot.services.outbox.policy import OutboxPolicy
from bot.storage.db import SessionFactory
from bot.storage.models import OutboxMessage, utcnow

log = logging.getLogger(__name__)

REASON_TAKEN_OVER = (
    "发送中断（处理进程停止），已由其他进程接手 / the worker stopped while sending; taken over by another worker"
)


@dataclass(slots=True)
class Claimed:
    id: int
    kind: str
    openid: str | None
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    source: str | None
    created_at: dt.datetime


@dataclass
class Lease:
    """A batch's claim as its worker sees it: the rows not yet sent, and (loop time) until when
    the claim surely holds. ``lost``: rows a renewal no longer found ours (never sent by us).
    ``calls``: the cut-offs of the calls in flight, moved on at each renewal."""

    held: set[int]
    valid_until: float
    lost: set[int] = field(default_factory=set)
    calls: dict[int, asyncio.Timeout] = field(default_factory=dict)

    def renewed(self, valid_until: float, margin: float) -> None:
        self.valid_until = valid_until
        for cut_off in self.calls.values():
            if not cut_off.expired():  # one that fired is on its way out
                cut_off.reschedule(valid_until - margin)


async def claim(
    session_factory: SessionFactory, *, dialect: str, worker_id: str, batch_size: int, lease: float
) -> list[Claimed]:
    now = utcnow()
    ids = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(batch_size)
    )
    if dialect == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids.scalar_subquery()))
        .values(
            status="sending",
            claimed_by=worker_id,
            claimed_at=now,
            next_attempt_at=now + dt.timedelta(seconds=lease),
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(
            OutboxMessage.id,
            OutboxMessage.kind,
            OutboxMessage.openid,
            OutboxMessage.payload,
            OutboxMessage.idempotency_key,
            OutboxMessage.attempts,
            OutboxMessage.source,
            OutboxMessage.created_at,
        )
        .execution_options(synchronize_session=False)
    )
    async with session_factory() as session, session.begin():
        rows = (await session.execute(stmt)).all()
    claimed = [Claimed(r[0], r[1], r[2], dict(r[3] or {}), r[4], r[5], r[6], r[7]) for r in rows]
    claimed.sort(key=lambda c: c.id)
    return claimed


async def renew(session_factory: SessionFactory, *, worker_id: str, ids: set[int], lease: float) -> set[int]:
    """Extend our claim on ``ids``; returns those still ours (a row another worker took over is not)."""
    if not ids:
        return set()
    stmt = (
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(sorted(ids)),
            OutboxMessage.claimed_by == worker_id,
            OutboxMessage.status == "sending",
        )
        .values(next_attempt_at=utcnow() + dt.timedelta(seconds=lease))
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    async with session_factory() as session, session.begin():
        return set((await session.execute(stmt)).scalars())


async def take_over(session_factory: SessionFactory, policy: OutboxPolicy) -> int:
    """Put rows whose claim ran out (their worker died) back in the queue, due now.

    A row that used up its attempts (and, for a patient row, its time) is marked failed instead:
    a message that kills every worker that sends it must not do so for ever."""
    now = utcnow()
    exhausted: Any = OutboxMessage.attempts >= policy.max_attempts
    if policy.patient_sources:
        patient = or_(*(OutboxMessage.source.startswith(prefix) for prefix in policy.patient_sources))
        impatient = or_(
            OutboxMessage.source.is_(None), not_(patient), OutboxMessage.created_at <= now - policy.patient_for
        )
        exhausted = and_(exhausted, impatient)
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.status == "sending", OutboxMessage.next_attempt_at < now)
        .values(
            status=case((exhausted, "failed"), else_="pending"),
            claimed_by=None,
            claimed_at=None,
            next_attempt_at=now,
            last_error=REASON_TAKEN_OVER,
        )
        .execution_options(synchronize_session=False)
    )
    async with session_factory() as session, session.begin():
        return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


@dataclass(slots=True)
class _Accepted:
    row_id: int
    result: Mapping[str, Any] | None
    note: str | None
    done: asyncio.Future[None]


class Acceptances:
    """Marks rows ``sent`` right after WeChat accepted them (group commit, see the module docstring).

    A writer takes every row accepted so far and commits them; rows accepted meanwhile go to the
    next writer, which starts at once (up to ``writers`` transactions at a time), so a row waits
    for about one commit, not for the one in progress and then its own.

    ``add`` returns a future that is done once the row's ``sent`` is committed. A database error is
    retried for ``keep_trying`` seconds (about a lease: after that the row may be taken over and
    sent again anyway); then the future carries the error."""

    def __init__(
        self, session_factory: SessionFactory, *, keep_trying: float, writers: int = 4, linger: float = 0.0
    ) -> None:
        self.session_factory = session_factory
        self.keep_trying = keep_trying
        self.max_writers = writers
        self.linger = linger
        self._pending: list[_Accepted] = []
        self._writers: set[asyncio.Task[None]] = set()
        #: a writer was started and has not taken its rows yet
        self._starting = False

    def add(
        self, row_id: int, result: Mapping[str, Any] | None = None, note: str | None = None
    ) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        item = _Accepted(row_id, result, note, loop.create_future())
        self._pending.append(item)
        self._start_writer()
        return item.done

    def _start_writer(self) -> None:
        if self._starting or len(self._writers) >= self.max_writers:
            return  # the starting writer takes these rows too, or a busy one takes them when done
        self._starting = True
        self._writers.add(asyncio.get_running_loop().create_task(self._write(), name="outbox-acceptances"))

    async def close(self) -> None:
        """Wait for what is being recorded (a worker that stops records what WeChat accepted)."""
        while self._writers:
            with contextlib.suppress(Exception):
                await asyncio.shield(next(iter(self._writers)))

    async def _write(self) -> None:
        if self.linger:
            await asyncio.sleep(self.linger)
        self._starting = False
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._write_batch(batch)
                if self._starting:  # rows accepted meanwhile have their own writer
                    return
        finally:
            self._writers.discard(asyncio.current_task())
            if self._pending:  # accepted while every writer was busy
                self._start_writer()

    async def _write_batch(self, batch: list[_Accepted]) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.keep_trying
        delay = 0.1
        while True:
            try:
                await self._store(batch)
            except Exception as exc:
                if loop.time() + delay > give_up_at:
                    log.error(
                        "outbox: could not record %d messages WeChat accepted (ids %s); they may be sent again",
                        len(batch),
                        [a.row_id for a in batch][:20],
                        exc_info=True,
                    )
                    for item in batch:
                        if not item.done.done():
                            item.done.set_exception(exc)
                    return
                log.warning("outbox: recording accepted messages failed; retrying in %.1fs", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
                continue
            for item in batch:
                if not item.done.done():
                    item.done.set_result(None)
            return

    async def _store(self, batch: list[_Accepted]) -> None:
        plain = sorted(a.row_id for a in batch if a.note is None and not a.result)
        individual = [
            {"row_id": a.row_id, "note": a.note, "result": dict(a.result) if a.result else None}
            for a in sorted(batch, key=lambda a: a.row_id)
            if a.note is not None or a.result
        ]
        async with self.session_factory() as session:
            await session.run_sync(_mark_sent, plain, individual, utcnow())


#: built once, run on the session's connection (no ORM bookkeeping, one greenlet switch per commit):
#: this runs for every message sent
MARK_SENT = (
    update(OutboxMessage)
    .where(OutboxMessage.id.in_(bindparam("ids", expanding=True)))
    .values(status="sent", sent_at=bindparam("now"), claimed_by=None)
)
#: the same on PostgreSQL with one array parameter: one statement text whatever the number of rows
#: (an IN list of each length would be another prepared statement in every connection's cache)
MARK_SENT_PG = (
    update(OutboxMessage)
    .where(OutboxMessage.id == any_(bindparam("ids", type_=postgresql.ARRAY(BigInteger()))))
    .values(status="sent", sent_at=bindparam("now"), claimed_by=None)
)
MARK_SENT_WITH_ANSWER = (
    update(OutboxMessage)
    .where(OutboxMessage.id == bindparam("row_id"))
    .values(
        status="sent",
        sent_at=bindparam("now"),
        claimed_by=None,
        last_error=func.coalesce(bindparam("note", type_=Text()), OutboxMessage.last_error),
        result=func.coalesce(bindparam("result", type_=OutboxMessage.__table__.c.result.type), OutboxMessage.result),
    )
)


def _mark_sent(session: Session, plain: list[int], individual: list[dict[str, Any]], now: dt.datetime) -> None:
    conn = session.connection()
    if plain:
        conn.execute(MARK_SENT_PG if conn.dialect.name == "postgresql" else MARK_SENT, {"ids": plain, "now": now})
    if individual:
        conn.execute(MARK_SENT_WITH_ANSWER, [{**params, "now": now} for params in individual])
    session.commit()
