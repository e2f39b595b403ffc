"""纠纷台账 in the back-office: the ledger, registering a found dispute, the case page with its
timeline and documents, the township's 月排查 page (who reported, who is late, the month's numbers
with charts, XLSX/CSV in the county's layout), the ledger import and the 三长联动 queue.

Who sees what is ``bot.services.disputes.access``; every view of a party's data is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin import charts
from bot.admin import framework as adm
from bot.services.disputes import access, cases, ledger, report, timeline
from bot.services.disputes.deadlines import (
    MonthError,
    chinese_date,
    confirmation_deadline,
    month_of,
    parse_month,
    previous_months,
    today,
)
from bot.services.disputes.documents import TITLES, case_file, documents_for
from bot.services.privacy import mask_phone
from bot.services.tickets import ESCALATION_TARGETS, LEADER_TARGETS, staff_of_village
from bot.storage.disputes import (
    CONFIRM_APPLIED,
    CONFIRM_DECLINED,
    ORAL,
    RESOLVED,
    RISKS,
    SIDES,
    SOURCES,
    STATUSES,
    TYPES,
    VISIT_RESULTS,
    WRITTEN,
    DisputeCase,
    DisputeParty,
)
from bot.storage.models import Village, utcnow
from bot.storage.staff import StaffUser
from bot.storage.tickets import OPEN_STATUSES, Ticket

PAGE_SIZE = 50
RECORDERS = ("admin", "mediator", "volunteer")
ACTIONS = ("edit", "status", "risk", "note", "party", "unparty", "mediator", "agreement", "confirmation", "visit")


def _site(request: web.Request) -> dict[str, Any]:
    return dict(adm.services(request).knowledge.kb.site)


def _date(data: Any, name: str, *, required: bool = False) -> dt.date | None:
    raw = adm.field_text(data, name, 10)
    if not raw:
        if required:
            raise cases.DisputeError("请填写日期")
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise cases.DisputeError(f"日期格式应为 2026-03-05：{raw}") from None


async def _villages(session: AsyncSession) -> dict[int, Village]:
    return {v.id: v for v in (await session.execute(select(Village).order_by(Village.id))).scalars()}


async def _case_for(request: web.Request, session: AsyncSession) -> DisputeCase:
    """The case in the URL; 404 when there is none, 403 when it is not the user's to see."""
    try:
        case_id = int(request.match_info["id"])
    except (KeyError, ValueError):
        adm.not_found()
    case = await session.get(DisputeCase, case_id)
    if case is None:
        adm.not_found("没有这个纠纷案件。")
    if not access.can_see(case, adm.user(request)):
        adm.forbid("这个案件不归您管，不能查看。")
    return case


# ---------------------------------------------------------------- the ledger
def _filters(request: web.Request) -> dict[str, str]:
    q = request.query
    return {
        "month": q.get("month", "")[:7],
        "village": q.get("village", "")[:6],
        "status": q.get("status", "")[:8],
        "type": q.get("type", "")[:16],
        "risk": q.get("risk", "")[:2],
        "q": q.get("q", "").strip()[:32],
        "page": q.get("page", "1")[:5],
    }


def _where(f: dict[str, str]) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if f["month"]:
        try:
            first, last = parse_month(f["month"])
            clauses += [DisputeCase.found_on >= first, DisputeCase.found_on <= last]
        except MonthError:
            f["month"] = ""
    if f["village"].isdigit():
        clauses.append(DisputeCase.village_id == int(f["village"]))
    if f["status"] in STATUSES:
        clauses.append(DisputeCase.status == f["status"])
    if f["type"] in TYPES:
        clauses.append(DisputeCase.type == f["type"])
    if f["risk"] in RISKS:
        clauses.append(DisputeCase.risk == f["risk"])
    if f["q"]:
        named = select(DisputeParty.case_id).where(DisputeParty.name.contains(f["q"]))
        clauses.append(or_(DisputeCase.case_no.contains(f["q"]), DisputeCase.id.in_(named)))
    return clauses


