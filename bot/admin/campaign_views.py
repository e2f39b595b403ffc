"""Back-office pages of legal-education campaigns (issue 7).

A mediator or an admin drafts, edits, previews to their own WeChat and submits; only an admin
approves (quota checked), sends a scheduled campaign back to draft, or cancels it. Every change is
audited. Sending itself happens in the periodic job (bot.services.campaigns.tick) through the outbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin import framework as adm
from bot.services import campaigns as svc
from bot.services import staff as staff_svc
from bot.services.campaigns import Actor, CampaignError, CampaignInput
from bot.storage.campaigns import Campaign, StaffWeChat, VillageTagMember
from bot.storage.models import Village, Villager, utcnow
from bot.wechat.errors import WeChatError

STATUS_FILTERS = ("", "draft", "awaiting_approval", "scheduled", "sending", "sent", "failed", "cancelled")
SUGGESTION_DAYS = 60
FORM_TIME = "%Y-%m-%dT%H:%M"


# ---------------------------------------------------------------- helpers
def plain_actor(request: web.Request, openid: str | None = None) -> Actor:
    staff = adm.user(request)
    return Actor(staff.id, staff.label, staff.role, openid, tuple(staff.village_ids))


async def actor(request: web.Request, session: AsyncSession) -> Actor:
    return plain_actor(request, await staff_svc.staff_openid(session, adm.user(request).id))


def campaign_id(request: web.Request) -> int:
    try:
        value = int(request.match_info["id"])
    except (KeyError, ValueError):
        adm.not_found("没有这个活动。")
    if not 0 < value < 2**31:  # the column's range: a bigger number is no campaign, not a database error
        adm.not_found("没有这个活动。")
    return value


async def load(session: AsyncSession, request: web.Request) -> Campaign:
    """The campaign in the URL: 404 if there is none, 403 if it is not the user's to see."""
    c = await session.get(Campaign, campaign_id(request))
    if c is None:
        adm.not_found("没有这个活动。")
    if not svc.can_see(plain_actor(request), c):
        adm.forbid("这个普法活动不归您管，不能查看或修改。")
    return c


def _scoped(handler: adm.Handler) -> adm.Handler:
    """Every route with a campaign ``{id}``: the scope check runs before the view (and before reading a form)."""

    async def view(request: web.Request) -> web.StreamResponse:
        async with adm.db(request)() as session:
            await load(session, request)
        return await handler(request)

    view.__name__ = getattr(handler, "__name__", "campaign_view")
    return view


def to_form_time(value: dt.datetime | None) -> str:
    return svc.china_time(value).strftime(FORM_TIME) if value is not None else ""


