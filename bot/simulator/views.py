"""/simulator: try the bot without a WeChat account (never mounted in production).

The page posts to ``/simulator/api/send``, which builds the push WeChat would send, signs
it (and encrypts it in safe mode), posts it over HTTP to this server's own ``/wechat``,
and shows the reply exactly as WeChat would receive it.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp_jinja2
import jinja2
import yaml
from aiohttp import web
from sqlalchemy import select

from bot.keys import SERVICES
from bot.storage.models import Village
from bot.wechat.pusher import PushSigner, post_push

SIM_SENDERS = {
    "o_sim_zhang_dama": "张大娘（观音寺村）",
    "o_sim_li_shu": "李叔",
    "o_sim_wang_xiaomei": "王小妹",
}


def _signer(request: web.Request) -> PushSigner:
    s = request.app[SERVICES].settings
    return PushSigner(s.wechat_token, s.wechat_appid, s.wechat_aes_key)


def load_menu(knowledge_dir: str) -> list[dict[str, Any]]:
    """The account menu from knowledge/menu.yaml, for the simulator's bottom bar."""
    path = Path(knowledge_dir) / "menu.yaml"
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    buttons = data.get("button") or data.get("buttons") or []
    return [b for b in buttons if isinstance(b, dict)]


async def page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    async with services.session_factory() as session:
        villages = list(
            (await session.execute(select(Village).where(Village.active.is_(True)).order_by(Village.id))).scalars()
        )
    context = {
        "senders": SIM_SENDERS,
        "villages": villages,
        "safe_available": bool(services.settings.wechat_aes_key),
        "menu": load_menu(services.settings.knowledge_dir),
        "base_url": services.settings.base_url,
        "title": services.knowledge.kb.site.get("township", ""),
    }
    response: web.Response = aiohttp_jinja2.render_template("simulator.html", request, context)
    return response


async def send(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="JSON expected") from None
    openid = str(body.get("openid") or "o_sim_" + secrets.token_hex(4))[:64]
    kind = str(body.get("kind", "text"))
    mode = request.app[SERVICES].settings.mode  # safe mode refuses plaintext: encrypt as WeChat would
    safe = mode == "safe" or (mode == "compatible" and bool(body.get("safe")))
    signer = _signer(request)
    text = str(body.get("text", ""))[:4000]
    key = str(body.get("key", ""))[:128]
    if kind == "text":
        fields = signer.text(openid, text)
    elif kind == "voice":
        fields = signer.voice(openid, text or None)
    elif kind == "image":
        fields = signer.message(
            openid,
            "image",
            PicUrl=f"{request.url.origin()}/static/sample.png",
            MediaId="sim_media_" + secrets.token_hex(4),
        )
    elif kind == "location":
        fields = signer.message(
            openid, "location", Location_X="33.74", Location_Y="112.81", Scale="15", Label="观音寺乡"
        )
    elif kind in ("subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW"):
        if kind == "subscribe" and key:
            key = f"qrscene_{key}"
        fields = signer.event(openid, kind, key)
    else:
        raise web.HTTPBadRequest(text=f"unknown kind {kind!r}")
    push = signer.sign(fields, encrypted=safe)
    url = f"{request.url.origin()}{request.app.router['wechat-receive'].url_for()}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        reply = await post_push(session, url, signer, push)
    return web.json_response(
        {
            "openid": openid,
            "status": reply.status,
            "request_xml": push.body.decode("utf-8"),
            "reply_raw": reply.raw,
            "reply": reply.fields,
            "success": reply.is_success,
        }
    )


def setup_templates(app: web.Application) -> None:
    if aiohttp_jinja2.APP_KEY in app:
        return
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("bot", "templates"),
        autoescape=jinja2.select_autoescape(["html", "xml"], default=True),
        undefined=jinja2.StrictUndefined,
    )


def setup_simulator(app: web.Application) -> None:
    setup_templates(app)
    app.router.add_get("/simulator", page, name="simulator")
    app.router.add_post("/simulator/api/send", send, name="simulator-send")
