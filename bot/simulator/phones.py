"""The simulator's villagers ("phones"): who they are and what their WeChat chat shows.

A phone is a simulator openid — always ``o_sim_…``: the simulator signs pushes for nothing else — with a
name. Its chat is kept here, on the server, per openid: what the villager sent, the webhook's passive
reply, and every message the fake WeChat API delivered to that openid (staff replies, rating questions,
reminders, template notices, campaign previews and mass sends) the moment the fake accepts it. The page
polls for entries after the last one it has, so a reload, a second tab or a real phone on the same server
all show the same chat. Why on the server and not in the browser's localStorage: the messages that
arrive while no page is open must be kept somewhere, and the fake API that delivers them lives here too.
Chats last as long as the process, like the fake API's own records; after a restart the villagers the bot
knows (``o_sim_…`` rows in ``villagers``) come back in the picker under their openid.
"""

from __future__ import annotations

import base64
import collections
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pypinyin import lazy_pinyin

SIM_PREFIX = "o_sim_"
_SIM_OPENID = re.compile(r"^o_sim_[a-z0-9_]{1,40}$")
#: the three villagers every simulator starts with
SAMPLES = {"o_sim_zhang_dama": "张大娘", "o_sim_li_shu": "李叔", "o_sim_wang_xiaomei": "王小妹"}
MAX_PHONES = 200
MAX_ENTRIES = 500
MAX_NAME = 20
#: a cover image is shown in the chat (as a data: URL) up to this size
MAX_INLINE_IMAGE = 256 * 1024
VIA_LABELS = {
    "cs": "客服消息",
    "template": "模板消息",
    "subscribe": "订阅通知",
    "preview": "群发预览",
    "mass": "群发消息",
}
_PATH_VIA = {
    "/cgi-bin/message/custom/send": "cs",
    "/cgi-bin/message/template/send": "template",
    "/cgi-bin/message/subscribe/bizsend": "subscribe",
    "/cgi-bin/message/mass/preview": "preview",
    "/cgi-bin/message/mass/sendall": "mass",
    "/cgi-bin/message/mass/send": "mass",
}


def is_sim_openid(openid: str) -> bool:
    """A simulator villager's openid (``o_sim_`` + lower-case letters, digits, underscores)."""
    return bool(_SIM_OPENID.fullmatch(openid))


def openid_for(name: str, taken: Iterable[str] = ()) -> str:
    """A new simulator openid that reads like the name: 赵四 → ``o_sim_zhao_si_3f2a``."""
    syllables = [re.sub(r"[^a-z0-9]", "", s.lower()) for s in lazy_pinyin(name)]
    slug = "_".join(s for s in syllables if s)[:24].strip("_") or "cunmin"
    taken = set(taken)
    while True:
        openid = f"{SIM_PREFIX}{slug}_{secrets.token_hex(2)}"
        if openid not in taken:
            return openid


@dataclass
class Entry:
    """One line of a chat. ``side``: me (the villager), bot, or sys (what happened, in grey)."""

    seq: int
    at: float
    side: str
    text: str = ""
    via: str = ""  # how a bot message came: "" (the passive reply) or a key of VIA_LABELS
    title: str = ""  # an article: title, link and cover
    url: str = ""
    picurl: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "side": self.side,
            "text": self.text,
            "via": self.via,
            "label": VIA_LABELS.get(self.via, ""),
            "title": self.title,
            "url": self.url,
            "picurl": self.picurl,
        }


@dataclass
class Phone:
    openid: str
    name: str
    sample: bool = False
    entries: collections.deque[Entry] = field(default_factory=lambda: collections.deque(maxlen=MAX_ENTRIES))

    def to_json(self) -> dict[str, Any]:
        return {"openid": self.openid, "name": self.name, "sample": self.sample}


class PhoneError(ValueError):
    """A request the simulator refuses; the message is for the person at the page."""


