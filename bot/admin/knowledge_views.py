"""The knowledge page: the township's layer in use, what villagers asked that the FAQ could not answer
(grouped, each with one-click "加为某条问答的问法" and "写新问答"), answers due for review against the
law, entries a new release changed after the township replaced them, the version history with
restore, and "重新加载知识库". Proposals and their review are in knowledge_review_views.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from bot.admin import framework as adm
from bot.knowledge import KnowledgeBase
from bot.knowledge.currency import book, review_due
from bot.services import knowledge as kn
from bot.services.knowledge import proposals as props
from bot.services.knowledge import versions
from bot.services.knowledge.layer import to_staff
from bot.services.privacy import mask_phones
from bot.storage.models import KnowledgeGap, utcnow
from bot.storage.staff import StaffUser

GAP_DAYS_CHOICES = (7, 30, 90)
GAP_GROUPS = 30
TARGETS = 3  # the matcher's best entries offered as one-click targets


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


async def is_reviewer(request: web.Request) -> bool:
    async with adm.db(request)() as session:
        return versions.can_publish(await session.get(StaffUser, adm.user(request).id))


def gap_groups(knowledge: kn.Knowledge, rows: list[Any], pending: dict[str, int]) -> list[dict[str, Any]]:
    """Repeated questions with what staff can do about each: the best entries (by title) or 写新问答."""
    kb = knowledge.kb
    groups = []
    for normalized, count, raw_sample, last in rows:
        # questions kept from before phone numbers were taken out at the door: masked here
        sample = mask_phones(raw_sample)
        result = knowledge.match(sample)
        answered = result.entry if result.outcome == "answer" else None
        groups.append({
            "normalized": mask_phones(normalized),
            "count": count,
            "sample": sample,
            "last": last,
            "answered": kb.fill(answered.question) if answered else "",
            "targets": [] if answered else [
                {"key": props.entry_key(c.entry.id), "title": kb.fill(c.entry.question),
                 "topic": kb.topic_name(c.entry.topic), "level": kn.match_level(c.score)}
                for c in result.candidates[:TARGETS]
            ],
            "proposal": pending.get(sample),
        })
    return groups


def flag_rows(knowledge: kn.Knowledge) -> list[dict[str, Any]]:
    rows = []
    for flag in knowledge.flags:
        diffs = []
        if flag.kind == "release_changed":
            for key in ("answer", "next_step", "details", "basis"):
                before = to_staff(props.as_text((flag.shipped_before or {}).get(key)))
                now = to_staff(props.as_text((flag.shipped_now or {}).get(key)))
                if before != now:
                    local = (flag.local or {}).get(key)
                    diffs.append({"label": props.FIELD_LABELS[key], "segments": props.segments(before, now),
                                  "local": to_staff(props.as_text(local)) if local is not None else ""})
        rows.append({"key": props.entry_key(flag.entry_id), "kind": flag.kind, "title": flag.title,
                     "detail": flag.detail, "diffs": diffs})
    return rows


async def knowledge_page(request: web.Request) -> web.StreamResponse:
    try:
        days = int(request.query.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in GAP_DAYS_CHOICES else 30
    since = utcnow() - dt.timedelta(days=days)
    services = adm.services(request)
    holder = services.knowledge_holder
    knowledge = services.knowledge
    kb = knowledge.kb
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
                select(KnowledgeGap.normalized, func.count().label("n"), func.max(KnowledgeGap.text),
                       func.max(KnowledgeGap.created_at))
                .where(KnowledgeGap.created_at >= since)
                .group_by(KnowledgeGap.normalized)
                .order_by(func.count().desc(), func.max(KnowledgeGap.created_at).desc())
                .limit(GAP_GROUPS)
            )
        ).all()
        pending = await props.listing(session, "pending")
        history = await versions.history(session, limit=1)
        me = await session.get(StaffUser, adm.user(request).id)
        await adm.audit(session, request, "knowledge.gaps_view", object_type="knowledge", details={"days": days})
    pending_texts = {str(p.payload.get("text")): p.id for p in pending if p.kind == "variant"}
    topics: dict[str, int] = {}
    groups = gap_groups(knowledge, [tuple(r) for r in repeated], pending_texts)
    for group in groups:
        if group["targets"]:
            name = group["targets"][0]["topic"]
            topics[name] = topics.get(name, 0) + int(group["count"])
    return await adm.render(
        request,
        "admin/knowledge.html",
        {
            "days": days,
            "choices": GAP_DAYS_CHOICES,
            "by_outcome": by_outcome,
            "groups": groups,
            "near_topics": sorted(topics.items(), key=lambda kv: -kv[1]),
            "due": due_for_review(kb),
            "entries": len(kb.entries),
            "topics_count": len(kb.topics),
            "loaded_at": knowledge.loaded_at,
            "errors": holder.errors,
            "version": history[0] if history else None,
            "layer": knowledge.layer.describe() if not knowledge.layer.empty else "",
            "pending_count": len(pending),
            "flags": flag_rows(knowledge),
            "reviewer": versions.can_publish(me),
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


async def gap_to_variant(request: web.Request) -> web.StreamResponse:
    """One click on a gap: propose the villager's words as a phrasing of the chosen entry."""
    data = await adm.form(request)
    services = adm.services(request)
    text = adm.field_text(data, "text", 200)
    entry_id = props.entry_by_key(services.knowledge.kb, adm.field_text(data, "entry", 64)) or ""
    async with adm.db(request)() as session:
        me = await session.get(StaffUser, adm.user(request).id)
    try:
        proposal = await kn.propose(services.session_factory, services.knowledge.kb, kind="variant", entry_id=entry_id,
                                    payload={"text": text}, by=me, source="gap", source_ref=text[:64])
    except kn.ProposalError as exc:
        adm.flash(request, str(exc), "error")
        adm.redirect(request, "admin-knowledge")
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, "knowledge.propose", object_type="knowledge_proposal", object_id=proposal.id,
                        details={"kind": "variant", "entry_id": entry_id, "from": "gap"})
    services.spawn(kn.refresh_checks(services.session_factory, services.knowledge_holder, proposal.id),
                   name=f"kb-checks-{proposal.id}")
    target = props.title(services.knowledge.kb, entry_id)
    adm.flash(request, f"已提建议：把“{text}”加为“{target}”的问法，等审核人发布。")
    adm.redirect(request, "admin-knowledge-proposal", id=proposal.id)


