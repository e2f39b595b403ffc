"""Typed view of a push. Classification uses wechatpy's registry; unknown types never raise."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from wechatpy.events import EVENT_TYPES
from wechatpy.messages import MESSAGE_TYPES, UnknownMessage

KNOWN_MESSAGES = {"text", "voice", "image", "video", "shortvideo", "location", "link"}
KNOWN_EVENTS = {
    "subscribe",
    "unsubscribe",
    "scan",
    "click",
    "view",
    "location",
    "templatesendjobfinish",
    "masssendjobfinish",
}


class BadPush(ValueError):
    """A push WeChat would never send: the webhook answers 400 and stores nothing."""


class MissingFields(BadPush):
    """A push lacks a field WeChat always sends."""


class FieldTooLong(BadPush):
    """A field is longer than WeChat ever makes it (and than the column that stores it)."""


#: longest value accepted per field: the columns' sizes (storage/models.py), on SQLite as on PostgreSQL
FIELD_LIMITS = {
    "FromUserName": 64,  # villagers.openid, inbound_messages.openid
    "ToUserName": 64,
    "MsgType": 32,  # inbound_messages.msg_type
    "Event": 64,  # inbound_messages.event
    "EventKey": 255,  # inbound_messages.event_key
    "MsgId": 64,  # inbound_messages.msg_id
    "MsgID": 64,
    "MediaId": 255,  # inbound_messages.media_id
    "CreateTime": 20,
}


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key, "")
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One push from WeChat, as the handlers see it."""

    openid: str  # FromUserName: the villager
    account: str  # ToUserName: our account's original id
    create_time: int
    msg_type: str  # text, voice, image, video, shortvideo, location, link, event, or whatever WeChat sent
    event: str | None = None  # lower-case event name for msg_type=event
    event_key: str = ""
    msg_id: str = ""
    content: str = ""  # text, or the recognised text of a voice message
    media_id: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    known: bool = True  # False: a type or event this bot does not know (answered `success`)

    @property
    def is_event(self) -> bool:
        return self.msg_type == "event"

    @property
    def dedup_key(self) -> str:
        """Unique per push; WeChat's retries of the same push share it."""
        if self.is_event:
            # job-finish notices carry their job's MsgID: two jobs ending in one second are two pushes
            suffix = f":{self.msg_id}" if self.msg_id else ""
            return f"e:{self.openid}:{self.create_time}:{self.event}:{self.event_key}{suffix}"[:255]
        return f"m:{self.openid}:{self.msg_id}"[:255]

    @property
    def created_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.create_time, dt.UTC)

    @property
    def scene(self) -> str:
        """QR scene of a subscribe (``qrscene_`` stripped) or SCAN event, else ''."""
        if self.event == "subscribe" and self.event_key.startswith("qrscene_"):
            return self.event_key[len("qrscene_") :]
        if self.event == "scan":
            return self.event_key
        return ""

    @property
    def recognition_missing(self) -> bool:
        return self.msg_type == "voice" and not self.content.strip()


def to_incoming(raw: dict[str, Any]) -> Incoming:
    """Validate the fields WeChat always sends and classify the push."""
    missing = [k for k in ("ToUserName", "FromUserName", "CreateTime", "MsgType") if not _text(raw, k).strip()]
    if missing:
        raise MissingFields(", ".join(missing))
    too_long = [k for k, limit in FIELD_LIMITS.items() if len(_text(raw, k).strip()) > limit]
    if too_long:
        raise FieldTooLong(", ".join(too_long))
    try:
        create_time = int(_text(raw, "CreateTime").strip())
    except ValueError as exc:
        raise MissingFields("CreateTime is not a number") from exc
    if not 0 <= create_time < 2**32:  # seconds since 1970: a time WeChat could have sent
        raise BadPush("CreateTime is out of range")
    msg_type = _text(raw, "MsgType").strip().lower()
    openid = _text(raw, "FromUserName").strip()
    account = _text(raw, "ToUserName").strip()
    if msg_type == "event":
        event = _text(raw, "Event").strip().lower()
        if not event:
            raise MissingFields("Event")
        return Incoming(
            openid=openid,
            account=account,
            create_time=create_time,
            msg_type=msg_type,
            event=event,
            event_key=_text(raw, "EventKey").strip(),
            msg_id=_text(raw, "MsgID") or _text(raw, "MsgId"),
            raw=raw,
            known=event in KNOWN_EVENTS and event in EVENT_TYPES,
        )
    msg_id = _text(raw, "MsgId").strip()
    if not msg_id:
        raise MissingFields("MsgId")
    known = msg_type in KNOWN_MESSAGES and MESSAGE_TYPES.get(msg_type, UnknownMessage) is not UnknownMessage
    content = ""
    if msg_type == "text":
        if "Content" not in raw:
            raise MissingFields("Content")
        content = _text(raw, "Content")
    elif msg_type == "voice":
        content = _text(raw, "Recognition")
    elif msg_type == "link":
        content = _text(raw, "Title")
    return Incoming(
        openid=openid,
        account=account,
        create_time=create_time,
        msg_type=msg_type,
        msg_id=msg_id,
        content=content,
        media_id=_text(raw, "MediaId"),
        raw=raw,
        known=known,
    )
