"""Plays WeChat's side of the webhook: builds, signs and (optionally) encrypts pushes.

Used by the simulator, ``lawbot chat``, the tests and the load benchmark, so all of them
send exactly what WeChat's servers send: every push gets a fresh timestamp and nonce (the bot
refuses a pair used before by another push), and is encrypted when the bot runs in safe mode.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.wechat.crypto import MessageCrypto, sha1_signature
from bot.wechat.xml import parse_xml, render_fields

if TYPE_CHECKING:
    from bot.settings import Settings

_msg_ids = itertools.count(int(time.time() * 1000) * 1000)


@dataclass
class Push:
    query: dict[str, str]
    body: bytes
    fields: dict[str, str | int]


@dataclass
class PushReply:
    status: int
    raw: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def content(self) -> str:
        value = self.fields.get("Content", "")
        return value if isinstance(value, str) else ""

    @property
    def is_success(self) -> bool:
        return self.status == 200 and self.raw.strip() in ("success", "")


class PushSigner:
    def __init__(
        self, token: str, appid: str, aes_key: str = "", account: str = "gh_lawbot_dev", *, mode: str = ""
    ) -> None:
        self.token = token
        self.appid = appid
        self.account = account
        self.crypto = MessageCrypto(token, aes_key, appid) if aes_key else None
        #: the bot's LAWBOT_WECHAT_MODE (safe, compatible, plain): what ``sign`` does by default
        self.mode = mode or ("safe" if aes_key else "plain")

    @classmethod
    def for_settings(cls, settings: Settings, account: str = "gh_lawbot_dev") -> PushSigner:
        """Signs as WeChat does for a bot with these settings (encrypted unless the mode is plain)."""
        return cls(settings.wechat_token, settings.wechat_appid, settings.wechat_aes_key, account, mode=settings.mode)

    @property
    def encrypts(self) -> bool:
        """Whether WeChat encrypts pushes for this bot (safe or compatible mode)."""
        return self.mode != "plain" and self.crypto is not None

    # ---------------------------------------------------------------- bodies
    def message(
        self,
        openid: str,
        msg_type: str,
        *,
        msg_id: int | None = None,
        create_time: int | None = None,
        **extra: str | int,
    ) -> dict[str, str | int]:
        return {
            "ToUserName": self.account,
            "FromUserName": openid,
            "CreateTime": create_time or int(time.time()),
            "MsgType": msg_type,
            **extra,
            "MsgId": msg_id if msg_id is not None else next(_msg_ids),
        }

    def text(self, openid: str, content: str, **kw: Any) -> dict[str, str | int]:
        return self.message(openid, "text", Content=content, **kw)

    def voice(self, openid: str, recognition: str | None, **kw: Any) -> dict[str, str | int]:
        extra: dict[str, Any] = {"MediaId": "media_" + secrets.token_hex(6), "Format": "amr"}
        if recognition is not None:
            extra["Recognition"] = recognition
        return self.message(openid, "voice", **extra, **kw)

    def event(
        self, openid: str, event: str, key: str | None = None, *, create_time: int | None = None, **extra: str | int
    ) -> dict[str, str | int]:
        fields: dict[str, str | int] = {
            "ToUserName": self.account,
            "FromUserName": openid,
            "CreateTime": create_time or int(time.time()),
            "MsgType": "event",
            "Event": event,
        }
        if key is not None:
            fields["EventKey"] = key
        fields.update(extra)
        return fields

    # ---------------------------------------------------------------- signing
    def sign(
        self, fields: dict[str, str | int], *, encrypted: bool | None = None, timestamp: int | None = None
    ) -> Push:
        """A signed push; ``encrypted`` None: as WeChat sends it in the bot's mode (see :attr:`encrypts`)."""
        if encrypted is None:
            encrypted = self.encrypts
        ts = str(timestamp or int(time.time()))
        nonce = secrets.token_hex(5)
        query = {
            "signature": sha1_signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "openid": str(fields.get("FromUserName", "")),
        }
        xml = render_fields(fields)
        if not encrypted:
            return Push(query, xml.encode("utf-8"), fields)
        if self.crypto is None:
            raise ValueError("safe mode needs the EncodingAESKey")
        enc = self.crypto.encrypt(xml)
        query.update(encrypt_type="aes", msg_signature=self.crypto.msg_signature(ts, nonce, enc))
        body = f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
        return Push(query, body.encode("utf-8"), fields)

    def open_reply(self, status: int, raw: str, *, encrypted: bool) -> PushReply:
        """Parse (and in safe mode verify and decrypt) the webhook's answer, as WeChat would."""
        if status != 200 or raw.strip() in ("", "success"):
            return PushReply(status, raw)
        outer = parse_xml(raw)
        if encrypted:
            if self.crypto is None:
                raise ValueError("safe mode needs the EncodingAESKey")
            enc = str(outer["Encrypt"])
            if not self.crypto.verify(
                str(outer.get("MsgSignature")), str(outer["TimeStamp"]), str(outer["Nonce"]), enc
            ):
                raise ValueError("the reply's MsgSignature does not verify")
            return PushReply(status, raw, parse_xml(self.crypto.decrypt(enc)))
        return PushReply(status, raw, outer)


async def post_push(session: aiohttp.ClientSession, url: str, signer: PushSigner, push: Push) -> PushReply:
    encrypted = push.query.get("encrypt_type") == "aes"
    async with session.post(url, params=push.query, data=push.body, headers={"Content-Type": "text/xml"}) as resp:
        raw = await resp.text()
        return signer.open_reply(resp.status, raw, encrypted=encrypted)
