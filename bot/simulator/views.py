"""The simulator's pages and JSON API (never mounted in production).

* ``GET /simulator`` — a phone-sized chat: pick or create a villager, subscribe through a village QR
  code, type, speak, send a picture, press the account menu.
* ``POST /simulator/api/send`` — builds the push WeChat would send for a simulator villager, signs it
  (encrypts it in safe mode) and posts it over HTTP to this server's ``/wechat`` — the address in the
  settings (LAWBOT_HOST/LAWBOT_PORT), never the request's Host header — and records both sides in the
  villager's chat.
* ``GET /simulator/api/chat?openid=…&after=N`` — the chat's entries after N: the page polls it every
  second, so what the fake WeChat API delivers (staff replies, reminders, campaigns…) shows up unasked.
* ``GET|POST /simulator/api/villagers`` — the villagers; a new one by name.
* ``GET /`` — the start page with the addresses ``make run`` prints.

Every POST goes through :mod:`bot.simulator.guard` (JSON only, CSRF token, same origin).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from bot.devtools.dev_wechat import DEV_WECHAT, push_signer, sign_as_wechat, webhook_url
from bot.devtools.fake_wechat import Call, FakeWeChat
from bot.keys import SERVICES
from bot.links import service_links
from bot.services.menu import MenuError, load_menu
from bot.settings import Settings
from bot.simulator import guard
from bot.simulator.phones import Entry, Media, PhoneError, Phones, default_name
from bot.storage.models import Village, Villager
from bot.wechat.pusher import PushReply, PushSigner, post_push

SIM_PHONES: web.AppKey[Phones] = web.AppKey("simulator_phones", Phones)
SAMPLE_PICTURE = Path(__file__).with_name("sample.png")
KINDS = frozenset({"text", "voice", "image", "location", "subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW"})
MAX_TEXT = 4000


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


def _refuse(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


def _menu(request: web.Request) -> tuple[list[dict[str, Any]], str]:
    """The account menu as WeChat shows it ({base_url} filled in), or why it cannot be shown."""
    settings = request.app[SERVICES].settings
    try:
        menu = load_menu(Path(settings.knowledge_dir) / "menu.yaml", base_url=settings.base_url)
    except (MenuError, OSError) as exc:
        return [], str(exc).splitlines()[0] if str(exc) else "menu.yaml"
    return [b for b in menu.get("button", []) if isinstance(b, dict)], ""


async def page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    async with services.session_factory() as session:
        villages = list(
            (await session.execute(select(Village).where(Village.active.is_(True)).order_by(Village.id))).scalars()
        )
    menu, menu_error = _menu(request)
    nonce = secrets.token_urlsafe(16)
    response = web.Response(content_type="text/html", charset="utf-8")
    context = {
        "csrf_token": guard.issue(request, response),
        "nonce": nonce,
        "villages": villages,
        "mode": services.settings.mode,
        "menu": menu,
        "menu_error": menu_error,
        "title": services.knowledge.kb.site.get("township", ""),
        "fake": DEV_WECHAT in request.app,
    }
    response.text = aiohttp_jinja2.render_string("simulator.html", request, context)
    response.headers.update(
        {
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": (
                f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
                "img-src 'self' data: http: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
            ),
        }
    )
    return response


def _shown(kind: str, text: str, label: str) -> tuple[str, dict[str, str]]:
    """How the villager's own action shows in their chat: (side, fields)."""
    if kind == "text":
        return "me", {"text": text}
    if kind == "voice":
        return "me", {"text": "[语音] " + (text or "（没识别出文字）")}
    if kind == "image":
        return "me", {"picurl": "/simulator/sample.png", "text": "[图片]"}
    if kind == "location":
        return "me", {"text": "[位置] 观音寺乡"}
    if kind == "CLICK":
        return "me", {"text": f"[菜单] {label}"}
    if kind == "subscribe":
        return "sys", {"text": "关注了公众号" + (f"（扫了{label}的二维码）" if label else "")}
    if kind == "unsubscribe":
        return "sys", {"text": "取消关注了公众号"}
    if kind == "VIEW":
        return "sys", {"text": f"打开网页：{label}"}
    return "sys", {"text": f"[{kind}] {label}"}


def _fields(
    settings: Settings, signer: PushSigner, openid: str, kind: str, text: str, key: str
) -> dict[str, str | int]:
    """The push WeChat sends for this action of the villager."""
    if kind == "text":
        return signer.text(openid, text)
    if kind == "voice":
        return signer.voice(openid, text or None)
    if kind == "image":
        picture = f"{settings.base_url}/simulator/sample.png"
        return signer.message(openid, "image", PicUrl=picture, MediaId="sim_media_" + secrets.token_hex(4))
    if kind == "location":
        return signer.message(openid, "location", Location_X="33.74", Location_Y="112.81", Scale="15", Label="观音寺乡")
    if kind == "subscribe" and key:
        key = f"qrscene_{key}"
    return signer.event(openid, kind, key)