class Phones:
    """Every simulator villager and their chat (one per server process)."""

    def __init__(self) -> None:
        self._phones: dict[str, Phone] = {o: Phone(o, n, sample=True) for o, n in SAMPLES.items()}
        self._seq = 0

    def roster(self, known: Iterable[str] = ()) -> list[Phone]:
        """The samples, the villagers made here, then simulator openids the bot knows (from before a restart)."""
        for openid in known:
            if is_sim_openid(openid) and openid not in self._phones and len(self._phones) < MAX_PHONES:
                self._phones[openid] = Phone(openid, default_name(openid))
        return list(self._phones.values())

    def find(self, openid: str) -> Phone | None:
        """The phone of a simulator openid, if it has one yet."""
        if not is_sim_openid(openid):
            raise PhoneError("模拟器只能以模拟村民的身份发消息（openid 以 o_sim_ 开头）。")
        return self._phones.get(openid)

    def get(self, openid: str) -> Phone:
        """The phone of a simulator openid (made on first use, named after its openid)."""
        phone = self.find(openid)
        if phone is None:
            if len(self._phones) >= MAX_PHONES:
                raise PhoneError(f"模拟村民最多 {MAX_PHONES} 个，请重启服务后再加。")
            phone = self._phones[openid] = Phone(openid, default_name(openid))
        return phone

    def add(self, name: str) -> Phone:
        """A new villager with this name (1 to 20 characters)."""
        name = " ".join(name.split())
        if not name:
            raise PhoneError("请填写村民的名字。")
        if len(name) > MAX_NAME:
            raise PhoneError(f"名字最多 {MAX_NAME} 个字。")
        phone = self.get(openid_for(name, self._phones))
        phone.name = name
        return phone

    def append(self, openid: str, side: str, text: str = "", **extra: str) -> Entry:
        self._seq += 1
        entry = Entry(self._seq, time.time(), side, text, **extra)
        self.get(openid).entries.append(entry)
        return entry

    def deliver(self, path: str, body: Any, openids: Iterable[str], media: Media | None = None) -> None:
        """A message the fake WeChat API delivered: into the chat of each simulator villager it reached."""
        if not isinstance(body, Mapping):
            return
        shown = api_message(path, body, media or Media())
        for openid in openids:
            if is_sim_openid(openid):
                self.append(openid, "bot", **shown)


def default_name(openid: str) -> str:
    return SAMPLES.get(openid) or "村民 " + openid.removeprefix(SIM_PREFIX)


def _safe_url(value: Any) -> str:
    url = str(value or "")
    return url if url.startswith(("http://", "https://")) and len(url) <= 2048 else ""


@dataclass(frozen=True)
class Media:
    """What the fake WeChat API keeps that a message may name: drafts (mpnews) and image materials."""

    drafts: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    materials: Mapping[str, bytes] = field(default_factory=dict)

    def image_url(self, media_id: str) -> str:
        data = self.materials.get(media_id)
        if data is None or len(data) > MAX_INLINE_IMAGE:
            return ""
        kind = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
        return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _message(message: Mapping[str, Any], media: Media) -> dict[str, str]:
    """A WeChat message body (``msgtype`` and its part) as a chat entry's fields."""
    msgtype = str(message.get("msgtype") or "")
    part = message.get(msgtype)
    part = part if isinstance(part, Mapping) else {}
    if msgtype == "text":
        return {"text": str(part.get("content", ""))}
    if msgtype == "news":
        articles = part.get("articles") or [{}]
        first = articles[0] if isinstance(articles[0], Mapping) else {}
        return {
            "title": str(first.get("title", "")),
            "text": str(first.get("description", "")),
            "url": _safe_url(first.get("url")),
            "picurl": _safe_url(first.get("picurl")),
        }
    if msgtype == "mpnews":
        articles = media.drafts.get(str(part.get("media_id", ""))) or [{}]
        first = articles[0] if isinstance(articles[0], Mapping) else {}
        return {
            "title": str(first.get("title", "") or "图文消息"),
            "text": str(first.get("digest", "")),
            "url": _safe_url(first.get("content_source_url")),
            "picurl": media.image_url(str(first.get("thumb_media_id", ""))),
        }
    if msgtype == "image":
        return {"text": "[图片]"}
    return {"text": f"[{msgtype or '消息'}]"}


def api_message(path: str, body: Mapping[str, Any], media: Media) -> dict[str, str]:
    """What a villager's WeChat shows for one API call that reached them."""
    via = _PATH_VIA.get(path, "cs")
    if via in ("template", "subscribe"):
        data = body.get("data")
        data = data if isinstance(data, Mapping) else {}
        lines = [str(v.get("value", "")) for v in data.values() if isinstance(v, Mapping) and v.get("value")]
        return {"via": via, "text": "\n".join(lines), "url": _safe_url(body.get("url") or body.get("page"))}
    return {"via": via, **_message(body, media)}