async def ledger_page(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    f = _filters(request)
    page = max(1, int(f["page"])) if f["page"].isdigit() else 1
    async with adm.db(request)() as session, session.begin():
        scope = [access.visible(staff), *_where(f)]
        total = int(await session.scalar(select(func.count(DisputeCase.id)).where(*scope)) or 0)
        rows = list(
            (
                await session.execute(
                    select(DisputeCase)
                    .where(*scope)
                    .order_by(DisputeCase.found_on.desc(), DisputeCase.id.desc())
                    .limit(PAGE_SIZE)
                    .offset((page - 1) * PAGE_SIZE)
                )
            ).scalars()
        )
        names: dict[int, dict[str, list[str]]] = {}
        if rows:
            for p in (
                await session.execute(select(DisputeParty).where(DisputeParty.case_id.in_([c.id for c in rows])))
            ).scalars():
                names.setdefault(p.case_id, {}).setdefault(p.side, []).append(p.name)
        villages = await _villages(session)
        await adm.audit(session, request, "disputes.list", object_type="dispute", details=f)
    items = [
        {
            "c": c,
            "village": villages[c.village_id].name if c.village_id in villages else "",
            "parties": "、".join(names.get(c.id, {}).get(SIDES[0], [])),
            "others": "、".join(names.get(c.id, {}).get(SIDES[1], [])),
        }
        for c in rows
    ]
    visible = [v for v in villages.values() if staff.is_admin or v.id in staff.village_ids]
    return await adm.render(
        request,
        "admin/disputes_list.html",
        {
            "items": items,
            "f": f,
            "page": page,
            "pages": max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
            "total": total,
            "villages": visible,
            "statuses": STATUSES,
            "types": TYPES,
            "risks": RISKS,
            "months": previous_months(today(utcnow())),
            "can_record": staff.role in RECORDERS,
        },
        title="纠纷台账",
    )


# ---------------------------------------------------------------- registering a found dispute
def _party_inputs(data: Any) -> list[cases.PartyIn]:
    consent = data.get("phone_consent") == "1"
    phone = adm.field_text(data, "phone", 32) or None
    parties = []
    for index, name in enumerate(ledger.split_names(adm.field_text(data, "parties", 200))):
        parties.append(
            cases.PartyIn(SIDES[0], name, phone=phone if index == 0 else None, phone_consent=consent or not phone)
        )
    parties += [cases.PartyIn(SIDES[1], n) for n in ledger.split_names(adm.field_text(data, "others", 200))]
    return parties


async def _form_context(request: web.Request, error: str = "", values: dict[str, Any] | None = None) -> dict[str, Any]:
    staff = adm.user(request)
    async with adm.db(request)() as session:
        villages = await _villages(session)
    allowed = [villages[i] for i in access.recordable_villages(staff, list(villages)) if villages[i].active]
    return {
        "error": error,
        "v": {"found_on": today(utcnow()).isoformat(), "source": "排查", "risk": "低", **(values or {})},
        "villages": allowed,
        "types": TYPES,
        "risks": RISKS,
        "sources": SOURCES,
        "statuses": STATUSES,
        "volunteer": staff.role == "volunteer",
    }


async def new_page(request: web.Request) -> web.StreamResponse:
    context = await _form_context(request)
    if not context["villages"]:
        adm.forbid("您没有负责的村，不能登记纠纷。")
    return await adm.render(request, "admin/disputes_form.html", context, title="登记纠纷")


async def create(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    data = await adm.form(request)
    values = {k: adm.field_text(data, k, 2000) for k in data if isinstance(data.get(k), str) and k != adm.CSRF_FIELD}
    now = utcnow()
    try:
        village = adm.field_text(data, "village", 6)
        if not village.isdigit() or not access.can_record_in(int(village), staff):
            raise cases.DisputeError("请选择您负责的村。")
        found_on = _date(data, "found_on", required=True)
        assert found_on is not None
        status = "排查中" if staff.role == "volunteer" else adm.field_text(data, "status", 8) or "排查中"
        async with adm.db(request)() as session, session.begin():
            me = await session.get(StaffUser, staff.id)
            case = await cases.create_case(
                session,
                site=_site(request),
                village_id=int(village),
                found_on=found_on,
                source=adm.field_text(data, "source", 8),
                type=adm.field_text(data, "type", 16),
                risk=adm.field_text(data, "risk", 2),
                status=status,
                summary=adm.field_text(data, "summary", 4000),
                points=adm.field_text(data, "points", 2000),
                parties=_party_inputs(data),
                now=now,
                mediator_id=staff.id if staff.role == "mediator" else None,
                recorded_by=me,
                base_url=adm.services(request).settings.base_url,
            )
            await adm.audit(session, request, "dispute.create", object_type="dispute", object_id=case.id)
            case_id, case_no = case.id, case.case_no
    except cases.DisputeError as exc:
        context = await _form_context(request, str(exc), values)
        return await adm.render(request, "admin/disputes_form.html", context, title="登记纠纷", status=400)
    adm.flash(request, f"已登记 {case_no}。")
    adm.redirect(request, "admin-dispute", id=case_id)


# ---------------------------------------------------------------- the case page
async def case_page(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    now = utcnow()
    async with adm.db(request)() as session, session.begin():
        case = await _case_for(request, session)
        parties = await cases.parties_of(session, case.id)
        entries = await timeline.entries(session, case.id)
        village = await session.get(Village, case.village_id)
        mediator = await session.get(StaffUser, case.mediator_id) if case.mediator_id else None
        ticket = await session.get(Ticket, case.ticket_id) if case.ticket_id else None
        editable = access.can_edit(case, staff)
        colleagues: list[StaffUser] = []
        if editable:  # the village's mediators, or every active mediator when it has none
            colleagues = [s for s in await staff_of_village(session, case.village_id) if s.role == "mediator"]
            colleagues = colleagues or [s for s in await staff_of_village(session, None) if s.role == "mediator"]
        reveal = request.query.get("show_phone") == "1" and editable and any(p.phone for p in parties)
        await adm.audit(session, request, "dispute.view", object_type="dispute", object_id=case.id)
        if reveal:
            await adm.audit(session, request, "dispute.phone_view", object_type="dispute", object_id=case.id)
    day = today(now)
    deadline = (
        confirmation_deadline(case.agreement_on) if case.agreement_on and case.agreement_kind == WRITTEN else None
    )
    return await adm.render(
        request,
        "admin/disputes_case.html",
        {
            "c": case,
            "village": village.name if village else "",
            "mediator": mediator.label if mediator else case.mediator_name or "未指定",
            "parties": [{"p": p, "phone": p.phone if reveal else mask_phone(p.phone)} for p in parties],
            "can_reveal": editable and not reveal and any(p.phone for p in parties),
            "entries": entries,
            "ticket": ticket,
            "editable": editable,
            "can_note": access.can_note(case, staff),
            "deadline": deadline,
            "days_left": (deadline - day).days if deadline else None,
            "visit_days": (case.visit_due_on - day).days if case.visit_due_on else None,
            "documents": TITLES,
            "colleagues": colleagues,
            "statuses": STATUSES,
            "risks": RISKS,
            "types": TYPES,
            "sources": SOURCES,
            "sides": SIDES,
            "visit_results": VISIT_RESULTS,
            "kinds": (WRITTEN, ORAL),
            "confirm": (CONFIRM_APPLIED, CONFIRM_DECLINED),
            "today": day.isoformat(),
            "chinese_date": chinese_date,
            "resolved": RESOLVED,
        },
        title=case.case_no,
    )


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    staff = adm.user(request)
    data = await adm.form(request)
    now = utcnow()
    base_url = adm.services(request).settings.base_url
    done = "已保存。"
    async with adm.db(request)() as session, session.begin():
        case = await _case_for(request, session)
        allowed = access.can_note(case, staff) if action == "note" else access.can_edit(case, staff)
        if not allowed:
            adm.forbid("您只能查看这个案件，不能修改。")
        me = await session.get(StaffUser, staff.id)
        assert me is not None
        details: dict[str, Any] = {}
        try:
            if action == "status":
                status = adm.field_text(data, "status", 8)
                reason = adm.field_text(data, "reason", 500)
                await cases.set_status(
                    session,
                    case,
                    status,
                    now,
                    staff=me,
                    resolved_on=_date(data, "resolved_on"),
                    reason=reason,
                    base_url=base_url,
                )
                details, done = {"to": status}, f"状态已改为“{status}”。"
            elif action == "risk":
                risk = adm.field_text(data, "risk", 2)
                await cases.set_risk(
                    session, case, risk, now, staff=me, reason=adm.field_text(data, "reason", 500), base_url=base_url
                )
                details, done = {"to": risk}, f"风险等级已改为“{risk}”。"
            elif action == "note":
                cases.add_note(session, case, adm.field_text(data, "body", 4000), now, me)
                done = "已记录。"
            elif action == "edit":
                changes: dict[str, Any] = {
                    k: adm.field_text(data, k, 4000)
                    for k in ("type", "summary", "points", "responsibility", "notes", "committee", "source")
                    if k in data
                }
                if "found_on" in data:
                    changes["found_on"] = _date(data, "found_on", required=True)
                details = {"changed": cases.edit(session, case, changes, now, me)}
            elif action == "party":
                age = adm.field_text(data, "age", 3)
                party = cases.PartyIn(
                    side=adm.field_text(data, "side", 8),
                    name=adm.field_text(data, "name", 64),
                    gender=adm.field_text(data, "gender", 2),
                    ethnicity=adm.field_text(data, "ethnicity", 16),
                    age=int(age) if age.isdigit() else None,
                    address=adm.field_text(data, "address", 128),
                    phone=adm.field_text(data, "phone", 32) or None,
                    phone_consent=data.get("phone_consent") == "1",
                )
                await cases.add_party(session, case, party, now, me)
                done = f"已添加{party.side}。"
            elif action == "unparty":
                party_id = adm.field_text(data, "party", 12)
                await cases.remove_party(session, case, int(party_id) if party_id.isdigit() else 0, now, me)
                details, done = {"party": party_id}, "已删除这位当事人。"
            elif action == "mediator":
                target = adm.field_text(data, "mediator", 12)
                person = await session.get(StaffUser, int(target)) if target.isdigit() else None
                if person is not None and (person.role != "mediator" or not person.active):
                    raise cases.DisputeError("只能指定在岗的调解员。")
                await cases.set_mediator(session, case, person, now, me)
                details = {"to": person.id if person else None}
            elif action == "agreement":
                cases.record_agreement(
                    session,
                    case,
                    kind=adm.field_text(data, "kind", 4),
                    terms=adm.field_text(data, "terms", 4000),
                    method=adm.field_text(data, "method", 1000),
                    deadline=adm.field_text(data, "deadline", 64),
                    agreement_on=_date(data, "agreement_on"),
                    now=now,
                    staff=me,
                )
                done = "调解协议已登记。"
            elif action == "confirmation":
                decision = adm.field_text(data, "decision", 8)
                cases.set_confirmation(session, case, decision, _date(data, "on"), now, me)
                details = {"decision": decision}
            elif action == "visit":
                on = _date(data, "on", required=True)
                assert on is not None
                result = adm.field_text(data, "result", 8)
                cases.record_visit(
                    session, case, on=on, result=result, notes=adm.field_text(data, "notes", 2000), now=now, staff=me
                )
                details, done = {"result": result}, "回访已登记。"
            else:  # pragma: no cover - routes are fixed
                adm.not_found()
        except cases.DisputeError as exc:
            adm.flash(request, str(exc), "error")
            adm.redirect(request, "admin-dispute", id=request.match_info["id"])
        await adm.audit(
            session, request, f"dispute.{action}", object_type="dispute", object_id=case.id, details=details
        )
        case_id = case.id
    adm.flash(request, done)
    adm.redirect(request, "admin-dispute", id=case_id)


def _action(action: str) -> adm.Handler:
    async def view(request: web.Request) -> web.StreamResponse:
        return await _act(request, action)

    view.__name__ = f"dispute_{action}"
    return view


# ---------------------------------------------------------------- documents
async def document(request: web.Request) -> web.StreamResponse:
    """A document as DOCX (``.docx``) or as a printable A4 page."""
    key, fmt = request.match_info["doc"], request.match_info.get("fmt", "")
    if key not in TITLES:
        adm.not_found("没有这种文书。")
    async with adm.db(request)() as session, session.begin():
        case = await _case_for(request, session)
        documents = documents_for(key, await case_file(session, case, _site(request)))
        await adm.audit(
            session, request, "dispute.document", object_type="dispute", object_id=case.id, details={"document": key}
        )
    if fmt == ".docx":
        from bot.services.disputes.word import to_docx

        name = f"{case.case_no}-{TITLES[key]}.docx"
        ascii_name = f"case-{case.id}-{key}.docx"
        from urllib.parse import quote

        return web.Response(
            body=to_docx(documents),
            content_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            headers={"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"},
        )
    return await adm.render(
        request, "admin/disputes_document.html", {"documents": documents, "c": case}, title=TITLES[key]
    )


# ---------------------------------------------------------------- ticket → case
async def ticket_to_case(request: web.Request) -> web.StreamResponse:
    from bot.services.tickets import can_see

    staff = adm.user(request)
    async with adm.db(request)() as session, session.begin():
        ticket = await session.get(Ticket, int(request.match_info["id"]))
        if ticket is None:
            adm.not_found("没有这个工单。")
        if not can_see(ticket, staff.role, staff.id, staff.village_ids):
            adm.forbid("这个工单不归您管。")
        me = await session.get(StaffUser, staff.id)
        assert me is not None
        try:
            case, created = await cases.from_ticket(
                session,
                ticket,
                site=_site(request),
                now=utcnow(),
                staff=me,
                base_url=adm.services(request).settings.base_url,
            )
        except cases.DisputeError as exc:
            adm.flash(request, str(exc), "error")
            adm.redirect(request, "admin-ticket", id=ticket.id)
        if created:
            await adm.audit(
                session,
                request,
                "dispute.from_ticket",
                object_type="dispute",
                object_id=case.id,
                details={"ticket": ticket.id},
            )
        case_id, case_no = case.id, case.case_no
    adm.flash(
        request,
        f"已转为纠纷案件 {case_no}，请补充对方当事人和纠纷类型。" if created else f"这个工单已是纠纷案件 {case_no}。",
    )
    adm.redirect(request, "admin-dispute", id=case_id)


# ---------------------------------------------------------------- 月排查 (the township page)
def _month(request: web.Request) -> str:
    month = request.query.get("month", "")[:7]
    try:
        parse_month(month)
        return month
    except MonthError:
        return report.current_month(utcnow())


async def _report_for(request: web.Request, month: str) -> report.MonthReport:
    staff = adm.user(request)
    only = None if staff.is_admin else list(staff.village_ids)
    async with adm.db(request)() as session:
        return await report.month_report(
            session, month, utcnow(), report_day=adm.services(request).settings.dispute_report_day, village_ids=only
        )


async def _trend(request: web.Request, months: list[str]) -> dict[str, list[float]]:
    staff = adm.user(request)
    _, last = parse_month(months[-1])
    found = dict.fromkeys(months, 0.0)
    resolved = dict.fromkeys(months, 0.0)
    async with adm.db(request)() as session:
        stmt = select(DisputeCase.found_on, DisputeCase.resolved_on).where(DisputeCase.found_on <= last)
        if not staff.is_admin:
            stmt = stmt.where(DisputeCase.village_id.in_(list(staff.village_ids)))
        for found_on, resolved_on in (await session.execute(stmt)).all():
            if month_of(found_on) in found:
                found[month_of(found_on)] += 1
            if resolved_on is not None and month_of(resolved_on) in resolved:
                resolved[month_of(resolved_on)] += 1
    return {"发现": list(found.values()), "化解": list(resolved.values())}


async def monthly_page(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    month = _month(request)
    r = await _report_for(request, month)
    months = previous_months(today(utcnow()))
    trend_months = list(reversed(months))
    labels = [row.village for row in r.villages]
    visuals = [
        charts.stacked_bar(
            f"{month} 各村发现的纠纷（按类型）",
            labels,
            {t: [float(row.by_type[t]) for row in r.villages] for t in TYPES},
        ),
        charts.bar(f"{month} 月底各村未化解", labels, [float(row.open) for row in r.villages], series="未化解"),
        charts.line("近12个月 发现与化解", [m[2:] for m in trend_months], await _trend(request, trend_months)),
    ]
    mine = [row for row in r.villages if access.can_report_for(row.village_id, staff)]
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, "disputes.monthly", object_type="dispute_report", object_id=month)
    return await adm.render(
        request,
        "admin/disputes_monthly.html",
        {
            "r": r,
            "totals": r.totals,
            "types": TYPES,
            "months": months,
            "charts": visuals,
            "mine": mine,
            "due": chinese_date(r.due_on),
            "reported": sum(v.reported for v in r.villages),
        },
        title=f"月排查 {month}",
    )


async def submit_report(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    data = await adm.form(request)
    month = adm.field_text(data, "month", 7)
    village_id = adm.field_text(data, "village", 6)
    zero = data.get("zero") == "1"
    if not village_id.isdigit() or not access.can_report_for(int(village_id), staff):
        adm.forbid("您只能为自己负责的村报月报告。")
    async with adm.db(request)() as session, session.begin():
        village = await session.get(Village, int(village_id))
        if village is None:
            adm.not_found("没有这个村。")
        me = await session.get(StaffUser, staff.id)
        try:
            _report, created = await report.submit(
                session,
                village,
                month,
                zero=zero,
                now=utcnow(),
                staff=me,
                via="后台",
                note=adm.field_text(data, "note", 500),
            )
        except (cases.DisputeError, MonthError) as exc:
            adm.flash(request, str(exc), "error")
            adm.redirect(request, "admin-disputes-monthly", query={"month": month})
        await adm.audit(
            session, request, "dispute_report.submit", object_type="dispute_report", object_id=f"{village.id}:{month}"
        )
        name = village.name
    kind = "零报告（本月排查：无）" if zero else "月报告"
    adm.flash(request, f"{name} {month} {kind}已{'提交' if created else '重新提交'}。")
    adm.redirect(request, "admin-disputes-monthly", query={"month": month})


async def monthly_export(request: web.Request) -> web.StreamResponse:
    month = _month(request)
    r = await _report_for(request, month)
    site = _site(request)
    title = f"{site.get('county') or ''}{site.get('township') or ''}矛盾纠纷排查化解月报表（{month}）"
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, "disputes.export", object_type="dispute_report", object_id=month)
    if request.match_info["fmt"] == "xlsx":
        return web.Response(
            body=report.to_xlsx(r, title),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="disputes-{month}.xlsx"'},
        )
    return web.Response(
        body=report.to_csv(r, title),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="disputes-{month}.csv"'},
    )


# ---------------------------------------------------------------- import
async def import_page(request: web.Request) -> web.StreamResponse:
    return await adm.render(
        request,
        "admin/disputes_import.html",
        {"outcome": None, "error": "", "required": ledger.REQUIRED, "optional": ledger.OPTIONAL},
        title="导入台账",
    )


async def import_upload(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    upload = data.get("file")
    dry_run = data.get("dry_run") == "1"
    error, outcome = "", None
    if not isinstance(upload, web.FileField):
        error = "请选择要导入的 .xlsx 或 .csv 文件。"
    else:
        content = upload.file.read()
        try:  # a file with any bad row writes nothing (import_ledger checks every row first)
            async with adm.db(request)() as session, session.begin():
                me = await session.get(StaffUser, adm.user(request).id)
                outcome = await ledger.import_ledger(
                    session, upload.filename, content, site=_site(request), now=utcnow(), staff=me, dry_run=dry_run
                )
                await adm.audit(
                    session,
                    request,
                    "disputes.import_check",
                    object_type="dispute",
                    details={"file": upload.filename[:64], "problems": len(outcome.problems), "dry_run": dry_run},
                )
        except ledger.LedgerError as exc:
            error = str(exc)
    status = 400 if error or (outcome is not None and not outcome.ok) else 200
    return await adm.render(
        request,
        "admin/disputes_import.html",
        {"outcome": outcome, "error": error, "required": ledger.REQUIRED, "optional": ledger.OPTIONAL},
        title="导入台账",
        status=status,
    )


# ---------------------------------------------------------------- 三长联动
async def queue_page(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    now = utcnow()
    async with adm.db(request)() as session, session.begin():
        rows = list(
            (
                await session.execute(
                    select(DisputeCase)
                    .where(access.in_queue(), access.visible(staff))
                    .order_by(DisputeCase.risk.desc(), DisputeCase.queue_entered_at)
                )
            ).scalars()
        )
        tickets = list(
            (
                await session.execute(
                    select(Ticket)
                    .where(Ticket.escalated_to.in_(LEADER_TARGETS), Ticket.status.in_(OPEN_STATUSES))
                    .order_by(Ticket.escalated_at)
                )
            ).scalars()
        )
        villages = await _villages(session)
        await adm.audit(session, request, "disputes.queue", object_type="dispute")
    day = today(now)
    items = [
        {
            "c": c,
            "village": villages[c.village_id].name if c.village_id in villages else "",
            "days": (day - today(c.queue_entered_at)).days if c.queue_entered_at else 0,
        }
        for c in rows
    ]
    ticket_items = [
        {
            "t": t,
            "village": villages[t.village_id].name if t.village_id in villages else "未选村",
            "to": ESCALATION_TARGETS.get(t.escalated_to or "", ""),
        }
        for t in tickets
    ]
    return await adm.render(
        request, "admin/disputes_queue.html", {"items": items, "tickets": ticket_items}, title="三长联动"
    )


def setup(app: web.Application) -> None:
    add = adm.add_view
    add(app, "GET", "/admin/disputes", ledger_page, name="admin-disputes", roles=RECORDERS)
    add(app, "GET", "/admin/disputes/new", new_page, name="admin-dispute-new", roles=RECORDERS)
    add(app, "POST", "/admin/disputes/new", create, name="admin-dispute-create", roles=RECORDERS)
    add(app, "GET", r"/admin/disputes/{id:\d+}", case_page, name="admin-dispute", roles=adm.ALL)
    for action in ACTIONS:
        add(
            app,
            "POST",
            rf"/admin/disputes/{{id:\d+}}/{action}",
            _action(action),
            name=f"admin-dispute-{action}",
            roles=adm.ALL,
        )
    add(
        app,
        "GET",
        r"/admin/disputes/{id:\d+}/documents/{doc:[a-z]+}{fmt:(\.docx)?}",
        document,
        name="admin-dispute-document",
        roles=adm.ALL,
    )
    add(app, "POST", r"/admin/tickets/{id:\d+}/to-case", ticket_to_case, name="admin-ticket-case", roles=adm.STAFF)
    add(app, "GET", "/admin/disputes/monthly", monthly_page, name="admin-disputes-monthly", roles=adm.STAFF)
    add(app, "POST", "/admin/disputes/monthly", submit_report, name="admin-disputes-submit", roles=adm.STAFF)
    add(
        app,
        "GET",
        r"/admin/disputes/monthly.{fmt:(xlsx|csv)}",
        monthly_export,
        name="admin-disputes-export",
        roles=adm.STAFF,
    )
    add(app, "GET", "/admin/disputes/import", import_page, name="admin-disputes-ledger", roles=adm.ADMIN)
    add(app, "POST", "/admin/disputes/import", import_upload, name="admin-disputes-upload", roles=adm.ADMIN)
    add(app, "GET", "/admin/disputes/queue", queue_page, name="admin-disputes-queue", roles=adm.LEADERS)
    adm.add_nav(app, "纠纷台账", "admin-disputes", roles=RECORDERS, order=12)
    adm.add_nav(app, "月排查", "admin-disputes-monthly", roles=adm.STAFF, order=14)
    adm.add_nav(app, "三长联动", "admin-disputes-queue", roles=adm.LEADERS, order=16)