# ---------------------------------------------------------------- versions and reviewers' decisions
async def versions_page(request: web.Request) -> web.StreamResponse:
    async with adm.db(request)() as session, session.begin():
        rows = await versions.history(session)
        me = await session.get(StaffUser, adm.user(request).id)
        await adm.audit(session, request, "knowledge.versions_view", object_type="knowledge")
    in_use = adm.services(request).knowledge_holder.version
    items = [
        {"v": v, "action": versions.ACTION_NAMES.get(v.action, v.action), "in_use": v.id == in_use,
         "describe": kn.Layer.from_json(v.layer).describe()}
        for v in rows
    ]
    return await adm.render(request, "admin/knowledge_versions.html",
                            {"items": items, "reviewer": versions.can_publish(me), "in_use": in_use},
                            title="本乡问答的版本")


async def _publish_action(request: web.Request, action: str, work: Any) -> web.StreamResponse:
    services = adm.services(request)
    try:
        row: Any = await work(services)
    except kn.VersionError as exc:
        adm.flash(request, str(exc), "error")
        adm.redirect(request, "admin-knowledge-versions" if action == "knowledge.restore" else "admin-knowledge")
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, action, object_type="knowledge_version", object_id=row.id,
                        details={"summary": row.summary, "reason": row.reason})
    adm.flash(request, f"已发布第 {row.id} 版：{row.summary}。各个服务进程几秒内用上。")
    adm.redirect(request, "admin-knowledge-versions" if action == "knowledge.restore" else "admin-knowledge")


async def restore_version(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    reason = adm.field_text(data, "reason", 500)
    version_id = int(request.match_info["id"])
    user_id = adm.user(request).id
    if not await is_reviewer(request):
        adm.forbid("只有有“法律审核”权限的乡管理员可以恢复旧版本。")

    async def work(services: Any) -> Any:
        return await versions.restore(services.session_factory, services.settings, services.knowledge_holder,
                                      version_id, user_id, reason)

    return await _publish_action(request, "knowledge.restore", work)


def _flag_action(keep: bool) -> adm.Handler:
    async def view(request: web.Request) -> web.StreamResponse:
        data = await adm.form(request)
        keys = {props.entry_key(f.entry_id): f.entry_id for f in adm.services(request).knowledge.flags}
        entry_id = keys.get(request.match_info["entry"])
        if entry_id is None:
            adm.flash(request, "这条已经处理过了。", "warn")
            adm.redirect(request, "admin-knowledge")
        user_id = adm.user(request).id
        if not await is_reviewer(request):
            adm.forbid("只有有“法律审核”权限的乡管理员可以做这个决定。")

        async def work(services: Any) -> Any:
            return await versions.resolve_flag(services.session_factory, services.settings,
                                               services.knowledge_holder, entry_id, user_id, keep,
                                               adm.field_text(data, "reason", 500))

        return await _publish_action(request, "knowledge.review", work)

    view.__name__ = "flag_keep" if keep else "flag_release"
    return view


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/knowledge", knowledge_page, name="admin-knowledge", roles=adm.ADMIN)
    adm.add_view(
        app, "POST", "/admin/knowledge/reload", reload_knowledge, name="admin-knowledge-reload", roles=adm.ADMIN
    )
    adm.add_view(app, "POST", "/admin/knowledge/gaps/variant", gap_to_variant, name="admin-knowledge-gap-variant",
                 roles=adm.ADMIN)
    adm.add_view(app, "GET", "/admin/knowledge/versions", versions_page, name="admin-knowledge-versions",
                 roles=adm.ADMIN)
    adm.add_view(app, "POST", r"/admin/knowledge/versions/{id:\d+}/restore", restore_version,
                 name="admin-knowledge-restore", roles=adm.ADMIN)
    adm.add_view(app, "POST", r"/admin/knowledge/flags/{entry:[0-9a-f]+}/keep", _flag_action(True),
                 name="admin-knowledge-flag-keep", roles=adm.ADMIN)
    adm.add_view(app, "POST", r"/admin/knowledge/flags/{entry:[0-9a-f]+}/release", _flag_action(False),
                 name="admin-knowledge-flag-release", roles=adm.ADMIN)
    adm.add_nav(app, "知识库", "admin-knowledge", roles=adm.ADMIN, order=50)


__all__ = ["due_for_review", "setup"]
