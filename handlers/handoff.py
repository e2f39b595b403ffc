"""转人工 → a ticket: the guided intake, follow-up chat, 补充, 我的咨询, satisfaction and 删除我的信息.

Intake (states ``ticket.*``, one question at a time, "取消" leaves at any step):
``ticket.question`` "是这件事吗？" — only when the villager's last question is older than
:data:`PREFILL_WITHIN` or was not about a legal matter (天气 …); a recent legal question is taken as is
→ ``ticket.describe`` what happened (text, voice, pictures), as many messages as they like until "好了"
→ ``ticket.phone`` (optional, with consent: why and how long) → ``ticket.village`` (skipped when the QR
scene or an earlier answer gave it) → ``ticket.confirm`` → the ticket number and when to expect an
answer. An urgent message at any step files an urgent ticket at once.

Follow-up: while a ticket is open and staff replied within 48 hours, the villager's messages join
its thread (not the FAQ) until "结束". "补充 …" always adds to the latest open ticket.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from sqlalchemy import select

from bot.routing import (
    CONTINUE,
    Ctx,
    HandlerResult,
    Router,
    TextReply,
    any_of,
    click,
    numbered,
    squash,
    text_in,
)
from bot.services import tickets as svc
from bot.services.privacy import mask_phone
from bot.storage.models import Village
from bot.storage.tickets import (
    ANSWERED,
    ASSIGNED,
    CLOSED,
    IN_PROGRESS,
    MEDIATING,
    NEW,
    RESOLVED,
    TRANSFERRED,
    Ticket,
)
from handlers.common import HELP_WORDS, LAW_PREFIXES, MORE_WORDS, urgent_text

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
MY_TICKETS_WORDS = ("我的咨询", "咨询进度", "查进度", "我的问题", "查询进度")
FORGET_WORDS = ("删除我的信息", "删除我的个人信息", "删除个人信息", "删除我的数据", "删掉我的信息")
END_WORDS = ("结束", "结束对话", "结束咨询", "对话结束")
CANCEL_WORDS = ("取消", "不要了", "算了", "退出", "不找了", "不用了", "不办了")
SKIP_WORDS = ("跳过", "好了", "没有了", "没了", "就这些", "说完了", "完了", "不说了", "下一步", "不用补充")
YES_WORDS = ("1", "是", "是的", "对", "对的", "嗯", "就是", "就是这件事", "是这件事", "没错", "是这个")
NO_WORDS = ("2", "不是", "不对", "不是这个", "不是这件事", "不是的")
#: "跳过" or "不知道" at the village step: the township queue takes it ("好了" is not an answer there)
VILLAGE_UNKNOWN_WORDS = ("0", "０", "不清楚", "不知道", "都不是", "跳过", "不在这些村")
PHONE_SKIP_WORDS = ("跳过", "不留", "不要", "不用", "不想留", "没有", "没手机", "不给")
CONFIRM_WORDS = (
    "1",
    "确认",
    "提交",
    "是",
    "是的",
    "好",
    "好的",
    "对",
    "对的",
    "可以",
    "确定",
    "行",
    "没问题",
    "确认提交",
)
FIX_VILLAGE_WORDS = ("改村", "换村", "村不对", "改一下村")
SATISFACTION_WORDS = {"有帮助": 1, "很有帮助": 1, "一般": 2, "没帮助": 3, "没有帮助": 3}
SUPPLEMENT = re.compile(r"^补充(?:一下|情况|说明|内容)?[\s:：，,]*(.*)$", re.S)

VILLAGER_STATUS = {
    NEW: "已登记，等待回复",
    ASSIGNED: "已登记，等待回复",
    IN_PROGRESS: "正在处理",
    ANSWERED: "已回复",
    RESOLVED: "已办结",
    CLOSED: "已结束",
    MEDIATING: "正在调解",
    TRANSFERRED: "已转交有关部门",
}
MAX_PARTS = 20
#: older villagers take their time (or go and find the papers): the intake waits two hours between answers
WIZARD_TTL = dt.timedelta(hours=2)
#: 转人工 takes the last question as it is only when it was asked this recently (and was about a legal matter)
PREFILL_WITHIN = dt.timedelta(minutes=5)


def _t(ctx: Ctx, name: str, **values: Any) -> str:
    return ctx.services.texts.get(name, **values)


@functools.cache
def _squashed(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(squash(w) for w in words)


def _is(ctx: Ctx, words: tuple[str, ...]) -> bool:
    return ctx.msg.msg_type in ("text", "voice") and squash(ctx.text) in _squashed(words)


def _urgent(ctx: Ctx) -> bool:
    return bool(ctx.text) and ctx.services.knowledge.kb.is_urgent(ctx.text)


def _part(ctx: Ctx) -> svc.Part:
    """What this message adds to a ticket: its text and/or its media (kept for the back-office)."""
    msg = ctx.msg
    raw = msg.raw
    if msg.msg_type == "image":
        return svc.Part(
            "", ctx.inbound_id, {"type": "image", "media_id": msg.media_id, "pic_url": raw.get("PicUrl", "")}
        )
    if msg.msg_type == "voice":
        media = {
            "type": "voice",
            "media_id": msg.media_id,
            "recognised": bool(ctx.text),
            "format": raw.get("Format", ""),
        }
        return svc.Part(ctx.text, ctx.inbound_id, media)
    if msg.msg_type in ("video", "shortvideo"):
        return svc.Part("", ctx.inbound_id, {"type": msg.msg_type, "media_id": msg.media_id})
    if msg.msg_type == "link":
        return svc.Part(f"{raw.get('Title', '')} {raw.get('Url', '')}".strip(), ctx.inbound_id, None)
    if msg.msg_type == "location":
        return svc.Part(f"[位置] {raw.get('Label', '')}".strip(), ctx.inbound_id, None)
    return svc.Part(ctx.text, ctx.inbound_id, None)


# ---------------------------------------------------------------- urgent messages (used by the FAQ)
async def record_urgent(ctx: Ctx, text: str, kind: str | None) -> svc.AlertOutcome:
    """An urgent message joins the villager's open ticket or files a new one; its alert goes out at once."""
    intake = svc.Intake(
        openid=ctx.msg.openid,
        village_id=ctx.villager.village_id,
        parts=[_part(ctx) if ctx.text == text else svc.Part(text, ctx.inbound_id, None)],
        urgent=True,
        source="urgent",
        inbound_id=ctx.inbound_id,
        urgent_kind=kind,
    )
    return await svc.file_urgent(ctx.session, ctx.services.knowledge, ctx.services.settings, intake, ctx.now)


