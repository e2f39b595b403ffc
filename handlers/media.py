"""Voice without recognition, pictures, video, locations and links: never silence."""

from __future__ import annotations

from typing import Any

from bot.routing import Ctx, HandlerResult, Router, TextReply, msg_type

router = Router("media")

KIND_NAMES = {"image": "图片", "video": "视频", "shortvideo": "小视频", "link": "链接"}


@router.on(lambda ctx: ctx.msg.recognition_missing)
async def voice_unrecognised(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return TextReply(ctx.services.texts.get("voice_unrecognised"))


@router.on(msg_type("image", "video", "shortvideo", "link"))
async def media(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    # The push (MediaId, PicUrl, Url) is already stored in inbound_messages for a ticket to show.
    return TextReply(ctx.services.texts.get("media_ack", kind=KIND_NAMES.get(ctx.msg.msg_type, "消息")))


@router.on(msg_type("location"))
async def location(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return TextReply(ctx.services.texts.get("location_ack"))


@router.on(lambda ctx: not ctx.msg.is_event and not ctx.msg.known)
async def unknown_message(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return None
