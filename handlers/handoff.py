""" "转人工": a villager asks for a person. Recorded for the village's mediators."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.routing import Ctx, HandlerResult, Router, TextReply, any_of, click, text_in
from bot.storage.models import HandoffRequest

router = Router("handoff")

HANDOFF_WORDS = (
    "转人工",
    "人工",
    "人工服务",
    "人工客服",
    "找人工",
    "我要咨询",
    "找调解员",
    "找人帮忙",
    "真人",
    "转接人工",
)


async def record_handoff(ctx: Ctx, text: str, *, urgent: bool = False) -> HandoffRequest:
    """One open request per villager: a new ask adds to it; urgency only ever goes up."""
    existing = (
        await ctx.session.execute(
            select(HandoffRequest)
            .where(HandoffRequest.openid == ctx.msg.openid, HandoffRequest.status == "new")
            .order_by(HandoffRequest.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if existing is not None:
        if text and text not in existing.text:
            existing.text = (existing.text + "\n" + text).strip()[:4000]
        existing.urgent = existing.urgent or urgent
        return existing
    request = HandoffRequest(
        openid=ctx.msg.openid,
        village_id=ctx.villager.village_id,
        text=text[:4000],
        urgent=urgent,
        inbound_id=ctx.inbound_id,
        created_at=ctx.now,
    )
    ctx.session.add(request)
    await ctx.session.flush()
    return request


@router.on(any_of(text_in(*HANDOFF_WORDS), click("HANDOFF")))
async def handoff(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    context = ctx.conv.context or {}
    question = str(context.get("last_query") or "")
    had_open = (
        await ctx.session.execute(
            select(HandoffRequest.id)
            .where(HandoffRequest.openid == ctx.msg.openid, HandoffRequest.status == "new")
            .limit(1)
        )
    ).scalar_one_or_none()
    request = await record_handoff(ctx, question)
    ctx.remember(menu=None)
    name = "handoff_exists" if had_open is not None else "handoff_ack"
    return TextReply(ctx.services.texts.get(name, number=request.id))


STATUS_NAMES = {"new": "已登记，等待回复", "answered": "已回复", "closed": "已结束"}


@router.on(any_of(text_in("我的咨询", "咨询进度", "查进度", "我的问题"), click("MY_TICKETS")))
async def my_requests(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    rows = (
        await ctx.session.execute(
            select(HandoffRequest)
            .where(HandoffRequest.openid == ctx.msg.openid)
            .order_by(HandoffRequest.id.desc())
            .limit(5)
        )
    ).scalars()
    lines = [f"编号 {r.id}：{STATUS_NAMES.get(r.status, r.status)}（{r.created_at:%m月%d日}）" for r in rows]
    if not lines:
        return TextReply("您还没有转人工的咨询。需要人帮忙请回复“转人工”。")
    return TextReply("您的咨询：\n" + "\n".join(lines) + "\n要补充情况，直接发消息就行。")
