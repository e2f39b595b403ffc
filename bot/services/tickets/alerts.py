"""Urgent alerts: a villager in danger reaches a person at once.

An urgent message (knowledge/urgent.yaml) makes its ticket urgent: first response due within
``LAWBOT_URGENT_RESPONSE_MINUTES`` (clock time, day and night), the township duty person (值班, see
bot.services.staff.duty) responsible beside the village mediator, and an *alert* raised (``alert_at``):

* WeChat notices through the outbox to the mediator and the duty person (nobody on duty → every active
  admin) who bound their WeChat (:func:`bot.services.tickets.notices.notify_staff`);
* a red banner and an alarm sound on every open back-office page of staff who can see the ticket
  (:func:`pending_alerts`, polled by bot/admin/alert_views.py);
* until a staff member with access opens the ticket (:func:`mark_opened` records ``first_opened_at`` and
  ends the alert); nobody within the deadline → :func:`escalate_unseen` notifies every township admin.

三长联动 escalations (:func:`escalate_to`) alert the same way, without the sound: the accounts holding the
target's position (乡矛调中心组长, 派出所负责人, 司法所所长, 人民法庭) get a WeChat notice and a banner until one of
them opens the ticket.

:class:`AlertOutcome` says whether anyone can be reached right now (a notice to a WeChat that can receive it,
or a back-office page open), so the bot tells the villager "已通知工作人员" only when it is true.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services import staff as staff_svc
from bot.services.tickets.access import visible_to
from bot.services.tickets.escalation import (
    ESCALATION_TARGETS,
    POSITION_TARGETS,
    TARGET_POSITIONS,
    escalate,
    mark_urgent,
)
from bot.services.tickets.notices import notify_staff
from bot.services.tickets.thread import add_event, audit_row
from bot.storage.staff import StaffUser, staff_villages
from bot.storage.tickets import OPEN_STATUSES, PRIORITY_HIGH, Ticket

if TYPE_CHECKING:
    from bot.knowledge import KnowledgeBase
    from bot.settings import Settings

DEFAULT_URGENT_MINUTES = 30
#: how staff pages name an urgent ticket's kind (urgent.yaml categories)
URGENT_KIND_NAMES: dict[str, str] = {
    "suicide": "自杀风险（心理危机）",
    "threat_to_life": "生命威胁",
    "violence_now": "正在发生的暴力",
    "minors": "未成年人受侵害",
}
URGENT_REASON = "紧急情况：村民消息涉及人身安全"


def urgent_minutes(settings: Settings) -> int:
    return settings.urgent_response_minutes if settings.urgent_response_minutes > 0 else DEFAULT_URGENT_MINUTES


def urgent_due(settings: Settings, now: dt.datetime) -> dt.datetime:
    """An urgent ticket's first response is due this soon, whatever the day or hour."""
    return now + dt.timedelta(minutes=urgent_minutes(settings))


def kind_name(kind: str | None) -> str:
    return URGENT_KIND_NAMES.get(kind or "", "涉及人身安全")


@dataclass(frozen=True)
class AlertOutcome:
    """Who an urgent alert can reach now: WeChat notices that can be delivered, staff with a page open."""

    ticket: Ticket
    wechat: int
    present: int

    @property
    def reached(self) -> bool:
        return self.wechat > 0 or self.present > 0


async def viewer_ids(session: AsyncSession, ticket: Ticket) -> set[int]:
    """Active staff who can see the ticket (and so get its banner): admins, the village's mediators, the
    assignee, the duty person."""
    conditions = [StaffUser.role == "admin"]
    people = [i for i in (ticket.assignee_id, ticket.duty_staff_id) if i is not None]
    if people:
        conditions.append(StaffUser.id.in_(people))
    if ticket.village_id is not None:
        conditions.append(
            (StaffUser.role == "mediator")
            & StaffUser.id.in_(
                select(staff_villages.c.staff_id).where(staff_villages.c.village_id == ticket.village_id)
            )
        )
    rows = await session.execute(select(StaffUser.id).where(StaffUser.active.is_(True), or_(*conditions)))
    return {int(i) for i in rows.scalars()}