def _reply_entries(phones: Phones, openid: str, reply: PushReply) -> list[Entry]:
    """The webhook's answer as the villager's WeChat shows it."""
    if reply.status != 200:
        return [phones.append(openid, "sys", f"webhook 返回 HTTP {reply.status}：{reply.raw[:200]}")]
    if reply.is_success:
        return []
    msg_type = reply.fields.get("MsgType")
    if msg_type == "text":
        return [phones.append(openid, "bot", reply.content)]
    if msg_type == "news":
        items = (reply.fields.get("Articles") or {}).get("item") or []
        items = items if isinstance(items, list) else [items]
        return [
            phones.append(
                openid,
                "bot",
                str(item.get("Description", "")),
                title=str(item.get("Title", "")),
                url=str(item.get("Url", "")),
                picurl=str(item.get("PicUrl", "")),
            )
            for item in items
            if isinstance(item, dict)
        ]
    return [phones.append(openid, "bot", f"[{msg_type}]")]


async def send(request: web.Request) -> web.Response:
    guard.check(request)
    try:
        body = await request.json()
    except ValueError:
        return _refuse("请求不是有效的 JSON。")
    if not isinstance(body, dict):
        return _refuse("请求不是有效的 JSON。")
    settings = request.app[SERVICES].settings
    phones = request.app[SIM_PHONES]
    openid = str(body.get("openid") or "")
    kind = str(body.get("kind", "text"))
    text = str(body.get("text", ""))[:MAX_TEXT]
    key = str(body.get("key", ""))[:128]
    label = str(body.get("label", "") or key)[:80]
    try:
        phones.get(openid)
    except PhoneError as exc:
        return _refuse(exc.args[0])
    if kind not in KINDS:
        return _refuse(f"不认识的消息类型：{kind[:20]}")
    fake = request.app.get(DEV_WECHAT)
    if fake is not None and kind == "unsubscribe":
        fake.unfollow(openid)
    elif fake is not None and (kind == "subscribe" or openid not in fake.unsubscribed):
        fake.follow(openid)  # only followers can write to an account; WeChat knows them before the bot does
    side, shown = _shown(kind, text, label)
    entries = [phones.append(openid, side, **shown)]
    signer = push_signer(settings)
    fields = _fields(settings, signer, openid, kind, text, key)
    push = sign_as_wechat(signer, settings, fields, safe=bool(body.get("safe")))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            reply = await post_push(session, webhook_url(settings), signer, push)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: a reply WeChat would reject
        entry = phones.append(openid, "sys", f"{webhook_url(settings)} 没有给出能用的回复：{exc}")
        return _json({"error": entry.text, "entries": [e.to_json() for e in (*entries, entry)]}, 502)
    entries += _reply_entries(phones, openid, reply)
    return _json(
        {
            "openid": openid,
            "status": reply.status,
            "request_xml": push.body.decode("utf-8"),
            "reply_raw": reply.raw,
            "reply": reply.fields,
            "success": reply.is_success,
            "entries": [e.to_json() for e in entries],
        }
    )


async def chat(request: web.Request) -> web.Response:
    phones = request.app[SIM_PHONES]
    openid = request.query.get("openid", "")
    try:
        after = max(0, int(request.query.get("after", "0")))
        phone = phones.find(openid)
    except ValueError as exc:  # PhoneError is a ValueError
        return _refuse(exc.args[0] if isinstance(exc, PhoneError) else "after 必须是数字。")
    entries = [e for e in phone.entries if e.seq > after] if phone is not None else []
    name = phone.name if phone is not None else default_name(openid)
    return _json({"openid": openid, "name": name, "entries": [e.to_json() for e in entries]})


async def villagers(request: web.Request) -> web.Response:
    phones = request.app[SIM_PHONES]
    if request.method == "POST":
        guard.check(request)
        try:
            body = await request.json()
            phone = phones.add(str(body.get("name", "")) if isinstance(body, dict) else "")
        except ValueError as exc:
            return _refuse(exc.args[0] if isinstance(exc, PhoneError) else "请求不是有效的 JSON。")
        return _json(phone.to_json(), 201)
    async with request.app[SERVICES].session_factory() as session:
        known = (
            await session.execute(
                select(Villager.openid).where(Villager.openid.like("o\\_sim\\_%", escape="\\")).limit(200)
            )
        ).scalars()
        roster = phones.roster(known)
    return _json({"villagers": [p.to_json() for p in roster]})


async def sample_picture(request: web.Request) -> web.FileResponse:
    return web.FileResponse(SAMPLE_PICTURE, headers={"Content-Type": "image/png", "Cache-Control": "max-age=3600"})


async def start(request: web.Request) -> web.Response:
    """``/``: the addresses ``make run`` prints, as links."""
    settings = request.app[SERVICES].settings
    links = service_links(settings, dev=DEV_WECHAT in request.app)
    title = request.app[SERVICES].knowledge.kb.site.get("township", "")
    response: web.Response = aiohttp_jinja2.render_template(
        "simulator_start.html", request, {"links": links, "title": title}
    )
    return response


def connect_fake(phones: Phones, fake: FakeWeChat) -> None:
    """Show what the fake WeChat API delivers in the simulator villagers' chats."""

    def listener(call: Call) -> None:
        phones.deliver(call.path, call.body, call.delivered_to, Media(fake.drafts, fake.materials))

    fake.listeners.append(listener)


async def on_startup(app: web.Application) -> None:
    fake = app.get(DEV_WECHAT)
    if fake is not None:
        connect_fake(app[SIM_PHONES], fake)
