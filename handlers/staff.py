"""Staff members in chat: "绑定微信 123456" (or the older "预览绑定 123456") from their own WeChat binds it to
their back-office account (the code is on their 我的账号 page), so ticket alerts and campaign previews reach
them. Wrong codes are limited per WeChat (bot.services.staff.MAX_BIND_FAILURES an hour)."""

from __future__ import annotations

from typing import Any

from bot.routing import Ctx, HandlerResult, Router, TextReply, text_prefix
from bot.services import staff

router = Router("staff")


@router.on(text_prefix(*staff.BIND_WORDS))
async def bind_staff_wechat(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    code = "".join(ch for ch in str(data.get("arg", "")) if not ch.isspace())
    result = await staff.bind_with_code(ctx.session, code, ctx.msg.openid, now=ctx.now)
    texts = ctx.services.texts
    if result == "ok":
        return TextReply(texts.get("staff_bind_done"))
    if result == "blocked":
        return TextReply(texts.get("staff_bind_blocked", max=staff.MAX_BIND_FAILURES))
    return TextReply(texts.get("staff_bind_failed"))
