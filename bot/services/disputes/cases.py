"""Dispute cases: numbers, registering a case (by hand, from a ledger row, from a ticket), its parties,
status and risk, the 三长联动 queue, the agreement, 司法确认 and the 回访.

Every function works inside the caller's transaction and never commits. Each change is written to
the timeline (``timeline.add``); who did it is ``staff`` (None: the system, an import, the CLI).

* **Numbers** — ``(2026)观调字第12号``: one counter row per case word and year (the year of the day
  the dispute was found), incremented with ``UPDATE … RETURNING`` (row-locked on PostgreSQL).
* **三长联动 queue** — a case whose risk is 高 or whose status is 稳控中 enters the queue (the 三长
  are told in WeChat) and stays there, whatever else changes, until it is 已化解.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.disputes import notices, timeline
from bot.services.disputes.deadlines import chinese_date, confirmation_deadline, start_of_day, today, visit_due
from bot.services.tickets import LEADER_TARGETS
from bot.services.tickets import add_event as ticket_event
from bot.services.tickets import escalate as escalate_ticket
from bot.storage.disputes import (
    CONFIRM_APPLIED,
    CONFIRM_DECLINED,
    CONTAINED,
    ORAL,
    RESOLVED,
    RISKS,
    SCREENING,
    SIDES,
    SOURCES,
    STATUSES,
    TYPES,
    VISIT_RESULTS,
    WRITTEN,
    DisputeCase,
    DisputeCounter,
    DisputeParty,
)
from bot.storage.models import Village
from bot.storage.staff import StaffUser
from bot.storage.tickets import ANSWERED, ASSIGNED, IN_PROGRESS, MEDIATING, NEW, Ticket

#: knowledge topic (prefix) → the 人民调解 category a ticket most likely belongs to
TOPIC_TYPES: tuple[tuple[str, str], ...] = (
    ("marriage.", "婚姻家庭纠纷"),
    ("family.", "婚姻家庭纠纷"),
    ("land.homestead", "房屋宅基地纠纷"),
    ("land.expropriation", "征地拆迁纠纷"),
    ("land.", "山林土地纠纷"),
    ("neighbor.", "邻里纠纷"),
    ("labor.", "劳动争议纠纷"),
    ("debt.", "合同纠纷"),
    ("consumer.", "合同纠纷"),
    ("tort.traffic_accident", "道路交通事故纠纷"),
    ("tort.", "损害赔偿纠纷"),
    ("village.", "村务管理纠纷"),
)
QUEUE_NOTICE = (
    "【乡法通·三长联动】纠纷 {case_no}（{village}，{risk}风险，{type}，{status}）进入三长联动队列，请跟进：{url}"
)


class DisputeError(ValueError):
    """A change staff asked for is not allowed (shown to them as is)."""


@dataclass
class PartyIn:
    side: str
    name: str
    gender: str = ""
    ethnicity: str = ""
    age: int | None = None
    address: str = ""
    phone: str | None = None
    phone_consent: bool = False
    openid: str | None = None


def case_word(site: Mapping[str, Any]) -> str:
    """The township's word in case numbers: site.yaml ``dispute_case_word``, else e.g. 观 + 调字."""
    word = str(site.get("dispute_case_word") or "").strip()
    if word:
        return word
    township = str(site.get("township") or "乡").strip()
    return f"{township[:1]}调字"


def committee_for(site: Mapping[str, Any], village: Village) -> str:
    """The village's 人民调解委员会 (人民调解法第八条: set up by the 村民委员会)."""
    return f"{site.get('township') or ''}{village.name}人民调解委员会"


def type_for_topic(topic: str | None) -> str:
    for prefix, kind in TOPIC_TYPES:
        if topic and topic.startswith(prefix):
            return kind
    return "其他纠纷"


