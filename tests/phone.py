"""A villager's phone for tests: signed WeChat XML in, the reply WeChat would show out.

phone = Phone(client, settings)
assert "欢迎" in await phone.subscribe("village_3")
await dialog(phone, [("你好", "帮助"), ("借钱不还咋办", "借")])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp.test_utils import TestClient

from bot.settings import Settings
from bot.wechat.pusher import Push, PushReply, PushSigner


class Phone:
    def __init__(
        self,
        client: TestClient[Any, Any],
        settings: Settings,
        openid: str = "o_villager_zhang",
        *,
        safe: bool | None = None,
    ) -> None:
        self.client = client
        self.openid = openid
        self.signer = PushSigner.for_settings(settings)
        self.safe = self.signer.encrypts if safe is None else safe  # as WeChat sends in the bot's mode
        self.history: list[tuple[str, str]] = []

    async def post(self, push: Push) -> PushReply:
        resp = await self.client.post(
            "/wechat", params=push.query, data=push.body, headers={"Content-Type": "text/xml"}
        )
        raw = await resp.text()
        return self.signer.open_reply(resp.status, raw, encrypted=push.query.get("encrypt_type") == "aes")

    async def send(self, fields: dict[str, Any]) -> PushReply:
        return await self.post(self.signer.sign(fields, encrypted=self.safe))

    async def _content(self, fields: dict[str, Any], said: str) -> str:
        reply = await self.send(fields)
        assert reply.status == 200, f"HTTP {reply.status}: {reply.raw}"
        assert reply.is_success or reply.fields.get("ToUserName") == self.openid, "To/From must be swapped"
        self.history.append((said, reply.content))
        return reply.content

    async def say(self, text: str, **kw: Any) -> str:
        return await self._content(self.signer.text(self.openid, text, **kw), text)

    async def voice(self, recognition: str | None) -> str:
        return await self._content(self.signer.voice(self.openid, recognition), f"[voice] {recognition}")

    async def subscribe(self, scene: str | None = None) -> str:
        key = f"qrscene_{scene}" if scene else ""
        return await self._content(self.signer.event(self.openid, "subscribe", key), "[subscribe]")

    async def click(self, key: str) -> str:
        return await self._content(self.signer.event(self.openid, "CLICK", key), f"[click {key}]")

    async def event(self, event: str, key: str | None = None, **extra: Any) -> PushReply:
        return await self.send(self.signer.event(self.openid, event, key, **extra))


async def dialog(phone: Phone, turns: Iterable[tuple[str, str | Sequence[str]]]) -> list[str]:
    """Each turn: what the villager says, and text(s) the reply must contain."""
    replies = []
    for said, expected in turns:
        reply = await phone.say(said)
        for piece in [expected] if isinstance(expected, str) else expected:
            assert piece in reply, f"villager said {said!r}; expected {piece!r} in reply:\n{reply}"
        replies.append(reply)
    return replies