def parse_form_time(raw: str) -> dt.datetime | None:
    """``datetime-local`` in Beijing time → UTC; '' → None. ValueError on nonsense."""
    raw = raw.strip()
    if not raw:
        return None
    for fmt in (FORM_TIME, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            local = dt.datetime.strptime(raw, fmt)
        except ValueError:
            continue
        if not adm.FIRST_DAY <= local.date() <= adm.LAST_DAY:
            raise ValueError(raw)
        return local.replace(tzinfo=svc.CHINA_TZ).astimezone(dt.UTC)
    raise ValueError(raw)


def input_from_form(data: Mapping[str, Any], village_values: list[str]) -> tuple[CampaignInput, list[str]]:
    errors: list[str] = []
    times: dict[str, dt.datetime | None] = {}
    for name, label in (("scheduled_at", "发送时间"), ("follow_up_at", "提醒时间")):
        try:
            times[name] = parse_form_time(adm.field_text(data, name, 40))
        except ValueError:
            errors.append(f"{label}格式不对。")
            times[name] = None
    village_ids = []
    for raw in village_values:
        if raw.isdigit() and int(raw) <= adm.MAX_ID:
            village_ids.append(int(raw))
        else:
            errors.append("村的选择不对。")
    result = CampaignInput(
        title=adm.field_text(data, "title", 200),
        kind=adm.field_text(data, "kind", 10) or "text",
        text=adm.field_text(data, "text", 5000),
        article_title=adm.field_text(data, "article_title", 200),
        article_description=adm.field_text(data, "article_description", 2000),
        article_url=adm.field_text(data, "article_url", 2000),
        article_cover_url=adm.field_text(data, "article_cover_url", 2000),
        audience=adm.field_text(data, "audience", 10) or "all",
        village_ids=village_ids,
        openids=svc.parse_openids(adm.field_text(data, "openids", 1_000_000)),
        scheduled_at=times["scheduled_at"],
        follow_up_text=adm.field_text(data, "follow_up_text", 2000),
        follow_up_at=times["follow_up_at"],
        archive=data.get("archive") == "1",
        calendar_id=adm.field_text(data, "calendar_id", 64) or None,
    )
    return result, errors


def form_values(data: CampaignInput) -> dict[str, Any]:
    return {
        "title": data.title,
        "kind": data.kind,
        "text": data.text,
        "article_title": data.article_title,
        "article_description": data.article_description,
        "article_url": data.article_url,
        "article_cover_url": data.article_cover_url,
        "audience": data.audience,
        "village_ids": set(data.village_ids),
        "openids": "\n".join(data.openids),
        "scheduled_at": to_form_time(data.scheduled_at),
        "follow_up_text": data.follow_up_text,
        "follow_up_at": to_form_time(data.follow_up_at),
        "archive": data.archive,
        "calendar_id": data.calendar_id or "",
    }


def labels() -> dict[str, Any]:
    return {
        "status_labels": svc.STATUS_LABELS,
        "audience_labels": svc.AUDIENCE_LABELS,
        "kind_labels": svc.KIND_LABELS,
        "china": lambda value, fmt="%Y-%m-%d %H:%M": svc.china_time(value).strftime(fmt) if value else "",
    }


def calendar_items(request: web.Request) -> list[svc.CalendarItem]:
    path = svc.calendar_path(adm.services(request).settings)
    try:
        return svc.load_calendar(path)
    except (OSError, ValueError):
        return []


async def village_counts(session: AsyncSession) -> dict[int, int]:
    rows = await session.execute(
        select(Villager.village_id, func.count())
        .where(Villager.subscribed.is_(True), Villager.village_id.is_not(None))
        .group_by(Villager.village_id)
    )
    return {int(v): int(n) for v, n in rows.all() if v is not None}


async def render_form(
    request: web.Request,
    values: dict[str, Any],
    *,
    c: Campaign | None,
    errors: list[str],
    status: int = 200,
) -> web.Response:
    """The create/edit form. Holds no database session while rendering (the layout's hooks open their own)."""
    settings = adm.services(request).settings
    staff = adm.user(request)
    async with adm.db(request)() as session:
        quota = await svc.quota_status(session, settings)
        villages = await svc.village_names(session, active_only=True)
        counts = await village_counts(session)
    if not staff.is_admin:  # a mediator addresses all followers or their own villages, never an openid list
        villages = {vid: name for vid, name in villages.items() if vid in staff.village_ids}
    return await adm.render(
        request,
        "admin/campaigns_form.html",
        {
            "c": c,
            "f": values,
            "errors": errors,
            "villages": villages,
            "village_counts": counts,
            "quota": quota,
            "account_type": settings.wechat_account_type,
            "openid_lists": staff.is_admin and settings.wechat_account_type == "service",
            "limits": {"title": svc.MAX_TITLE, "text": svc.MAX_TEXT, "description": svc.MAX_DESCRIPTION},
            **labels(),
        },
        title=f"修改：{c.title}" if c is not None else "新建普法活动",
        status=status,
    )


def back_to(request: web.Request, c_id: int) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(adm.url(request, "admin-campaign", id=c_id))


# ---------------------------------------------------------------- list, new, edit
async def campaign_list(request: web.Request) -> web.StreamResponse:
    status = request.query.get("status", "")
    status = status if status in STATUS_FILTERS else ""
    settings = adm.services(request).settings
    today = svc.china_time(utcnow()).date()
    me = plain_actor(request)
    async with adm.db(request)() as session:
        campaigns = await svc.list_campaigns(session, status=status or None, actor=me)
        quota = await svc.quota_status(session, settings)
        names = await svc.village_names(session)
        waiting = len(await svc.list_campaigns(session, status="awaiting_approval", actor=me))
    return await adm.render(
        request,
        "admin/campaigns_list.html",
        {
            "campaigns": campaigns,
            "status": status,
            "statuses": STATUS_FILTERS,
            "quota": quota,
            "village_names": names,
            "waiting": waiting,
            "suggestions": svc.upcoming(calendar_items(request), today, SUGGESTION_DAYS),
            **labels(),
        },
        title="普法活动",
    )


async def new_page(request: web.Request) -> web.StreamResponse:
    data = CampaignInput(title="")
    picked = request.query.get("calendar", "")
    for item in calendar_items(request):
        if item.id == picked:
            data = CampaignInput(title=item.title, text=item.text, calendar_id=item.id)
    return await render_form(request, form_values(data), c=None, errors=[])


async def create(request: web.Request) -> web.StreamResponse:
    post = await adm.form(request)
    data, errors = input_from_form(post, post.getall("village_ids", []))
    created: int | None = None
    async with adm.db(request)() as session, session.begin():
        if not errors:
            try:
                c = await svc.create_campaign(
                    session, await actor(request, session), data, settings=adm.services(request).settings
                )
            except CampaignError as exc:
                errors = exc.errors
            else:
                await adm.audit(
                    session, request, "campaign.create", object_type="campaign", object_id=c.id, details=_summary(c)
                )
                created = c.id
    if created is not None:  # redirect after the commit (an exception inside the block would roll back)
        adm.flash(request, "草稿已保存。先“预览到我的微信”看看，再提交审批。")
        raise back_to(request, created)
    return await render_form(request, form_values(data), c=None, errors=errors, status=400)


async def edit_page(request: web.Request) -> web.StreamResponse:
    async with adm.db(request)() as session, session.begin():
        c = await load(session, request)
        if c.audience == "openids" and not adm.user(request).is_admin:
            adm.forbid("按 openid 名单群发的活动只有乡管理员可以修改。")
        if c.status in svc.EDITABLE and c.openids:  # the openid list is shown in the form
            await adm.audit(
                session,
                request,
                "campaign.view_openids",
                object_type="campaign",
                object_id=c.id,
                details={"openids": len(c.openids)},
            )
    if c.status not in svc.EDITABLE:
        adm.flash(request, f"“{svc.STATUS_LABELS[c.status]}”的活动不能修改。", "error")
        raise back_to(request, c.id)
    return await render_form(request, form_values(CampaignInput.from_campaign(c)), c=c, errors=[])


async def update(request: web.Request) -> web.StreamResponse:
    post = await adm.form(request)
    data, errors = input_from_form(post, post.getall("village_ids", []))
    saved = False
    async with adm.db(request)() as session, session.begin():
        c = await load(session, request)
        if not errors:
            try:
                c = await svc.update_campaign(
                    session, await actor(request, session), c.id, data, settings=adm.services(request).settings
                )
            except CampaignError as exc:
                errors = exc.errors
            else:
                await adm.audit(
                    session, request, "campaign.update", object_type="campaign", object_id=c.id, details=_summary(c)
                )
                saved = True
    if saved:
        adm.flash(request, "已保存。内容改过的，需要重新预览。")
        raise back_to(request, c.id)
    return await render_form(request, form_values(data), c=c, errors=errors, status=400)


def _summary(c: Campaign) -> dict[str, Any]:
    return {
        "title": c.title,
        "status": c.status,
        "version": c.version,
        "audience": c.audience,
        "village_ids": list(c.village_ids),
        "openids": len(c.openids),
        "scheduled_at": c.scheduled_at.isoformat() if c.scheduled_at else None,
    }


# ---------------------------------------------------------------- the campaign page
async def campaign_page(request: web.Request) -> web.StreamResponse:
    settings = adm.services(request).settings
    staff = adm.user(request)
    async with adm.db(request)() as session:
        c = await load(session, request)
        previews = await svc.previews(session, c.id)
        parts = await svc.campaign_parts(session, c.id)
        check = (
            await svc.check_quota(session, settings, c, planned=True)
            if c.status in ("draft", "awaiting_approval")
            else None
        )
        binding = await session.get(StaffWeChat, staff.id)
        names = await svc.village_names(session)
    now = utcnow()
    code_valid = (
        binding is not None
        and binding.code is not None
        and binding.code_expires_at is not None
        and binding.code_expires_at > now
    )
    return await adm.render(
        request,
        "admin/campaigns_detail.html",
        {
            "c": c,
            "message": svc.message_text(c),
            "mpnews_ready": svc.mpnews_ready(c),
            "previews": previews,
            "preview_ok": any(p.preview.version == c.version and p.status == "sent" for p in previews),
            "parts": parts,
            "check": check,
            "village_names": names,
            "my_openid": binding.openid if binding is not None else None,
            "bind_code": binding.code if binding is not None and code_valid else None,
            "bind_word": staff_svc.BIND_WORD,
            "can_edit": c.status in svc.EDITABLE,
            "can_submit": c.status == "draft",
            "can_preview": c.status in (*svc.EDITABLE, "scheduled"),
            "can_approve": staff.is_admin and c.status in ("draft", "awaiting_approval"),
            "can_return": staff.is_admin and c.status in ("awaiting_approval", "scheduled"),
            "can_cancel": c.status in ("draft", "awaiting_approval") or (staff.is_admin and c.status == "scheduled"),
            "job_label": svc.job_status_label,
            "public_url": adm.url(request, "campaigns-public-detail", campaign_id=c.id)
            if c.status == "sent" and c.archive
            else "",
            **labels(),
        },
        title=c.title,
    )


async def _action(request: web.Request, action: str) -> web.StreamResponse:
    """The POST buttons of the campaign page; a refusal comes back as a flash message."""
    settings = adm.services(request).settings
    c_id = campaign_id(request)
    post = await adm.form(request)
    try:
        async with adm.db(request)() as session, session.begin():
            who = await actor(request, session)
            details: dict[str, Any] = {}
            if action == "submit":
                c = await svc.submit(session, who, c_id)
                message = "已提交，等管理员审批。"
            elif action == "preview":
                preview = await svc.request_preview(session, who, c_id)
                c = await svc.get_campaign(session, c_id)
                details = {"openid": preview.openid, "version": preview.version}
                message = "预览已发出，请在微信里查看（几秒钟后刷新本页看发送结果）。"
            elif action == "approve":
                reason = adm.field_text(post, "reason", 300)
                unseen = not await svc.preview_ok(session, await svc.get_campaign(session, c_id))
                c = await svc.approve(session, who, c_id, settings=settings, without_preview_reason=reason)
                details = {"without_preview": reason} if unseen else {}
                when = svc.china_time(c.scheduled_at).strftime("%m-%d %H:%M") if c.scheduled_at else "马上"
                message = f"已审批，{when}群发。"
            elif action == "return":
                note = adm.field_text(post, "note", 500)
                c = await svc.return_to_draft(session, who, c_id, note)
                details = {"note": note}
                message = "已退回草稿。"
            elif action == "cancel":
                c = await svc.cancel(session, who, c_id)
                message = "活动已取消。"
            else:  # pragma: no cover - routes are fixed
                adm.not_found()
            await adm.audit(
                session,
                request,
                f"campaign.{action}",
                object_type="campaign",
                object_id=c.id,
                details={**_summary(c), **details},
            )
    except svc.NotFound:
        adm.not_found("没有这个活动。")
    except svc.PermissionDenied as exc:
        adm.forbid(exc.message)
    except CampaignError as exc:
        async with adm.db(request)() as session, session.begin():
            await adm.audit(
                session,
                request,
                f"campaign.{action}_refused",
                object_type="campaign",
                object_id=c_id,
                details={"reason": exc.message},
            )
        adm.flash(request, exc.message, "error")
        raise back_to(request, c_id) from None
    adm.flash(request, message)
    raise back_to(request, c_id)


async def submit(request: web.Request) -> web.StreamResponse:
    return await _action(request, "submit")


async def preview(request: web.Request) -> web.StreamResponse:
    return await _action(request, "preview")


async def approve(request: web.Request) -> web.StreamResponse:
    return await _action(request, "approve")


async def return_to_draft(request: web.Request) -> web.StreamResponse:
    return await _action(request, "return")


async def cancel(request: web.Request) -> web.StreamResponse:
    return await _action(request, "cancel")


# ---------------------------------------------------------------- the staff member's own WeChat
async def wechat_bind(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    post = await adm.form(request)
    back = adm.field_text(post, "back", 20)
    async with adm.db(request)() as session, session.begin():
        code = await staff_svc.binding_code(session, staff.id)
        await adm.audit(session, request, "campaign.wechat_bind_code", object_type="staff", object_id=staff.id)
    adm.flash(
        request,
        f"请用您自己的微信给公众号发送：{staff_svc.BIND_WORD} {code}（10分钟内有效），发完刷新本页。",
        "warn",
    )
    return _back(request, back)


async def wechat_unbind(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    post = await adm.form(request)
    async with adm.db(request)() as session, session.begin():
        await staff_svc.unbind(session, staff.id)
        await adm.audit(session, request, "campaign.wechat_unbind", object_type="staff", object_id=staff.id)
    adm.flash(request, "已解除绑定。")
    return _back(request, adm.field_text(post, "back", 20))


def _back(request: web.Request, back: str) -> web.StreamResponse:
    if back.isdigit():
        raise back_to(request, int(back))
    adm.redirect(request, "admin-campaigns")


# ---------------------------------------------------------------- village tags
async def tags_page(request: web.Request) -> web.StreamResponse:
    async with adm.db(request)() as session:
        villages = list((await session.execute(select(Village).order_by(Village.id))).scalars())
        counts = await village_counts(session)
        tagged = {
            int(v): int(n)
            for v, n in (
                await session.execute(
                    select(VillageTagMember.village_id, func.count()).group_by(VillageTagMember.village_id)
                )
            ).all()
        }
    return await adm.render(
        request,
        "admin/campaigns_tags.html",
        {"villages": villages, "counts": counts, "tagged": tagged, "tag_name": svc.tag_name},
        title="村标签",
    )


async def tags_sync(request: web.Request) -> web.StreamResponse:
    """Sync now (the periodic job does it too, a few batches at a time)."""
    sf = adm.db(request)
    try:
        result = await svc.sync_village_tags(sf, adm.wechat(request), max_batches=200)
    except WeChatError as exc:
        adm.flash(request, f"同步失败：{exc.reason}", "error")
        adm.redirect(request, "admin-campaign-tags")
    async with sf() as session, session.begin():
        await adm.audit(
            session,
            request,
            "campaign.tags_sync",
            object_type="village_tags",
            details={"tagged": result.tagged, "untagged": result.untagged, "errors": result.errors[:5]},
        )
    text = f"已同步：新打标签 {result.tagged} 人，移除 {result.untagged} 人。"
    if result.pending:
        text += f"还有 {result.pending} 人稍后自动同步。"
    if result.errors:
        adm.flash(request, text + " 出错：" + "；".join(result.errors[:3]), "error")
    else:
        adm.flash(request, text)
    adm.redirect(request, "admin-campaign-tags")


def setup(app: web.Application) -> None:
    def add(app: web.Application, method: str, path: str, handler: adm.Handler, **kw: Any) -> None:
        adm.add_view(app, method, path, _scoped(handler) if "{id" in path else handler, **kw)

    one = r"/admin/campaigns/{id:\d+}"
    add(app, "GET", "/admin/campaigns", campaign_list, name="admin-campaigns", roles=adm.STAFF)
    add(app, "GET", "/admin/campaigns/new", new_page, name="admin-campaign-new", roles=adm.STAFF)
    add(app, "POST", "/admin/campaigns/new", create, name="admin-campaign-create", roles=adm.STAFF)
    add(app, "GET", one, campaign_page, name="admin-campaign", roles=adm.STAFF)
    add(app, "GET", one + "/edit", edit_page, name="admin-campaign-edit", roles=adm.STAFF)
    add(app, "POST", one + "/edit", update, name="admin-campaign-update", roles=adm.STAFF)
    add(app, "POST", one + "/submit", submit, name="admin-campaign-submit", roles=adm.STAFF)
    add(app, "POST", one + "/preview", preview, name="admin-campaign-preview", roles=adm.STAFF)
    add(app, "POST", one + "/approve", approve, name="admin-campaign-approve", roles=adm.ADMIN)
    add(app, "POST", one + "/send-back", return_to_draft, name="admin-campaign-send-back", roles=adm.ADMIN)
    add(app, "POST", one + "/cancel", cancel, name="admin-campaign-cancel", roles=adm.STAFF)
    add(app, "POST", "/admin/campaigns/wechat", wechat_bind, name="admin-campaign-wechat-bind", roles=adm.STAFF)
    add(
        app,
        "POST",
        "/admin/campaigns/wechat/unbind",
        wechat_unbind,
        name="admin-campaign-wechat-unbind",
        roles=adm.STAFF,
    )
    add(app, "GET", "/admin/campaigns/tags", tags_page, name="admin-campaign-tags", roles=adm.ADMIN)
    add(app, "POST", "/admin/campaigns/tags", tags_sync, name="admin-campaign-tags-sync", roles=adm.ADMIN)
    adm.add_nav(app, "普法活动", "admin-campaigns", roles=adm.STAFF, order=50)