async def next_case_no(session: AsyncSession, word: str, year: int) -> str:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.execute(
        insert(DisputeCounter)
        .values(word=word, year=year, last=0)
        .on_conflict_do_nothing(index_elements=["word", "year"])
    )
    number = (
        await session.execute(
            update(DisputeCounter)
            .where(DisputeCounter.word == word, DisputeCounter.year == year)
            .values(last=DisputeCounter.last + 1)
            .returning(DisputeCounter.last)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one()
    return f"({year}){word}第{number}号"


def check_values(*, type: str, risk: str, status: str, source: str) -> None:
    if type not in TYPES:
        raise DisputeError(f"纠纷类型只能是：{'、'.join(TYPES)}")
    if risk not in RISKS:
        raise DisputeError("风险等级只能是 低、中、高")
    if status not in STATUSES:
        raise DisputeError(f"状态只能是：{'、'.join(STATUSES)}")
    if source not in SOURCES:
        raise DisputeError(f"来源只能是：{'、'.join(SOURCES)}")


def _party(case: DisputeCase, p: PartyIn, now: dt.datetime) -> DisputeParty:
    if p.side not in SIDES:
        raise DisputeError("当事人一方只能是 当事人 或 对方当事人")
    name = p.name.strip()[:64]
    if not name:
        raise DisputeError("当事人姓名不能为空")
    phone = (p.phone or "").strip()[:32] or None
    if phone and not p.phone_consent:
        raise DisputeError("留电话号码要当事人同意：请勾选“当事人同意留电话”。")
    return DisputeParty(
        case_id=case.id,
        side=p.side,
        name=name,
        gender=p.gender.strip()[:2],
        ethnicity=p.ethnicity.strip()[:16],
        age=p.age,
        address=p.address.strip()[:128],
        phone=phone,
        phone_consent_at=now if phone else None,
        openid=p.openid,
    )


async def create_case(
    session: AsyncSession,
    *,
    site: Mapping[str, Any],
    village_id: int,
    found_on: dt.date,
    source: str,
    type: str,
    risk: str,
    summary: str,
    parties: Sequence[PartyIn],
    now: dt.datetime,
    status: str = SCREENING,
    points: str = "",
    notes: str = "",
    mediator_id: int | None = None,
    mediator_name: str = "",
    recorded_by: StaffUser | None = None,
    ticket_id: int | None = None,
    import_key: str | None = None,
    base_url: str = "",
    history: bool = False,
    resolved_on: dt.date | None = None,
) -> DisputeCase:
    """Register a case. ``history``: a ledger row — its status and dates as the ledger has them."""
    check_values(type=type, risk=risk, status=status, source=source)
    village = await session.get(Village, village_id)
    if village is None:
        raise DisputeError("没有这个村")
    if found_on > today(now):
        raise DisputeError("发现日期不能在今天之后")
    if not any(p.side == SIDES[0] for p in parties):
        raise DisputeError("至少要有一位当事人")
    case = DisputeCase(
        case_no=await next_case_no(session, case_word(site), found_on.year),
        village_id=village_id,
        found_on=found_on,
        source=source,
        type=type,
        risk=risk,
        status=status if history else SCREENING,
        summary=summary.strip(),
        points=points.strip(),
        notes=notes.strip(),
        committee=committee_for(site, village),
        mediator_id=mediator_id,
        mediator_name=mediator_name.strip()[:64],
        recorded_by_id=recorded_by.id if recorded_by is not None else None,
        ticket_id=ticket_id,
        import_key=import_key,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    await session.flush()
    for p in parties:
        session.add(_party(case, p, now))
    by = recorded_by.label if recorded_by is not None else "系统"
    initial = SCREENING if history and status == RESOLVED else case.status
    timeline.add(
        session,
        case,
        "created",
        f"{by}登记：{village.name}，{type}，{risk}风险，来源{source}",
        now,
        staff=recorded_by,
        effective_on=found_on,
        status=initial,
        risk=risk,
    )
    if not history:
        if status != SCREENING:
            await set_status(session, case, status, now, staff=recorded_by, base_url=base_url)
        else:
            await sync_queue(session, case, now, staff=recorded_by, base_url=base_url)
        return case
    # a ledger row: its state as of its own dates, and no WeChat notices for old cases
    if risk == "高" or status == CONTAINED:
        case.queue_entered_at = start_of_day(found_on)
        timeline.add(session, case, "queue", "导入时已在三长联动队列", now, effective_on=found_on, queue=True)
    if status == RESOLVED:
        if resolved_on is None or resolved_on < found_on or resolved_on > today(now):
            raise DisputeError("已化解的案件要有化解日期（在发现日期和今天之间）")
        case.resolved_on, case.visit_due_on = resolved_on, visit_due(resolved_on)
        timeline.add(
            session, case, "status", f"{SCREENING} → {RESOLVED}（台账）", now, effective_on=resolved_on, status=RESOLVED
        )
        if case.queue_entered_at is not None:
            case.queue_left_at = start_of_day(resolved_on)
            timeline.add(session, case, "queue", "已化解，离开三长联动队列", now, effective_on=resolved_on, queue=False)
    return case


async def set_status(
    session: AsyncSession,
    case: DisputeCase,
    status: str,
    now: dt.datetime,
    *,
    staff: StaffUser | None = None,
    resolved_on: dt.date | None = None,
    reason: str = "",
    base_url: str = "",
) -> None:
    if status not in STATUSES:
        raise DisputeError(f"状态只能是：{'、'.join(STATUSES)}")
    if status == case.status:
        return
    effective = today(now)
    if status == RESOLVED:
        effective = resolved_on or effective
        if effective > today(now) or effective < case.found_on:
            raise DisputeError("化解日期应在发现日期和今天之间")
        case.resolved_on = effective
        case.visit_due_on = visit_due(effective)
        case.visit_reminded_at = None
    elif case.status == RESOLVED:
        case.resolved_on = None
        if case.visited_on is None:
            case.visit_due_on = None
    before = case.status
    case.status = status
    body = f"{before} → {status}" + (f"（化解日期 {chinese_date(effective)}）" if status == RESOLVED else "")
    timeline.add(
        session,
        case,
        "status",
        body + (f"：{reason}" if reason else ""),
        now,
        staff=staff,
        effective_on=effective,
        status=status,
    )
    await sync_queue(session, case, now, staff=staff, base_url=base_url, effective_on=effective)


async def set_risk(
    session: AsyncSession,
    case: DisputeCase,
    risk: str,
    now: dt.datetime,
    *,
    staff: StaffUser | None = None,
    reason: str = "",
    base_url: str = "",
) -> None:
    if risk not in RISKS:
        raise DisputeError("风险等级只能是 低、中、高")
    if risk == case.risk:
        return
    before, case.risk = case.risk, risk
    timeline.add(
        session,
        case,
        "risk",
        f"风险 {before} → {risk}" + (f"：{reason}" if reason else ""),
        now,
        staff=staff,
        risk=risk,
    )
    await sync_queue(session, case, now, staff=staff, base_url=base_url)


async def sync_queue(
    session: AsyncSession,
    case: DisputeCase,
    now: dt.datetime,
    *,
    staff: StaffUser | None = None,
    base_url: str = "",
    effective_on: dt.date | None = None,
) -> str | None:
    """Enter the 三长联动 queue (高 risk or 稳控中) or leave it (已化解). Returns "entered", "left" or None."""
    wants = (case.risk == "高" or case.status == CONTAINED) and case.status != RESOLVED
    if wants and not case.in_queue:
        day = effective_on or today(now)
        case.queue_entered_at, case.queue_left_at = now, None
        why = "高风险" if case.risk == "高" else "稳控中"
        timeline.add(session, case, "queue", f"{why}，进入三长联动队列", now, staff=staff, effective_on=day, queue=True)
        await _tell_leaders(session, case, now, base_url)
        return "entered"
    if case.status == RESOLVED and case.in_queue:
        case.queue_left_at = now
        timeline.add(
            session,
            case,
            "queue",
            "已化解，离开三长联动队列",
            now,
            staff=staff,
            effective_on=case.resolved_on or today(now),
            queue=False,
        )
        return "left"
    return None


async def _tell_leaders(session: AsyncSession, case: DisputeCase, now: dt.datetime, base_url: str) -> None:
    village = await session.get(Village, case.village_id)
    if case.ticket_id is not None:
        ticket = await session.get(Ticket, case.ticket_id)
        if ticket is not None and ticket.is_open and ticket.escalated_to not in LEADER_TARGETS:
            escalate_ticket(session, ticket, now, target="mediation_center", reason=f"纠纷 {case.case_no} 进入三长联动")
    content = QUEUE_NOTICE.format(
        case_no=case.case_no,
        village=village.name if village else "",
        risk=case.risk,
        type=case.type,
        status=case.status,
        url=notices.case_url(base_url, case),
    )
    key = f"dispute-queue:{case.id}:{int(now.timestamp())}"
    await notices.send(session, await notices.leaders(session), content, key, f"dispute:{case.id}")


def add_note(session: AsyncSession, case: DisputeCase, body: str, now: dt.datetime, staff: StaffUser) -> None:
    text = body.strip()
    if not text:
        raise DisputeError("记录内容不能为空")
    timeline.add(session, case, "note", text[:4000], now, staff=staff)


EDITABLE = ("type", "summary", "points", "responsibility", "notes", "committee", "source", "found_on")


def edit(
    session: AsyncSession, case: DisputeCase, changes: Mapping[str, Any], now: dt.datetime, staff: StaffUser
) -> list[str]:
    """Change the case's facts; returns the names of what changed (written to the timeline)."""
    if "type" in changes and changes["type"] not in TYPES:
        raise DisputeError(f"纠纷类型只能是：{'、'.join(TYPES)}")
    if "source" in changes and changes["source"] not in SOURCES:
        raise DisputeError(f"来源只能是：{'、'.join(SOURCES)}")
    found_on = changes.get("found_on")
    if isinstance(found_on, dt.date) and (found_on > today(now) or (case.resolved_on and found_on > case.resolved_on)):
        raise DisputeError("发现日期不能在今天或化解日期之后")
    names = {
        "type": "纠纷类型",
        "summary": "主要事实",
        "points": "争议事项",
        "responsibility": "各方责任",
        "notes": "备注",
        "committee": "调解委员会",
        "source": "来源",
        "found_on": "发现日期",
    }
    changed = []
    for key in EDITABLE:
        if key in changes and changes[key] != getattr(case, key):
            setattr(case, key, changes[key])
            changed.append(names[key])
    if changed:
        timeline.add(session, case, "edit", "修改了" + "、".join(changed), now, staff=staff)
    return changed


async def add_party(
    session: AsyncSession, case: DisputeCase, party: PartyIn, now: dt.datetime, staff: StaffUser
) -> None:
    session.add(_party(case, party, now))
    timeline.add(session, case, "edit", f"添加{party.side}", now, staff=staff)


async def remove_party(
    session: AsyncSession, case: DisputeCase, party_id: int, now: dt.datetime, staff: StaffUser
) -> None:
    party = await session.get(DisputeParty, party_id)
    if party is None or party.case_id != case.id:
        raise DisputeError("没有这位当事人")
    others = await parties_of(session, case.id)
    if party.side == SIDES[0] and sum(p.side == SIDES[0] for p in others) <= 1:
        raise DisputeError("至少要留一位当事人")
    await session.delete(party)
    timeline.add(session, case, "edit", f"删除了一位{party.side}", now, staff=staff)


async def set_mediator(
    session: AsyncSession, case: DisputeCase, mediator: StaffUser | None, now: dt.datetime, staff: StaffUser
) -> None:
    case.mediator_id = mediator.id if mediator is not None else None
    if mediator is not None:
        case.mediator_name = mediator.label
    timeline.add(session, case, "edit", f"调解员：{mediator.label if mediator else '未指定'}", now, staff=staff)


async def parties_of(session: AsyncSession, case_id: int) -> list[DisputeParty]:
    rows = await session.execute(
        select(DisputeParty).where(DisputeParty.case_id == case_id).order_by(DisputeParty.side.desc(), DisputeParty.id)
    )
    return sorted(rows.scalars(), key=lambda p: (SIDES.index(p.side) if p.side in SIDES else 9, p.id))


# ---------------------------------------------------------------- agreement, 司法确认, 回访
def record_agreement(
    session: AsyncSession,
    case: DisputeCase,
    *,
    kind: str,
    terms: str,
    method: str,
    deadline: str,
    agreement_on: dt.date | None,
    now: dt.datetime,
    staff: StaffUser | None,
) -> None:
    """The agreement reached (人民调解法第28-30条). ``agreement_on``: the day it took effect."""
    if kind not in (WRITTEN, ORAL):
        raise DisputeError("协议形式只能是 书面 或 口头")
    if not terms.strip():
        raise DisputeError("请写明协议内容（各方的权利义务）")
    if agreement_on is not None and (agreement_on > today(now) or agreement_on < case.found_on):
        raise DisputeError("协议生效日期应在发现日期和今天之间")
    case.agreement_kind = kind
    case.agreement_terms = terms.strip()
    case.performance_method = method.strip()
    case.performance_deadline = deadline.strip()[:64]
    if agreement_on != case.agreement_on:
        case.confirm_reminder_stage = 0
    case.agreement_on = agreement_on
    body = f"{kind}调解协议" + (f"，{chinese_date(agreement_on)}生效" if agreement_on else "（尚未签署生效）")
    if kind == WRITTEN and agreement_on is not None and case.confirmation != CONFIRM_APPLIED:
        body += f"；如需司法确认，双方须在 {chinese_date(confirmation_deadline(agreement_on))} 前共同向法院申请"
    timeline.add(session, case, "agreement", body, now, staff=staff)


def set_confirmation(
    session: AsyncSession,
    case: DisputeCase,
    decision: str,
    on: dt.date | None,
    now: dt.datetime,
    staff: StaffUser,
) -> None:
    if decision not in ("", CONFIRM_APPLIED, CONFIRM_DECLINED):
        raise DisputeError("只能登记 已申请 或 不申请")
    if decision and (case.agreement_kind != WRITTEN or case.agreement_on is None):
        raise DisputeError("先登记已生效的书面调解协议，才能登记司法确认。")
    case.confirmation = decision
    case.confirmation_on = on if decision == CONFIRM_APPLIED else None
    body = {
        CONFIRM_APPLIED: f"双方已共同申请司法确认（{chinese_date(on)}）" if on else "双方已共同申请司法确认",
        CONFIRM_DECLINED: "双方认为不需要司法确认",
        "": "撤销司法确认登记",
    }[decision]
    timeline.add(session, case, "confirmation", body, now, staff=staff)


def record_visit(
    session: AsyncSession,
    case: DisputeCase,
    *,
    on: dt.date,
    result: str,
    notes: str,
    now: dt.datetime,
    staff: StaffUser,
) -> None:
    if case.status != RESOLVED:
        raise DisputeError("案件化解后才做回访")
    if result not in VISIT_RESULTS:
        raise DisputeError(f"履行情况只能是：{'、'.join(VISIT_RESULTS)}")
    if on > today(now) or (case.resolved_on and on < case.resolved_on):
        raise DisputeError("回访日期应在化解日期和今天之间")
    case.visited_on, case.visit_result, case.visit_notes = on, result, notes.strip()
    timeline.add(
        session,
        case,
        "visit",
        f"回访（{chinese_date(on)}）：协议{result}" + (f"。{notes.strip()}" if notes.strip() else ""),
        now,
        staff=staff,
    )


# ---------------------------------------------------------------- a ticket becomes a case
async def from_ticket(
    session: AsyncSession,
    ticket: Ticket,
    *,
    site: Mapping[str, Any],
    now: dt.datetime,
    staff: StaffUser,
    base_url: str = "",
) -> tuple[DisputeCase, bool]:
    """One action on the ticket page: the villager becomes the party, the ticket's words the facts.

    Returns the case and whether it was created now (False: the ticket already had one)."""
    existing = (
        await session.execute(select(DisputeCase).where(DisputeCase.ticket_id == ticket.id))
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    if ticket.village_id is None:
        raise DisputeError("这个工单还没有村：先在工单里问清是哪个村，再转为纠纷案件。")
    if ticket.anonymised_at is not None or ticket.openid is None:
        raise DisputeError("村民已要求删除个人信息，这个工单不能再转为纠纷案件。")
    from bot.storage.models import Villager

    villager = (await session.execute(select(Villager).where(Villager.openid == ticket.openid))).scalar_one_or_none()
    name = (villager.display_name if villager is not None else None) or f"微信村民（工单{ticket.number}）"
    party = PartyIn(
        side=SIDES[0],
        name=name,
        phone=ticket.contact_phone if ticket.phone_consent_at is not None else None,
        phone_consent=ticket.phone_consent_at is not None,
        openid=ticket.openid,
    )
    mediator_id = None
    if ticket.assignee_id is not None:
        assignee = await session.get(StaffUser, ticket.assignee_id)
        mediator_id = assignee.id if assignee is not None and assignee.role == "mediator" else None
    if mediator_id is None and staff.role == "mediator":
        mediator_id = staff.id
    case = await create_case(
        session,
        site=site,
        village_id=ticket.village_id,
        found_on=today(ticket.created_at),
        source="微信工单",
        type=type_for_topic(ticket.topic),
        risk="高" if ticket.urgent else "中" if ticket.escalated_at is not None else "低",
        summary=ticket.summary,
        parties=[party],
        now=now,
        mediator_id=mediator_id,
        recorded_by=staff,
        ticket_id=ticket.id,
        base_url=base_url,
    )
    timeline.add(session, case, "ticket", f"由微信工单 {ticket.number} 转为纠纷案件", now, staff=staff)
    ticket_event(
        session, ticket, "dispute", f"{staff.label}转为纠纷案件 {case.case_no}", now, staff=staff, case_id=case.id
    )
    if ticket.status in (NEW, ASSIGNED, IN_PROGRESS, ANSWERED):
        ticket.status = MEDIATING
    return case, True
