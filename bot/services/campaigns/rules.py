"""The rules every campaign module shares: statuses and their labels, the errors staff see, and who may
do what (:class:`Actor`, the draft and approve roles).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
ROLES_DRAFT = frozenset({"admin", "mediator"})
ROLES_APPROVE = frozenset({"admin"})
EDITABLE = ("draft", "awaiting_approval")
#: statuses in which a news campaign's article is prepared (and previewed)
PREPARABLE = ("draft", "awaiting_approval", "scheduled")
STATUS_LABELS = {
    "draft": "草稿",
    "awaiting_approval": "待审批",
    "scheduled": "已排期",
    "sending": "发送中",
    "sent": "已发送",
    "failed": "发送失败",
    "cancelled": "已取消",
}
AUDIENCE_LABELS = {"all": "全部关注者", "villages": "按村（微信标签）", "openids": "指定 openid 名单"}
KIND_LABELS = {"text": "文字", "news": "图文链接"}


class CampaignError(ValueError):
    """Refused: ``message`` is a sentence for staff (Chinese)."""

    def __init__(self, message: str, *, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors) or [message]


class PermissionDenied(CampaignError):
    pass


class QuotaExceeded(CampaignError):
    pass


class NotFound(CampaignError):
    pass


class NotPrepared(CampaignError):
    """A news campaign with a cover whose WeChat draft (mpnews) is not ready for its current version."""


@dataclass(frozen=True)
class Actor:
    """The staff member doing something (the back-office's logged-in user)."""

    id: int | None
    name: str
    role: str  # admin | mediator | volunteer
    openid: str | None = None  # their own WeChat openid, for previews


def can_draft(role: str) -> bool:
    return role in ROLES_DRAFT


def can_approve(role: str) -> bool:
    return role in ROLES_APPROVE


def _require(actor: Actor, roles: frozenset[str], what: str) -> None:
    if actor.role not in roles:
        raise PermissionDenied(f"您没有权限{what}。")


def china_time(value: dt.datetime) -> dt.datetime:
    return value.astimezone(CHINA_TZ)
