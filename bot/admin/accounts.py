"""Staff accounts: create and change them (shared by the staff pages and `lawbot admin`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.storage.models import Village, utcnow
from bot.storage.staff import POSITION_NAMES, POSITIONS, ROLES, StaffUser

USERNAME_RE = re.compile(r"^[\w.\-]{2,32}$")


class AccountError(ValueError):
    """Shown to the admin as is."""


async def villages_by_id(session: AsyncSession, ids: Sequence[int]) -> list[Village]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    found = list((await session.execute(select(Village).where(Village.id.in_(wanted)))).scalars())
    missing = sorted(set(wanted) - {v.id for v in found})
    if missing:
        raise AccountError(f"没有这些村：{', '.join(map(str, missing))}")
    return found


def check_role(role: str, village_ids: Sequence[int], position: str = "") -> None:
    if role not in ROLES:
        raise AccountError(f"角色只能是 {' / '.join(ROLES)}")
    if role == "mediator" and not village_ids:
        raise AccountError("调解员至少要负责一个村。")
    if position not in POSITIONS:
        raise AccountError(f"三长联动职务只能是：{'、'.join(POSITION_NAMES.values())}，或不填")
    if role == "leader" and not position:
        raise AccountError("三长联动成员要选职务（乡矛调中心组长、派出所负责人、司法所所长或人民法庭）。")


def check_reviewer(role: str, reviewer: bool) -> None:
    if reviewer and role != "admin":
        raise AccountError("只有乡管理员账号可以有“法律审核”权限（发布问答）。")


async def create_staff(
    session: AsyncSession,
    *,
    username: str,
    role: str,
    password_hash: str,
    village_ids: Sequence[int] = (),
    display_name: str = "",
    position: str = "",
    reviewer: bool = False,
) -> StaffUser:
    username = username.strip()
    if not USERNAME_RE.match(username):
        raise AccountError("用户名 2-32 个字符：字母、数字、汉字、点、横线或下划线。")
    check_role(role, village_ids, position)
    check_reviewer(role, reviewer)
    taken = (await session.execute(select(StaffUser.id).where(StaffUser.username == username))).scalar_one_or_none()
    if taken is not None:
        raise AccountError(f"用户名 {username} 已经有人用了。")
    staff = StaffUser(
        username=username,
        display_name=display_name.strip()[:64],
        role=role,
        position=position,
        password_hash=password_hash,
        active=True,
        reviewer=reviewer,
        created_at=utcnow(),
    )
    staff.villages = await villages_by_id(session, village_ids)
    session.add(staff)
    await session.flush()
    return staff


async def load(session: AsyncSession, staff_id: int) -> StaffUser | None:
    return (
        await session.execute(
            select(StaffUser).options(selectinload(StaffUser.villages)).where(StaffUser.id == staff_id)
        )
    ).scalar_one_or_none()


async def by_username(session: AsyncSession, username: str) -> StaffUser | None:
    return (
        await session.execute(
            select(StaffUser).options(selectinload(StaffUser.villages)).where(StaffUser.username == username)
        )
    ).scalar_one_or_none()