async def raise_alert(session: AsyncSession, ticket: Ticket, settings: Settings, now: dt.datetime) -> AlertOutcome:
    """Raise (or keep) the ticket's urgent alert and tell the mediator and the duty person at once."""
    if not ticket.alert_pending:
        ticket.alert_at = now
        ticket.alert_seen_at = ticket.alert_seen_by = ticket.alert_escalated_at = None
    duty, people = await staff_svc.duty_or_admins(session, now)
    if duty is not None and ticket.duty_staff_id is None:
        ticket.duty_staff_id = duty.staff.id
        add_event(session, ticket, "duty", f"值班：{duty.staff.label}（{duty.reason}）", now, to=duty.staff.id)
    recipients = [i for i in (ticket.assignee_id, ticket.duty_staff_id) if i is not None]
    recipients += [p.id for p in people]
    recipients = list(dict.fromkeys(recipients))
    wechat = await notify_staff(
        session,
        ticket,
        recipients,
        "urgent",
        settings.base_url,
        now,
        template_id=settings.wechat_staff_template_id,
    )
    present = await staff_svc.present(session, await viewer_ids(session, ticket), now)
    names = {
        s.id: s.label for s in (await session.execute(select(StaffUser).where(StaffUser.id.in_(recipients)))).scalars()
    }
    who = "、".join(names[i] for i in recipients if i in names) or "（没有可通知的人）"
    body = f"紧急提醒已发出：通知 {who}" + ("" if duty is not None else "（今天没有安排值班，通知全部乡管理员）")
    if wechat == 0:
        body += "；没有人能马上收到微信通知（没绑定微信，或48小时内没给公众号发过消息）"
    if present:
        body += f"；{len(present)} 人正开着后台页面"
    add_event(session, ticket, "alert", body, now, wechat=wechat, present=len(present))
    return AlertOutcome(ticket, wechat, len(present))


async def make_urgent(
    session: AsyncSession, ticket: Ticket, settings: Settings, now: dt.datetime, kind: str | None
) -> AlertOutcome:
    """An urgent message joined an existing ticket: urgent now, its deadline tightened, the alert raised."""
    mark_urgent(session, ticket, now, URGENT_REASON)
    ticket.urgent_kind = ticket.urgent_kind or kind
    ticket.priority = PRIORITY_HIGH
    if ticket.first_response_at is None:
        ticket.first_response_due_at = min(ticket.first_response_due_at, urgent_due(settings, now))
    return await raise_alert(session, ticket, settings, now)


def pending_filter(
    role: str, staff_id: int, village_ids: Sequence[int], *, position: str = ""
) -> ColumnElement[bool]:
    """Tickets whose banner this staff member gets: urgent ones they can see that nobody opened since the alert,
    and those escalated to their 三长联动 position that none of its holders opened yet."""
    urgent = and_(
        visible_to(role, staff_id, village_ids, position=position),
        Ticket.alert_at.is_not(None),
        Ticket.alert_seen_at.is_(None),
    )
    if position not in POSITION_TARGETS:
        return and_(urgent, Ticket.status.in_(OPEN_STATUSES))
    escalated = and_(Ticket.escalated_to == POSITION_TARGETS[position], Ticket.escalation_seen_at.is_(None))
    return and_(or_(urgent, escalated), Ticket.status.in_(OPEN_STATUSES))