# ---------------------------------------------------------------- the intake wizard
def _last_question(ctx: Ctx) -> tuple[str, bool]:
    """The villager's last question, and whether to take it as is (asked within a few minutes, and the bot
    saw a legal matter in it) rather than ask "是这件事吗？"."""
    context = ctx.conv.context or {}
    question = str(context.get("last_query") or "").strip()
    if not question:
        return "", False
    try:
        asked = dt.datetime.fromisoformat(str(context.get("last_query_at")))
    except ValueError:
        return question, False  # remembered before its time was: ask
    return question, bool(context.get("last_query_legal")) and ctx.now - asked <= PREFILL_WITHIN


@router.on(any_of(text_in(*HANDOFF_WORDS), click("HANDOFF")))
async def handoff(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    question, recent = _last_question(ctx)
    ctx.remember(menu=None, last_query=None)
    if not question:
        ctx.set_state("ticket.describe", {"parts": []}, ttl=WIZARD_TTL)
        prompt = _t(ctx, "ticket_start")
    elif recent:
        ctx.set_state("ticket.describe", {"parts": [svc.Part(question[:500]).to_json()]}, ttl=WIZARD_TTL)
        prompt = _t(ctx, "ticket_start_prefill", question=question[:200])
    else:
        ctx.set_state("ticket.question", {"parts": [], "question": question[:500]}, ttl=WIZARD_TTL)
        prompt = _t(ctx, "ticket_start_confirm", question=question[:200])
    open_ticket = await svc.latest_open_ticket(ctx.session, ctx.msg.openid)
    if open_ticket is not None:
        prompt = _t(ctx, "ticket_start_open", number=open_ticket.number) + "\n" + prompt
    return TextReply(prompt)


@router.state("ticket.")
async def wizard(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    state = ctx.state or ""
    data = dict(ctx.conv.data or {})
    if ctx.msg.is_event:
        if ctx.msg.event == "click":
            ctx.clear_state()  # a menu button leaves the wizard; the button does what it says
        return CONTINUE
    if state == "ticket.forget":
        return await _forget_answer(ctx)
    if _is(ctx, CANCEL_WORDS):
        ctx.clear_state()
        return TextReply(_t(ctx, "ticket_cancelled"))
    if state == "ticket.supplement":
        return await _supplement_answer(ctx)
    if _is(ctx, HANDOFF_WORDS):
        return await handoff(ctx, {})
    if _is(ctx, (*MY_TICKETS_WORDS, *FORGET_WORDS)):
        ctx.clear_state()
        return CONTINUE
    if _urgent(ctx):
        return await _file_urgent(ctx, data)
    step = {
        "ticket.question": _question,
        "ticket.describe": _describe,
        "ticket.village": _village,
        "ticket.phone": _phone,
        "ticket.confirm": _confirm,
    }.get(state)
    if step is None:
        ctx.clear_state()
        return CONTINUE
    return await step(ctx, data)


def _parts(data: dict[str, Any]) -> list[svc.Part]:
    return [svc.Part.from_json(p) for p in data.get("parts", []) if isinstance(p, dict)]


def _add_part(data: dict[str, Any], part: svc.Part) -> None:
    parts = list(data.get("parts", []))
    if len(parts) < MAX_PARTS:
        parts.append(part.to_json())
    data["parts"] = parts


async def _file_urgent(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    """Urgent words during the intake: what was said so far becomes a new urgent ticket at once."""
    kind = ctx.services.knowledge.kb.urgent_kind(ctx.text)
    intake = svc.Intake(
        openid=ctx.msg.openid,
        village_id=data.get("village_id", ctx.villager.village_id),
        parts=[*_parts(data), _part(ctx)],
        phone=data.get("phone"),
        inbound_id=ctx.inbound_id,
        urgent_kind=kind,
    )
    alert = await svc.file_urgent(
        ctx.session, ctx.services.knowledge, ctx.services.settings, intake, ctx.now, join_open=False
    )
    ctx.clear_state()
    ctx.remember(last_query=None)
    return TextReply(urgent_text(ctx, kind, alert.reached, number=alert.ticket.number))


async def _question(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    """"是这件事吗？": yes keeps the old question; no, or a new story, leaves it out."""
    question = str(data.pop("question", ""))
    if _is(ctx, YES_WORDS) or (_is(ctx, SKIP_WORDS) and not _is(ctx, ("跳过",))):
        _add_part(data, svc.Part(question))
        if _is(ctx, SKIP_WORDS):  # "好了": that question is all
            return await _after_describe(ctx, data)
        ctx.set_state("ticket.describe", data, ttl=WIZARD_TTL)
        return TextReply(_t(ctx, "ticket_describe_more"))
    if _is(ctx, NO_WORDS) or _is(ctx, ("跳过",)):
        ctx.set_state("ticket.describe", data, ttl=WIZARD_TTL)
        return TextReply(_t(ctx, "ticket_start_other"))
    return await _describe(ctx, data)  # they told us what it is instead


async def _describe(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    """What happened, in as many messages as the villager likes, until "好了" (or "1", as the prompt offers).

    Once something was said, "跳过" means the rest is skipped too: no phone number, straight to the summary."""
    if data.get("parts") and _is(ctx, ("跳过", "不留", "不想留", "不留电话", "不留手机号")):
        data.pop("nudged", None)
        data["phone"] = None
        return await _after_phone(ctx, data)
    if data.get("parts") and squash(ctx.text) in ("1", "１"):
        return await _after_describe(ctx, data)
    if _is(ctx, SKIP_WORDS):
        if not data.get("parts") and not _is(ctx, ("跳过", "不说了")) and not data.get("nudged"):
            data["nudged"] = True  # "好了" before saying anything: ask once, then go on
            ctx.set_state("ticket.describe", data, ttl=WIZARD_TTL)
            return TextReply(_t(ctx, "ticket_describe_empty"))
        return await _after_describe(ctx, data)
    part = _part(ctx)
    _add_part(data, part)
    ctx.set_state("ticket.describe", data, ttl=WIZARD_TTL)
    if ctx.msg.recognition_missing:
        return TextReply(_t(ctx, "ticket_voice_unclear"))
    if not part.text:  # a picture or a video: there may be more, and words about it
        return TextReply(_t(ctx, "ticket_got_media"))
    return TextReply(_t(ctx, "ticket_describe_more"))


async def _villages(ctx: Ctx) -> list[Village]:
    rows = await ctx.session.execute(select(Village).where(Village.active.is_(True)).order_by(Village.id))
    return list(rows.scalars())


async def _after_describe(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    data.pop("nudged", None)
    return _ask_phone(ctx, data)


async def _after_phone(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    """The village: known from the QR code or an earlier answer, else asked."""
    village_id = ctx.villager.village_id
    if village_id is not None:
        village = await ctx.session.get(Village, village_id)
        if village is not None and village.active:
            data["village_id"] = village_id
            return await _show_confirm(ctx, data)
    return await _ask_village(ctx, data)


async def _ask_village(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    villages = await _villages(ctx)
    data["village_ids"] = [v.id for v in villages]
    data["tries"] = 0
    ctx.set_state("ticket.village", data, ttl=WIZARD_TTL)
    items = "\n".join(f"{i} {v.name}" for i, v in enumerate(villages, 1))
    return TextReply(_t(ctx, "ticket_ask_village", items=items))


def _match_village(text: str, villages: list[Village]) -> Village | None:
    wanted = squash(text).removesuffix("村")
    if len(wanted) < 2:
        return None
    hits = [v for v in villages if wanted in v.name or v.name.removesuffix("村") in wanted]
    return hits[0] if len(hits) == 1 else None


async def _village(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    ids = [int(i) for i in data.get("village_ids", [])]
    number = numbered(ctx.text) if ctx.msg.msg_type in ("text", "voice") else None
    if number is None and _is(ctx, VILLAGE_UNKNOWN_WORDS):
        number = 0  # skipped or unknown: the township queue takes it
    if number is None and _is(ctx, SKIP_WORDS):  # "好了" is not a village: ask again, plainly
        ctx.set_state("ticket.village", data, ttl=WIZARD_TTL)
        return TextReply(_t(ctx, "ticket_village_needed", max=len(ids)))
    chosen: int | None
    if number is not None and 0 <= number <= len(ids):
        chosen = ids[number - 1] if number else None
    else:
        village = _match_village(ctx.text, await _villages(ctx)) if ctx.text else None
        if village is None:
            data["tries"] = int(data.get("tries", 0)) + 1
            if data["tries"] < 2:
                ctx.set_state("ticket.village", data, ttl=WIZARD_TTL)
                return TextReply(_t(ctx, "ticket_village_again", max=len(ids)))
            chosen = None  # never stuck: the township queue takes it
        else:
            chosen = village.id
    data["village_id"] = chosen
    if chosen is not None:
        ctx.villager.village_id = chosen
        ctx.villager.village_source = "asked"
    data.pop("editing", None)
    return await _show_confirm(ctx, data)


def _ask_phone(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    data["tries"] = 0
    ctx.set_state("ticket.phone", data, ttl=WIZARD_TTL)
    return TextReply(_t(ctx, "ticket_ask_phone"))


async def _phone(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    if _is(ctx, PHONE_SKIP_WORDS):
        data["phone"] = None
        return await _after_phone(ctx, data)
    phone = svc.parse_phone(ctx.text) if ctx.text else None
    if phone is None:
        data["tries"] = int(data.get("tries", 0)) + 1
        if data["tries"] < 2:
            ctx.set_state("ticket.phone", data, ttl=WIZARD_TTL)
            return TextReply(_t(ctx, "ticket_phone_again"))
    data["phone"] = phone  # sending the number after being told why and how long it is kept is the consent
    return await _after_phone(ctx, data)


async def _show_confirm(ctx: Ctx, data: dict[str, Any], prefix: str = "") -> HandlerResult:
    data["tries"] = 0
    ctx.set_state("ticket.confirm", data, ttl=WIZARD_TTL)
    parts = _parts(data)
    summary = svc.summary_of("\n".join(p.text for p in parts if p.text), [p.media for p in parts if p.media])
    village_id = data.get("village_id")
    village = await ctx.session.get(Village, int(village_id)) if village_id else None
    text = _t(
        ctx,
        "ticket_confirm",
        summary=summary if len(summary) <= 80 else summary[:78] + "……",
        village=village.name if village else "不清楚（交给乡里）",
        phone=mask_phone(data.get("phone")) if data.get("phone") else "不留",
    )
    return TextReply(f"{prefix}\n{text}".strip())


async def _confirm(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    if _is(ctx, CONFIRM_WORDS):
        return await _submit(ctx, data)
    if _is(ctx, FIX_VILLAGE_WORDS):
        data["editing"] = True
        return await _ask_village(ctx, data)
    part = _part(ctx)
    if part.media or len(part.text) > 4:  # more about what happened: add it and ask again
        _add_part(data, part)
        return await _show_confirm(ctx, data, _t(ctx, "ticket_confirm_added"))
    ctx.set_state("ticket.confirm", data, ttl=WIZARD_TTL)
    return TextReply(_t(ctx, "ticket_confirm_again"))


async def _submit(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    intake = svc.Intake(
        openid=ctx.msg.openid,
        village_id=int(data["village_id"]) if data.get("village_id") else None,
        parts=_parts(data),
        phone=data.get("phone"),
        inbound_id=ctx.inbound_id,
    )
    ticket = await svc.create_ticket(ctx.session, ctx.services.knowledge, ctx.services.settings, intake, ctx.now)
    ctx.clear_state()
    ctx.remember(last_query=None, menu=None)
    who = _t(ctx, "ticket_who_village" if ticket.assignee_id else "ticket_who_township")
    return TextReply(
        _t(ctx, "ticket_created", number=ticket.number, who=who, due=svc.format_due(ticket.first_response_due_at))
    )


# ---------------------------------------------------------------- 我的咨询
@router.on(any_of(text_in(*MY_TICKETS_WORDS), click("MY_TICKETS")))
async def my_requests(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    tickets = await svc.tickets_of(ctx.session, ctx.msg.openid)
    if not tickets:
        return TextReply(_t(ctx, "ticket_list_empty"))
    lines = []
    for t in tickets:
        summary = t.summary if len(t.summary) <= 16 else t.summary[:15] + "…"
        created = svc.local(t.created_at)
        lines.append(
            f"{t.number} {VILLAGER_STATUS.get(t.status, t.status)}（{created.month}月{created.day}日）：{summary}"
        )
    return TextReply(_t(ctx, "ticket_list", items="\n".join(lines)))


# ---------------------------------------------------------------- 删除我的信息
@router.on(any_of(text_in(*FORGET_WORDS), click("FORGET")))
async def forget(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    ctx.set_state("ticket.forget")
    return TextReply(_t(ctx, "ticket_forget_ask"))


async def _forget_answer(ctx: Ctx) -> HandlerResult:
    ctx.clear_state()
    if squash(ctx.text) not in ("1", "１", "确认删除", "确定删除", "确认"):
        return TextReply(_t(ctx, "ticket_forget_kept"))
    await svc.forget_villager(ctx.session, ctx.msg.openid, ctx.now)
    ctx.forgotten = True  # their villager row and chat state are gone: nothing is written back
    return TextReply(_t(ctx, "ticket_forget_done"))


# ---------------------------------------------------------------- 补充
def _supplement_check(ctx: Ctx) -> dict[str, Any] | None:
    if ctx.msg.msg_type not in ("text", "voice"):
        return None
    match = SUPPLEMENT.match(ctx.text)
    return {"arg": match.group(1).strip()} if match else None


@router.on(_supplement_check)
async def supplement(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    ticket = await svc.latest_open_ticket(ctx.session, ctx.msg.openid)
    arg = str(data.get("arg") or "")
    if ticket is None:
        # "补充协议有效吗" is a question for the FAQ, not a 补充
        return CONTINUE if arg else TextReply(_t(ctx, "ticket_supplement_none"))
    if not arg:
        ctx.set_state("ticket.supplement", {"ticket_id": ticket.id})
        return TextReply(_t(ctx, "ticket_supplement_ask"))
    return await _add_to(ctx, ticket, svc.Part(arg, ctx.inbound_id, None), "ticket_supplement_added")


async def _supplement_answer(ctx: Ctx) -> HandlerResult:
    ticket_id = (ctx.conv.data or {}).get("ticket_id")
    ctx.clear_state()
    ticket = await ctx.session.get(Ticket, int(ticket_id)) if ticket_id else None
    if ticket is None or ticket.openid != ctx.msg.openid or not ticket.is_open:
        return TextReply(_t(ctx, "ticket_supplement_none"))
    return await _add_to(ctx, ticket, _part(ctx), "ticket_supplement_added")


async def _add_to(ctx: Ctx, ticket: Ticket, part: svc.Part, text_name: str) -> HandlerResult:
    svc.add_villager_message(ctx.session, ticket, ctx.now, text=part.text, inbound_id=part.inbound_id, media=part.media)
    reply = _t(ctx, text_name, number=ticket.number)
    kind = ctx.services.knowledge.kb.urgent_kind(part.text) if part.text else None
    if kind is not None:
        alert = await svc.make_urgent(ctx.session, ticket, ctx.services.settings, ctx.now, kind)
        reply = urgent_text(ctx, kind, alert.reached) + "\n" + reply
    return TextReply(reply)


# ---------------------------------------------------------------- 结束 (the follow-up chat)
@router.on(text_in(*END_WORDS))
async def end_followup(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    ticket = await svc.followup_ticket(ctx.session, ctx.msg.openid, ctx.now)
    if ticket is None:
        return CONTINUE
    ticket.villager_ended_at = ctx.now
    svc.add_event(ctx.session, ticket, "ended", "村民回复“结束”，结束了这次对话", ctx.now)
    return TextReply(_t(ctx, "ticket_followup_ended"))


# ---------------------------------------------------------------- satisfaction (1 / 2 / 3 after 已解决)
def _satisfaction_check(ctx: Ctx) -> dict[str, Any] | None:
    if ctx.msg.msg_type not in ("text", "voice"):
        return None
    word = SATISFACTION_WORDS.get(squash(ctx.text))
    if word is not None:
        return {"score": word, "word": True}
    number = numbered(ctx.text)
    return {"score": number, "word": False} if number in (1, 2, 3) else None


@router.on(_satisfaction_check)
async def satisfaction(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    ticket = await svc.pending_satisfaction(ctx.session, ctx.msg.openid, ctx.now)
    if ticket is None:
        return CONTINUE
    # a bare digit answers our question only if the question was the last thing the villager saw
    if not data["word"] and not await svc.satisfaction_question_is_last(ctx.session, ticket, ctx.inbound_id):
        return CONTINUE
    score = int(data["score"])
    svc.record_satisfaction(ctx.session, ticket, score, ctx.now)
    return TextReply(_t(ctx, "ticket_satisfaction_sorry" if score == 3 else "ticket_satisfaction_thanks"))


# ---------------------------------------------------------------- follow-up: messages join the thread
_COMMAND_WORDS: set[str] = set()


def _is_command(ctx: Ctx) -> bool:
    """Commands keep working during a follow-up chat (转人工, 结束, 补充, 帮助, 更多, 法条, menu picks …)."""
    if not _COMMAND_WORDS:
        words = (
            *HANDOFF_WORDS,
            *MY_TICKETS_WORDS,
            *FORGET_WORDS,
            *END_WORDS,
            *HELP_WORDS,
            *MORE_WORDS,
            "联系方式",
            "隐私说明",
            "预约",
        )
        _COMMAND_WORDS.update(squash(w) for w in words)
        _COMMAND_WORDS.discard("")
    text = ctx.text
    if squash(text) in _COMMAND_WORDS or text.startswith(LAW_PREFIXES) or SUPPLEMENT.match(text):
        return True
    return numbered(text) is not None and bool((ctx.conv.context or {}).get("menu"))


def _followup_check(ctx: Ctx) -> bool:
    msg = ctx.msg
    if msg.is_event or not msg.known or ctx.state is not None:
        return False  # another wizard is running: its answers are not for the thread
    if not svc.may_follow_up(ctx.villager, ctx.now):
        return False  # no staff reply in the last 48 hours: no thread to join
    if msg.msg_type in ("text", "voice"):
        if not ctx.text:
            return msg.recognition_missing
        return not _is_command(ctx)
    return msg.msg_type in ("image", "video", "shortvideo", "link", "location")


# Registered as a state handler so it is tried before the media and FAQ routers (pictures and
# questions join the thread during the follow-up chat); the "state" is the ticket's own:
# open, and a staff reply within 48 hours not yet ended by "结束".
@router.on(_followup_check, stateful=True)
async def followup(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    ticket = await svc.followup_ticket(ctx.session, ctx.msg.openid, ctx.now)
    if ticket is None:
        return CONTINUE
    return await _add_to(ctx, ticket, _part(ctx), "ticket_followup_added")


__all__ = ["CONTINUE", "handoff", "my_requests", "record_urgent", "router"]
