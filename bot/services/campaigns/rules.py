"""The rules every campaign module shares: statuses and their labels, the errors staff see, and who may
do what (:class:`Actor`, the draft and approve roles, and which campaigns a mediator may see and change).

Scope: an admin sees and changes every campaign. A mediator sees and changes only the campaigns they drafted
and those whose audience is only villages they serve (:func:`can_see`); they may address all followers or
their own villages, never an openid list (:func:`audience_errors`), and never see one: openid lists are for
admins only. Volunteers have no part in campaigns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.storage.campaigns import Campaign

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
AUDIENCE_LABELS = {"all": "全部关注者", "villages": "按村（微信标签）", "openids": "指定的村民（名单）"}
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
    village_ids: tuple[int, ...] = ()  # the villages a mediator serves

    @property
    def is_admin(self) -> bool:
        return self.role in ROLES_APPROVE


def can_draft(role: str) -> bool:
    return role in ROLES_DRAFT


def can_approve(role: str) -> bool:
    return role in ROLES_APPROVE


def targets_only(c: Campaign, village_ids: Collection[int]) -> bool:
    """The campaign goes to some villages, all of them in ``village_ids`` (never all followers or a list)."""
    wanted = {int(v) for v in c.village_ids or ()}
    return c.audience == "villages" and bool(wanted) and wanted <= {int(v) for v in village_ids}


def can_see(actor: Actor, c: Campaign) -> bool:
    """Admins every campaign; a mediator the ones they drafted or that go only to their villages."""
    if actor.is_admin:
        return True
    if actor.role not in ROLES_DRAFT:
        return False
    return (actor.id is not None and c.created_by == actor.id) or targets_only(c, actor.village_ids)


def require_access(actor: Actor, c: Campaign) -> None:
    if not can_see(actor, c):
        raise PermissionDenied("这个普法活动不归您管，不能查看或修改。")


def audience_errors(actor: Actor, audience: str, village_ids: Collection[int]) -> list[str]:
    """What a mediator may not address: an openid list, or a village they do not serve."""
    if actor.is_admin:
        return []
    if audience == "openids":
        return ["按 openid 名单群发只有乡管理员可以设置，请选择全部关注者或您负责的村。"]
    if audience == "villages":
        outside = sorted({int(v) for v in village_ids} - {int(v) for v in actor.village_ids})
        if outside:
            return ["只能选择您负责的村。"]
    return []


def _require(actor: Actor, roles: frozenset[str], what: str) -> None:
    if actor.role not in roles:
        raise PermissionDenied(f"您没有权限{what}。")


def china_time(value: dt.datetime) -> dt.datetime:
    return value.astimezone(CHINA_TZ)
