"""Proposals for the township's knowledge and their review (问答建议).

Every staff member proposes — a phrasing for an entry, a new entry, a local answer, a site
value — and 存为问答草稿 on a ticket's reply box drafts an entry from the reply. Each proposal
page shows the diff, the problems `lawbot kb check` would report and the matcher quality before
and after (computed in the background; the page refreshes itself until they are there). Only
an admin with 法律审核 (the judicial office's lawyer) publishes or returns a proposal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select

from bot.admin import framework as adm
from bot.admin.tickets_views import ticket_for
from bot.knowledge import KnowledgeBase
from bot.services import knowledge as kn
from bot.services.knowledge import drafts
from bot.services.knowledge import proposals as props
from bot.services.knowledge.layer import SITE_KEYS, SITE_NAMES, from_staff, to_staff
from bot.services.knowledge.versions import can_publish
from bot.storage.knowledge import KnowledgeProposal
from bot.storage.models import Villager
from bot.storage.staff import StaffUser
from bot.storage.tickets import TicketMessage

SEARCH_RESULTS = 5


def _lines(data: MultiDictProxy[Any], name: str) -> list[str]:
    return [line.strip() for line in adm.field_text(data, name, 6000).replace("、", "\n").splitlines() if line.strip()]


def entry_fields(data: MultiDictProxy[Any]) -> dict[str, Any]:
    """The entry form as the knowledge format stores it (staff write placeholders in Chinese: {司法所电话})."""
    return {
        "topic": adm.field_text(data, "topic", 64),
        "question": from_staff(adm.field_text(data, "question", 200)),
        "variants": [from_staff(v) for v in _lines(data, "variants")],
        "keywords": _lines(data, "keywords"),
        "answer": from_staff(adm.field_text(data, "answer", 2000)),
        "details": from_staff(adm.field_text(data, "details", 4000)),
        "basis": _lines(data, "basis"),
        "next_step": from_staff(adm.field_text(data, "next_step", 600)),
    }


def _entry(data: MultiDictProxy[Any], kb: KnowledgeBase) -> str:
    return props.entry_by_key(kb, adm.field_text(data, "entry", 64)) or ""


def payload_from(kind: str, data: MultiDictProxy[Any], kb: KnowledgeBase) -> tuple[str | None, dict[str, Any]]:
    if kind == "variant":
        return _entry(data, kb), {"text": adm.field_text(data, "text", 200)}
    if kind == "entry":
        return None, {"entry": {"id": adm.field_text(data, "new_id", 64) or drafts.new_entry_id(kb),
                                **entry_fields(data)}}
    if kind == "edit":
        fields = {k: v for k, v in entry_fields(data).items() if k in ("answer", "next_step", "details", "basis")}
        return _entry(data, kb), {"fields": fields}
    return None, {"site": {k: adm.field_text(data, k, 200) for k in SITE_KEYS if k in data}}


def search(kb: KnowledgeBase, knowledge: kn.Knowledge, text: str) -> list[dict[str, str]]:
    if not text:
        return []
    return [{"key": props.entry_key(c.entry.id), "title": kb.fill(c.entry.question),
             "topic": kb.topic_name(c.entry.topic), "level": kn.match_level(c.score)}
            for c in knowledge.match(text).candidates[:SEARCH_RESULTS]]


def form_values(p: KnowledgeProposal | None, kb: KnowledgeBase, entry_id: str | None) -> dict[str, Any]:
    """What the edit forms show: the proposal's content, or the entry's / site's current values."""
    if p is not None and p.kind == "entry":
        item = dict(p.payload["entry"])
    elif p is not None and p.kind == "edit":
        entry = kb.by_id.get(p.entry_id or "")
        item = {"answer": entry.answer, "next_step": entry.next_step, "details": entry.details or "",
                "basis": list(entry.basis)} if entry else {}
        item.update(p.payload["fields"])
    elif entry_id and entry_id in kb.by_id:
        entry = kb.by_id[entry_id]
        item = {"answer": entry.answer, "next_step": entry.next_step, "details": entry.details or "",
                "basis": list(entry.basis)}
    else:
        item = {}
    site = {k: str(kb.site.get(k, "")) for k in SITE_KEYS}
    if p is not None and p.kind == "site":
        site.update(p.payload["site"])
    return {key: to_staff("\n".join(item[key]) if isinstance(item.get(key), list) else str(item.get(key) or ""))
            for key in ("topic", "question", "variants", "keywords", "answer", "details", "basis", "next_step")} | {
        "site": site}