async def pending_alerts(
    session: AsyncSession, role: str, staff_id: int, village_ids: Sequence[int], *, position: str = "", limit: int = 10
) -> list[Ticket]:
    """The tickets of :func:`pending_filter`, urgent ones first, oldest first."""
    stmt = (
        select(Ticket)
        .where(pending_filter(role, staff_id, village_ids, position=position))
        .order_by(Ticket.alert_at.is_(None), Ticket.alert_at, Ticket.escalated_at)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


def escalation_pending_for(ticket: Ticket, position: str) -> bool:
    """Escalated to this position's target and none of its holders has opened it since."""
    return (
        position in POSITION_TARGETS
        and ticket.escalated_to == POSITION_TARGETS[position]
        and ticket.escalation_seen_at is None
        and ticket.is_open
    )


def mark_opened(
    session: AsyncSession, ticket: Ticket, staff_id: int, label: str, now: dt.datetime, *, position: str = ""
) -> bool:
    """A staff member with access opened the ticket: the first opening is recorded, a pending urgent alert
    ends, and so does a 三长联动 escalation when they hold its position. Returns True when an alert ended."""
    if ticket.first_opened_at is None:
        ticket.first_opened_at, ticket.first_opened_by = now, staff_id
    ended = False
    if escalation_pending_for(ticket, position):
        ticket.escalation_seen_at = now
        target = ESCALATION_TARGETS.get(ticket.escalated_to or "", "")
        add_event(session, ticket, "escalation_seen", f"{label}打开了升级到{target}的工单", now)
        ended = True
    if not ticket.alert_pending:
        return ended
    ticket.alert_seen_at, ticket.alert_seen_by = now, staff_id
    assert ticket.alert_at is not None
    minutes = max(0, int((now - ticket.alert_at).total_seconds() // 60))
    add_event(session, ticket, "alert_seen", f"{label}打开了紧急工单（提醒发出后 {minutes} 分钟），提醒已解除", now)
    return True


async def escalate_unseen(session: AsyncSession, settings: Settings, now: dt.datetime) -> list[int]:
    """Urgent alerts nobody opened within the deadline: once each, every active township admin is told."""
    minutes = urgent_minutes(settings)
    ids = list(
        (
            await session.execute(
                update(Ticket)
                .where(
                    Ticket.alert_at <= now - dt.timedelta(minutes=minutes),
                    Ticket.alert_seen_at.is_(None),
                    Ticket.alert_escalated_at.is_(None),
                    Ticket.status.in_(OPEN_STATUSES),
                )
                .values(alert_escalated_at=now, updated_at=now)
                .returning(Ticket.id)
                .execution_options(synchronize_session=False)
            )
        ).scalars()
    )
    if not ids:
        return []
    admins = [a.id for a in await staff_svc.active_admins(session)]
    for ticket in (await session.execute(select(Ticket).where(Ticket.id.in_(ids)))).scalars():
        ticket.escalated_at = ticket.escalated_at or now
        ticket.escalated_to = ticket.escalated_to or "township"
        wechat = await notify_staff(
            session,
            ticket,
            admins,
            "urgent_unseen",
            settings.base_url,
            now,
            template_id=settings.wechat_staff_template_id,
            minutes=minutes,
        )
        add_event(
            session,
            ticket,
            "alert_escalated",
            f"紧急提醒 {minutes} 分钟内没有人打开，已通知全部乡管理员（微信通知 {wechat} 人）",
            now,
            wechat=wechat,
        )
        session.add(audit_row("ticket.urgent_unseen_escalate", now, object_type="ticket", object_id=ticket.id))
    return ids


@dataclass(frozen=True)
class EscalationOutcome:
    """Who a 三长联动 escalation reached: the accounts holding the target's position, their WeChat notices."""

    holders: list[StaffUser]
    wechat: int


async def position_holders(session: AsyncSession, target: str) -> list[StaffUser]:
    """The active accounts holding the position that answers for ``target`` (none for "township")."""
    position = TARGET_POSITIONS.get(target)
    if position is None:
        return []
    rows = await session.execute(
        select(StaffUser).where(StaffUser.position == position, StaffUser.active.is_(True)).order_by(StaffUser.id)
    )
    return list(rows.scalars())


async def escalate_to(
    session: AsyncSession,
    ticket: Ticket,
    settings: Settings,
    now: dt.datetime,
    *,
    target: str,
    reason: str = "",
    staff: StaffUser | None = None,
) -> EscalationOutcome:
    """三长联动 from the back-office: escalate, then tell whoever answers for the target — the holders of its
    position (乡矛调中心组长 …; the ticket is in their queue, a banner shows until one of them opens it), or for
    "township" the other admins — by WeChat notice where they bound a WeChat."""
    escalate(session, ticket, now, target=target, reason=reason, staff=staff)
    holders = await position_holders(session, target)
    me = staff.id if staff is not None else None
    if target in TARGET_POSITIONS:
        told = [h.id for h in holders if h.id != me]
    else:
        told = [a.id for a in await staff_svc.active_admins(session) if a.id != me]
    wechat = await notify_staff(
        session,
        ticket,
        told,
        "escalated",
        settings.base_url,
        now,
        target=target,
        template_id=settings.wechat_staff_template_id,
    )
    if target in TARGET_POSITIONS:
        name = ESCALATION_TARGETS[target]
        who = "、".join(h.label for h in holders) or f"（还没有账号担任{name}的负责人）"
        add_event(session, ticket, "escalation_notice", f"已通知{name}：{who}（微信通知 {wechat} 人）", now)
    return EscalationOutcome(holders, wechat)


def category_name(kb: KnowledgeBase, ticket: Ticket) -> str:
    """What a ticket is about, for staff: words about ending one's life are a crisis, not an FAQ topic."""
    if ticket.urgent_kind == "suicide":
        return kind_name("suicide")
    if ticket.topic:
        return kb.topic_name(ticket.topic)
    return kind_name(ticket.urgent_kind) if ticket.urgent else "未判断"
