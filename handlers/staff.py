"""Staff members in chat: "绑定微信 123456" (or the older "预览绑定 123456") from their own WeChat binds it to
their back-office account (the code is on their 我的账号 page), so ticket alerts and campaign previews reach
them. Codes are limited per WeChat (bot.services.staff.MAX_BIND_FAILURES an hour, counted atomically)."""

from __future__ import annotations

from typing import Any

from bot.routing import Ctx, HandlerResult, Router, TextReply, text_prefix
from bot.services import staff

router = Router("staff")


@router.on(text_prefix(*staff.BIND_WORDS))
async def bind_staff_wechat(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    texts = ctx.services.texts
    # every try counts, atomically and before the code is looked at: parallel guesses cannot slip through
    tries = await ctx.services.attempts.hit([f"bind:{ctx.msg.openid}"], staff.BIND_FAILURE_WINDOW, session=ctx.session)
    if tries[0] > staff.MAX_BIND_FAILURES:
        return TextReply(texts.get("staff_bind_blocked", max=staff.MAX_BIND_FAILURES))
    code = "".join(ch for ch in str(data.get("arg", "")) if not ch.isspace())
    result = await staff.bind_with_code(ctx.session, code, ctx.msg.openid, now=ctx.now)
    if result == "ok":
        return TextReply(texts.get("staff_bind_done"))
    return TextReply(texts.get("staff_bind_failed"))