async def _me(request: web.Request) -> StaffUser:
    async with adm.db(request)() as session:
        me = await session.get(StaffUser, adm.user(request).id)
    assert me is not None
    return me


def _check_later(request: web.Request, proposal_id: int) -> None:
    services = adm.services(request)
    services.spawn(kn.refresh_checks(services.session_factory, services.knowledge_holder, proposal_id),
                   name=f"kb-checks-{proposal_id}")


# ---------------------------------------------------------------- pages
async def proposals_page(request: web.Request) -> web.StreamResponse:
    kb = adm.services(request).knowledge.kb
    async with adm.db(request)() as session, session.begin():
        pending = await props.listing(session, "pending")
        decided = [p for p in await props.listing(session, None, limit=60) if p.status != "pending"][:30]
        me = await session.get(StaffUser, adm.user(request).id)
        await adm.audit(session, request, "knowledge.proposals_view", object_type="knowledge")

    def row(p: KnowledgeProposal) -> dict[str, Any]:
        return {"p": p, "summary": props.summary(p, kb), "kind": props.KIND_NAMES.get(p.kind, p.kind),
                "status": props.STATUS_NAMES.get(p.status, p.status)}

    return await adm.render(request, "admin/knowledge_proposals.html",
                            {"waiting": [row(p) for p in pending], "decided": [row(p) for p in decided],
                             "reviewer": can_publish(me)}, title="问答建议")


async def propose_page(request: web.Request) -> web.StreamResponse:
    services = adm.services(request)
    knowledge = services.knowledge
    kb = knowledge.kb
    kind = request.query.get("kind", "variant")
    kind = kind if kind in props.KIND_NAMES else "variant"
    text = request.query.get("text", "").strip()[:200]
    query = request.query.get("q", "").strip()[:100]
    entry_id = props.entry_by_key(kb, request.query.get("entry", "")) or ""
    values = form_values(None, kb, entry_id)
    if kind == "entry" and text:
        values["question"] = text
    return await adm.render(request, "admin/knowledge_propose.html", {
        "kind": kind, "kinds": props.KIND_NAMES, "text": text, "q": query,
        "targets": search(kb, knowledge, text) if kind == "variant" else [],
        "found": search(kb, knowledge, query),
        "entry_key": props.entry_key(entry_id) if entry_id else "", "entry_title": props.title(kb, entry_id),
        "topics": sorted(kb.topics.values(), key=lambda t: t.name), "values": values,
        "site_names": SITE_NAMES, "site_keys": SITE_KEYS, "error": "",
    }, title="提建议")


async def propose_submit(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    services = adm.services(request)
    kb = services.knowledge.kb
    kind = adm.field_text(data, "kind", 16)
    me = await _me(request)
    try:
        entry_id, payload = payload_from(kind, data, kb)
        proposal = await kn.propose(services.session_factory, kb, kind=kind, entry_id=entry_id, payload=payload,
                                    by=me, source="page")
    except kn.ProposalError as exc:
        adm.flash(request, str(exc), "error")
        adm.redirect(request, "admin-knowledge-propose",
                     query={"kind": kind, "entry": adm.field_text(data, "entry", 64),
                            "text": adm.field_text(data, "text", 200) or adm.field_text(data, "question", 200)})
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, "knowledge.propose", object_type="knowledge_proposal", object_id=proposal.id,
                        details={"kind": kind, "entry_id": entry_id})
    _check_later(request, proposal.id)
    adm.flash(request, "建议已提交，等审核人（司法所律师）发布。")
    adm.redirect(request, "admin-knowledge-proposal", id=proposal.id)


