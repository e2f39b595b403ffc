"""How staff name and find a villager: by name, village and masked phone — never by the WeChat openid.

A villager is a WeChat follower (``villagers.openid``); staff never see or type that id. What they
see is a :class:`Card`: the name the villager gave (``villagers.display_name``, or the name on their
latest booking), their village, their phone masked (``138****5678``, from the villager row, their
latest ticket or booking with consent), and how many tickets they have. :func:`search` finds
villagers by any of those, by a ticket number or by a booking code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.privacy import mask_phone
from bot.storage.booking import Booking
from bot.storage.models import Village, Villager
from bot.storage.tickets import Ticket

SEARCH_LIMIT = 30
ERASED = "（已删除个人信息的村民）"
_MASKED = re.compile(r"^(\d{3})\*+(\d{4})$")
_DIGITS = re.compile(r"^\d{4,13}$")
_DELETED_NAME = "（已删除）"


@dataclass(frozen=True)
class Card:
    """A villager as staff see them."""

    id: int
    name: str  # "" when the villager never gave one
    village: str  # "" when not known
    phone: str  # masked, "" when none was kept
    subscribed: bool
    tickets: int

    @property
    def label(self) -> str:
        """'张大娘 · 观音寺村 · 138****5678', or '观音寺村的村民 · 138****5678' without a name."""
        who = self.name or (f"{self.village}的村民" if self.village else "未留名的村民")
        parts = [who]
        if self.name and self.village:
            parts.append(self.village)
        if self.phone:
            parts.append(self.phone)
        return " · ".join(parts)


async def cards(session: AsyncSession, openids: Iterable[str | None]) -> dict[str, Card]:
    """The cards of these villagers (openid → card); unknown openids are left out."""
    wanted = sorted({o for o in openids if o})
    if not wanted:
        return {}
    rows = (
        await session.execute(
            select(Villager, Village.name)
            .outerjoin(Village, Village.id == Villager.village_id)
            .where(Villager.openid.in_(wanted))
        )
    ).all()
    booked = await _latest(session, Booking, (Booking.name, Booking.phone), wanted)
    ticketed = await _latest(session, Ticket, (Ticket.contact_phone,), wanted)
    counts = dict(
        (
            await session.execute(
                select(Ticket.openid, func.count()).where(Ticket.openid.in_(wanted)).group_by(Ticket.openid)
            )
        ).all()
    )
    out: dict[str, Card] = {}
    for villager, village in rows:
        b_name, b_phone = booked.get(villager.openid, ("", None))
        (t_phone,) = ticketed.get(villager.openid, (None,))
        name = villager.display_name or (b_name if b_name != _DELETED_NAME else "")
        out[villager.openid] = Card(
            id=villager.id,
            name=name or "",
            village=village or "",
            phone=mask_phone(villager.phone or t_phone or b_phone),
            subscribed=villager.subscribed,
            tickets=int(counts.get(villager.openid, 0)),
        )
    return out


async def _latest(session: AsyncSession, model: Any, columns: Sequence[Any], openids: Sequence[str]) -> dict[str, Any]:
    """openid → (columns…) of the villager's newest row of ``model`` (bookings, tickets): one query."""
    newest = select(func.max(model.id)).where(model.openid.in_(openids)).group_by(model.openid).scalar_subquery()
    rows = (await session.execute(select(model.openid, *columns).where(model.id.in_(newest)))).all()
    return {str(row[0]): tuple(row[1:]) for row in rows}


def _phone_filter(query: str) -> tuple[str, str] | None:
    """A phone query as (prefix, suffix): full number, masked '138****5678', or its last 4+ digits."""
    compact = re.sub(r"[\s-]", "", query)
    masked = _MASKED.match(compact)
    if masked:
        return masked.group(1), masked.group(2)
    if _DIGITS.match(compact):
        return ("", compact) if len(compact) < 11 else (compact, "")
    return None


async def search(session: AsyncSession, query: str, *, limit: int = SEARCH_LIMIT) -> list[Card]:
    """Villagers matching a name, village, phone (full, masked or its last digits), ticket number or
    booking code; the most recently active first."""
    query = query.strip()[:64]
    if not query:
        return []
    openids: set[str] = set()
    stmts: list[Any] = [
        select(Ticket.openid).where(Ticket.number == query),
        select(Booking.openid).where(Booking.code == query),
    ]
    phone = _phone_filter(query)
    if phone is not None:
        pattern = "%".join(phone)
        stmts += [
            select(model.openid).where(col.like(pattern), model.openid.is_not(None)).limit(limit)
            for col, model in ((Villager.phone, Villager), (Ticket.contact_phone, Ticket), (Booking.phone, Booking))
        ]
    else:
        stmts += [
            select(Villager.openid).where(Villager.display_name.contains(query, autoescape=True)),
            select(Booking.openid)
            .where(Booking.name.contains(query, autoescape=True), Booking.name != _DELETED_NAME)
            .limit(limit),
            select(Villager.openid)
            .join(Village, Village.id == Villager.village_id)
            .where(or_(Village.name == query, Village.name.contains(query, autoescape=True)))
            .order_by(Villager.last_inbound_at.desc())
            .limit(limit),
        ]
    for stmt in stmts:
        openids.update(str(o) for (o,) in await session.execute(stmt) if o)
    if not openids:
        return []
    found_cards = await cards(session, openids)
    last_seen = dict(
        (
            await session.execute(
                select(Villager.openid, Villager.last_inbound_at).where(Villager.openid.in_(found_cards))
            )
        ).all()
    )
    ordered = sorted(
        found_cards.items(), key=lambda kv: (last_seen.get(kv[0]) is not None, last_seen.get(kv[0])), reverse=True
    )
    return [card for _openid, card in ordered[:limit]]


async def openid_of(session: AsyncSession, villager_id: int) -> str | None:
    """The openid behind a card (for the services that work by openid); None if there is no such villager."""
    found = await session.execute(select(Villager.openid).where(Villager.id == villager_id))
    return found.scalar_one_or_none()


__all__ = ["ERASED", "Card", "cards", "openid_of", "search"]
