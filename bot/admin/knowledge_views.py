"""The knowledge page: answers due for review against the law, what villagers asked that the FAQ
could not answer, and "重新加载知识库"."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from sqlalchemy import func, select

from bot.admin import framework as adm
from bot.knowledge import KnowledgeBase
from bot.knowledge.currency import book, review_due
from bot.services.knowledge import match_level
from bot.services.privacy import mask_phones
from bot.storage.models import KnowledgeGap, utcnow

GAP_DAYS_CHOICES = (7, 30, 90)
OUTCOME_NAMES = {"clarify": "让村民选", "handoff": "答不上", "answer": "已回答", "smalltalk": "打招呼"}


def candidate_titles(kb: KnowledgeBase, candidates: list[object], count: int = 3) -> list[dict[str, str]]:
    """A gap's nearest FAQ entries as staff read them: the entry's question and 匹配度 高/中/低."""
    out = []
    for c in candidates[:count]:
        if isinstance(c, dict) and c.get("entry_id") in kb.by_id:
            out.append({"title": kb.fill(kb.by_id[c["entry_id"]].question), "level": match_level(c.get("score"))})
    return out


def due_for_review(kb: KnowledgeBase) -> list[dict[str, object]]:
    """The entries to check again against the law, as the page shows them: titles, never ids."""
    return [
        {
            "question": kb.fill(d.entry.question),
            "topic": kb.topic_name(d.entry.topic),
            "reviewed": d.entry.reviewed,
            "reasons": [
                {"law": book(r.law), "version": r.version, "in_force": r.in_force, "why": r.why} for r in d.reasons
            ],
        }
        for d in review_due(kb)
    ]


async def knowledge_page(request: web.Request) -> web.StreamResponse:
    try:
        days = int(request.query.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in GAP_DAYS_CHOICES else 30
    since = utcnow() - dt.timedelta(days=days)
    services = adm.services(request)
    holder = services.knowledge_holder
    kb = services.knowledge.kb
    async with adm.db(request)() as session, session.begin():
        by_outcome = dict(
            (
                await session.execute(
                    select(KnowledgeGap.outcome, func.count())
                    .where(KnowledgeGap.created_at >= since)
                    .group_by(KnowledgeGap.outcome)
                )
            ).all()
        )
        repeated = (
            await session.execute(
                select(KnowledgeGap.normalized, func.count().label("n"), func.max(KnowledgeGap.text))
                .where(KnowledgeGap.created_at >= since)
                .group_by(KnowledgeGap.normalized)
                .order_by(func.count().desc(), KnowledgeGap.normalized)
                .limit(30)
            )
        ).all()
        recent = list(
            (
                await session.execute(
                    select(KnowledgeGap)
                    .where(KnowledgeGap.created_at >= since)
                    .order_by(KnowledgeGap.id.desc())
                    .limit(50)
                )
            ).scalars()
        )
        await adm.audit(session, request, "knowledge.gaps_view", object_type="knowledge", details={"days": days})
    topics: dict[str, int] = {}
    for gap in recent:
        for candidate in gap.candidates[:1]:
            if isinstance(candidate, dict) and candidate.get("topic"):
                name = kb.topic_name(str(candidate["topic"]))
                topics[name] = topics.get(name, 0) + 1
    return await adm.render(
        request,
        "admin/knowledge.html",
        {
            "days": days,
            "choices": GAP_DAYS_CHOICES,
            "by_outcome": by_outcome,
            # questions kept from before phone numbers were taken out at the door: masked here
            "repeated": [
                {"normalized": mask_phones(r[0]), "count": r[1], "sample": mask_phones(r[2])} for r in repeated
            ],
            "recent": [
                {
                    "text": mask_phones(g.text),
                    "created_at": g.created_at,
                    "outcome": g.outcome,
                    "nearest": candidate_titles(kb, g.candidates),
                }
                for g in recent
            ],
            "near_topics": sorted(topics.items(), key=lambda kv: -kv[1]),
            "due": due_for_review(kb),
            "entries": len(kb.entries),
            "topics_count": len(kb.topics),
            "loaded_at": services.knowledge.loaded_at,
            "errors": holder.last_errors,
            "outcome_names": OUTCOME_NAMES,
        },
        title="知识库",
    )


async def reload_knowledge(request: web.Request) -> web.StreamResponse:
    errors = await adm.services(request).knowledge_holder.reload()
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, "knowledge.reload", object_type="knowledge", details={"errors": errors[:20]})
    if errors:
        adm.flash(request, f"知识库有 {len(errors)} 处错误，没有加载，仍在用旧的版本。详情见下方。", "error")
    else:
        adm.flash(request, f"已重新加载知识库：{len(adm.services(request).knowledge.kb.entries)} 条问答。")
    adm.redirect(request, "admin-knowledge")


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/knowledge", knowledge_page, name="admin-knowledge", roles=adm.ADMIN)
    adm.add_view(
        app, "POST", "/admin/knowledge/reload", reload_knowledge, name="admin-knowledge-reload", roles=adm.ADMIN
    )
    adm.add_nav(app, "知识库", "admin-knowledge", roles=adm.ADMIN, order=50)