async def _proposal(request: web.Request) -> KnowledgeProposal:
    async with adm.db(request)() as session:
        proposal = await session.get(KnowledgeProposal, int(request.match_info["id"]))
    if proposal is None:
        adm.not_found("没有这条建议。")
    return proposal


async def proposal_page(request: web.Request) -> web.StreamResponse:
    services = adm.services(request)
    knowledge = services.knowledge
    kb = knowledge.kb
    async with adm.db(request)() as session, session.begin():
        proposal = await session.get(KnowledgeProposal, int(request.match_info["id"]))
        if proposal is None:
            adm.not_found("没有这条建议。")
        version = (await kn.published(session))[0]
        me = await session.get(StaffUser, adm.user(request).id)
        await adm.audit(session, request, "knowledge.proposal_view", object_type="knowledge_proposal",
                        object_id=proposal.id)
    pending = proposal.status == "pending"
    current = props.checks_current(proposal, version)
    if pending and not current and not props.checks_running(proposal):
        _check_later(request, proposal.id)
    checks = proposal.checks or {}
    reviewer = can_publish(me)
    return await adm.render(request, "admin/knowledge_proposal.html", {
        "p": proposal, "kind": props.KIND_NAMES.get(proposal.kind, proposal.kind),
        "status": props.STATUS_NAMES.get(proposal.status, proposal.status),
        "summary": props.summary(proposal, kb), "diff": props.diff(proposal, kb),
        "checking": pending and not current, "problems": checks.get("problems") or [],
        "quality": checks.get("quality"), "reviewer": reviewer,
        "can_edit": pending and (reviewer or proposal.proposed_by_id == adm.user(request).id),
        "is_author": proposal.proposed_by_id == adm.user(request).id,
        "values": form_values(proposal, kb, proposal.entry_id),
        "topics": sorted(kb.topics.values(), key=lambda t: t.name),
        "site_names": SITE_NAMES, "site_keys": SITE_KEYS,
    }, title=f"问答建议：{props.KIND_NAMES.get(proposal.kind, '')}")


async def proposal_edit(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    services = adm.services(request)
    proposal = await _proposal(request)
    me = await _me(request)
    try:
        _entry_id, payload = payload_from(proposal.kind, data, services.knowledge.kb)
        if proposal.kind == "variant":
            payload = {"text": adm.field_text(data, "text", 200)}
        await props.update(services.session_factory, services.knowledge.kb, proposal.id, me, payload)
    except kn.VersionError as exc:
        adm.flash(request, str(exc), "error")
        adm.redirect(request, "admin-knowledge-proposal", id=proposal.id)
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, "knowledge.proposal_edit", object_type="knowledge_proposal",
                        object_id=proposal.id)
    _check_later(request, proposal.id)
    adm.flash(request, "已保存修改，正在重新检查。")
    adm.redirect(request, "admin-knowledge-proposal", id=proposal.id)


Decision = Callable[[Any, MultiDictProxy[Any], int, int], Awaitable[tuple[str, dict[str, Any]]]]


async def _decide(request: web.Request, action: str, work: Decision) -> web.StreamResponse:
    """Approve, reject or withdraw: the service decides who may; its refusal is shown (403 for a non-reviewer)."""
    data = await adm.form(request)
    proposal_id = int(request.match_info["id"])
    try:
        done, details = await work(adm.services(request), data, proposal_id, adm.user(request).id)
    except kn.NotAllowed as exc:
        adm.forbid(str(exc))
    except kn.VersionError as exc:
        adm.flash(request, str(exc), "error")
        adm.redirect(request, "admin-knowledge-proposal", id=proposal_id)
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, action, object_type="knowledge_proposal",
                        object_id=proposal_id, details=details)
    adm.flash(request, done)
    adm.redirect(request, "admin-knowledge-proposal", id=proposal_id)


async def _approve(services: Any, data: MultiDictProxy[Any], proposal_id: int,
                   user_id: int) -> tuple[str, dict[str, Any]]:
    row = await kn.approve(services.session_factory, services.settings, services.knowledge_holder, proposal_id,
                           user_id, note=adm.field_text(data, "note", 500),
                           confirm_reason=adm.field_text(data, "confirm_reason", 500))
    return (f"已发布第 {row.id} 版：{row.summary}。各个服务进程几秒内用上。",
            {"version": row.id, "summary": row.summary, "reason": row.reason})


