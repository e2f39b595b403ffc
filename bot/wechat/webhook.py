"""``/wechat``: URL verification (GET) and pushes (POST) in plaintext, compatible and safe mode.

Bad input gets a 4xx and never reaches a handler; nothing here answers WeChat with a 5xx
or a traceback.

What a push must carry (LAWBOT_WECHAT_MODE, default safe when an EncodingAESKey is set):
- every mode: a valid URL signature, a timestamp inside the window, and a (timestamp, nonce)
  pair not used before by another push (``bot.wechat.nonces``);
- safe: ``encrypt_type=aes`` and a ``msg_signature`` over the ``Encrypt`` payload; plaintext
  pushes are refused (403), so a captured URL cannot carry a body of the attacker's choosing;
- compatible (only while switching WeChat's console over): an encrypted push is checked as in
  safe mode — also when the query drops ``encrypt_type`` but the body still has ``Encrypt`` —
  and a plaintext push is accepted;
- plain: plaintext only.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.keys import CRYPTO, NONCES, PIPELINE, SERVICES
from bot.routing import NewsReply, Reply, TextReply
from bot.settings import Settings
from bot.wechat.crypto import DecryptError, MessageCrypto, check_url_signature
from bot.wechat.messages import BadPush, Incoming, to_incoming
from bot.wechat.nonces import MAX_NONCE_LENGTH, NonceReused, Seal, digest
from bot.wechat.xml import XMLRejected, parse_xml, render_news, render_text

log = logging.getLogger(__name__)

BUSY_TEXT = "系统正忙，您的消息没能保存。请过一会儿再发一次。着急的话请直接打电话给司法所，有危险请打110。"


def _timestamp_ok(settings: Settings, timestamp: str) -> bool:
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if not 0 <= ts < 2**62:
        return False
    window = settings.timestamp_window
    return window <= 0 or abs(time.time() - ts) <= window


def _verify_url(request: web.Request) -> tuple[str, str]:
    """Check ``signature`` and the timestamp window; return (timestamp, nonce) or raise 403."""
    settings = request.app[SERVICES].settings
    q = request.query
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    if not check_url_signature(settings.wechat_token, q.get("signature"), timestamp, nonce):
        raise web.HTTPForbidden(text="invalid signature")
    if not _timestamp_ok(settings, timestamp):
        raise web.HTTPForbidden(text="timestamp outside the accepted window")
    if not nonce or len(nonce) > MAX_NONCE_LENGTH:
        raise web.HTTPForbidden(text="invalid nonce")
    return timestamp, nonce


async def verify(request: web.Request) -> web.Response:
    """GET: WeChat's server URL check — echo ``echostr`` when the signature is ours."""
    _verify_url(request)
    return web.Response(text=request.query.get("echostr", ""), content_type="text/plain")


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


def _crypto(request: web.Request) -> MessageCrypto:
    crypto = request.app[CRYPTO]
    if crypto is None:
        raise web.HTTPBadRequest(text="safe mode is not configured (LAWBOT_WECHAT_AES_KEY)")
    return crypto


def _decode(request: web.Request, body: bytes, timestamp: str, nonce: str) -> tuple[Incoming, Seal, bool]:
    """Body → (typed message, what WeChat signed, encrypted?), decrypting in safe/compatible mode.

    Raises 400 (malformed) or 403 (not signed as the configured mode requires)."""
    mode = request.app[SERVICES].settings.mode
    aes = request.query.get("encrypt_type", "raw").lower() == "aes"
    if mode == "safe" and not aes:
        raise web.HTTPForbidden(text="safe mode: plaintext pushes are refused")
    if mode == "plain" and aes:
        raise web.HTTPBadRequest(text="safe mode is not configured (LAWBOT_WECHAT_AES_KEY, LAWBOT_WECHAT_MODE)")
    try:
        outer = parse_xml(body)
        if mode != "plain" and (aes or "Encrypt" in outer):
            crypto = _crypto(request)
            encrypted = outer.get("Encrypt")
            if not isinstance(encrypted, str) or not encrypted:
                raise web.HTTPBadRequest(text="Encrypt is missing")
            if not crypto.verify(request.query.get("msg_signature"), timestamp, nonce, encrypted):
                raise web.HTTPForbidden(text="invalid msg_signature")
            try:
                inner = parse_xml(crypto.decrypt(encrypted))
            except DecryptError as exc:
                raise web.HTTPBadRequest(text=str(exc)) from exc
            return to_incoming(inner), Seal(int(timestamp), nonce, digest(encrypted)), True
        return to_incoming(outer), Seal(int(timestamp), nonce, digest(body)), False
    except XMLRejected as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    except BadPush as exc:
        raise web.HTTPBadRequest(text=f"{exc.__class__.__name__}: {exc}") from exc


def render_reply(msg: Incoming, reply: Reply) -> str:
    if isinstance(reply, NewsReply):
        return render_news(msg.openid, msg.account, reply.articles)
    return render_text(msg.openid, msg.account, reply.content)


async def receive(request: web.Request) -> web.Response:
    """POST: a push. Stored before anything else, answered within WeChat's 5 seconds."""
    services = request.app[SERVICES]
    timestamp, nonce = _verify_url(request)
    body = await _read_body(request, services.settings.max_body_bytes)
    msg, seal, encrypted = _decode(request, body, timestamp, nonce)
    nonces = request.app[NONCES]
    try:
        if nonces is not None and not await nonces.claim(seal):
            raise NonceReused(str(seal))
        # without Redis the pipeline remembers the nonce in the push's own store transaction
        reply = await request.app[PIPELINE].handle(msg, seal if nonces is None else None)
    except NonceReused:
        log.warning("refused a push: timestamp %s, nonce %r came before with another push", seal.timestamp, seal.nonce)
        raise web.HTTPForbidden(text="timestamp and nonce already used") from None
    except TimeoutError:
        log.error("could not store push %s within %.1fs", msg.dedup_key, services.settings.db_timeout)
        reply = _busy(msg)
    except Exception:
        # The push could not be stored (database down?). Never a 5xx: tell the villager.
        log.exception("could not store push %s", msg.dedup_key)
        reply = _busy(msg)
    if reply is None:
        return web.Response(text="success", content_type="text/plain")
    xml = render_reply(msg, reply)
    if encrypted:
        xml = _crypto(request).encrypt_reply(xml, nonce=nonce)
    return web.Response(text=xml, content_type="application/xml")


def _busy(msg: Incoming) -> Reply | None:
    return TextReply(BUSY_TEXT) if msg.known and (not msg.is_event or msg.event == "subscribe") else None


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/wechat", verify, name="wechat-verify")
    app.router.add_post("/wechat", receive, name="wechat-receive")