async def _reject(services: Any, data: MultiDictProxy[Any], proposal_id: int,
                  user_id: int) -> tuple[str, dict[str, Any]]:
    reason = adm.field_text(data, "reason", 500)
    await kn.reject(services.session_factory, proposal_id, user_id, reason)
    return "已退回。", {"reason": reason}


async def _withdraw(services: Any, _data: MultiDictProxy[Any], proposal_id: int,
                    user_id: int) -> tuple[str, dict[str, Any]]:
    await props.withdraw(services.session_factory, proposal_id, user_id)
    return "已撤回。", {}


async def proposal_approve(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "knowledge.approve", _approve)


async def proposal_reject(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "knowledge.reject", _reject)


async def proposal_withdraw(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "knowledge.withdraw", _withdraw)


async def ticket_draft(request: web.Request) -> web.StreamResponse:
    """存为问答草稿: the reply box's text (not sent) becomes a draft entry, personal details stripped."""
    data = await adm.form(request)
    services = adm.services(request)
    body = adm.field_text(data, "body", 5000)
    async with adm.db(request)() as session, session.begin():
        ticket = await ticket_for(request, session)
        first = (await session.execute(
            select(TicketMessage.body).where(TicketMessage.ticket_id == ticket.id, TicketMessage.kind == "villager")
            .order_by(TicketMessage.id).limit(1))).scalar_one_or_none()
        villager = None
        if ticket.openid:
            villager = (
                await session.execute(select(Villager).where(Villager.openid == ticket.openid))
            ).scalar_one_or_none()
        staff_names = (await session.execute(select(StaffUser.display_name))).scalars().all()
        me = await session.get(StaffUser, adm.user(request).id)
        assert me is not None
        number, topic, question = ticket.number, ticket.topic, ticket.summary or first or ""
    names = tuple(n for n in [*(staff_names or []), villager.display_name if villager else None] if n)
    try:
        proposal = await drafts.draft_from_reply(services.session_factory, services.knowledge.kb, question=question,
                                                 reply=body, topic=topic, ticket_number=number, staff=me, names=names)
    except kn.VersionError as exc:
        adm.flash(request, str(exc), "error")
        adm.redirect(request, "admin-ticket", id=request.match_info["id"])
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, "knowledge.draft", object_type="ticket", object_id=request.match_info["id"],
                        details={"proposal": proposal.id})
    _check_later(request, proposal.id)
    adm.flash(request, "已存为问答草稿（去掉了姓名、电话、身份证号和地址），没有发给村民。审核人修改后才能发布。")
    adm.redirect(request, "admin-knowledge-proposal", id=proposal.id)


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/knowledge/proposals", proposals_page, name="admin-knowledge-proposals",
                 roles=adm.ALL)
    adm.add_view(app, "GET", "/admin/knowledge/proposals/new", propose_page, name="admin-knowledge-propose",
                 roles=adm.ALL)
    adm.add_view(app, "POST", "/admin/knowledge/proposals/new", propose_submit, name="admin-knowledge-propose-submit",
                 roles=adm.ALL)
    adm.add_view(app, "GET", r"/admin/knowledge/proposals/{id:\d+}", proposal_page, name="admin-knowledge-proposal",
                 roles=adm.ALL)
    for action, handler in (("edit", proposal_edit), ("approve", proposal_approve), ("reject", proposal_reject),
                            ("withdraw", proposal_withdraw)):
        adm.add_view(app, "POST", rf"/admin/knowledge/proposals/{{id:\d+}}/{action}", handler,
                     name=f"admin-knowledge-proposal-{action}", roles=adm.ALL)
    adm.add_view(app, "POST", r"/admin/tickets/{id:\d+}/knowledge-draft", ticket_draft,
                 name="admin-ticket-knowledge-draft", roles=adm.ALL)
    adm.add_nav(app, "问答建议", "admin-knowledge-proposals", roles=adm.ALL, order=52)


__all__ = ["setup"]
