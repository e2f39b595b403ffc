"""The legal-education calendar (knowledge/campaign_calendar.yaml): dates to plan campaigns around, and
the ones coming up.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.settings import Settings


@dataclass(frozen=True)
class CalendarItem:
    id: str
    name: str
    start: tuple[int, int]  # (month, day)
    end: tuple[int, int]
    theme: str = ""
    laws: tuple[str, ...] = ()
    title: str = ""
    text: str = ""

    def dates(self, year: int) -> tuple[dt.date, dt.date]:
        return dt.date(year, *self.start), dt.date(year, *self.end)

    @property
    def when_label(self) -> str:
        (m1, d1), (m2, d2) = self.start, self.end
        if (m1, d1) == (m2, d2):
            return f"{m1}月{d1}日"
        if d1 == 1 and m1 == m2 and d2 >= 28:
            return f"{m1}月（全月）"
        return f"{m1}月{d1}日—{m2}月{d2}日"


def _month_day(raw: Any, where: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2})-(\d{1,2})", str(raw).strip())
    if not match:
        raise ValueError(f"{where}: expected MM-DD, got {raw!r}")
    month, day = int(match.group(1)), int(match.group(2))
    dt.date(2024, month, day)  # a leap year: validates the day
    return month, day


def load_calendar(path: Path) -> list[CalendarItem]:
    """knowledge/campaign_calendar.yaml → items (ValueError with the entry named on a bad one)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw_items = data.get("dates", []) if isinstance(data, dict) else []
    items: list[CalendarItem] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_items):
        where = f"{path.name} entry {i + 1}"
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("name"):
            raise ValueError(f"{where}: needs id and name")
        item_id = str(raw["id"])
        if item_id in seen:
            raise ValueError(f"{where}: id {item_id!r} twice")
        seen.add(item_id)
        if "date" in raw:
            start = end = _month_day(raw["date"], where)
        elif "month" in raw:
            month = int(raw["month"])
            last = (dt.date(2023, month % 12 + 1, 1) - dt.timedelta(days=1)).day if month < 12 else 31
            start, end = (month, 1), (month, last)
        else:
            start, end = _month_day(raw.get("start"), where), _month_day(raw.get("end"), where)
        if end < start:
            raise ValueError(f"{where}: ends before it starts")
        items.append(
            CalendarItem(
                id=item_id,
                name=str(raw["name"]),
                start=start,
                end=end,
                theme=str(raw.get("theme", "")).strip(),
                laws=tuple(str(x) for x in raw.get("laws", []) or []),
                title=str(raw.get("title", raw["name"])).strip(),
                text=str(raw.get("text", "")).strip(),
            )
        )
    return items


def calendar_path(settings: Settings) -> Path:
    return Path(settings.knowledge_dir) / "campaign_calendar.yaml"


@dataclass(frozen=True)
class Suggestion:
    item: CalendarItem
    start: dt.date
    end: dt.date
    days_until: int  # 0 while it is on


def upcoming(items: Iterable[CalendarItem], today: dt.date, days: int = 60) -> list[Suggestion]:
    """Calendar dates that are on now or start within ``days``, soonest first."""
    found: list[Suggestion] = []
    for item in items:
        for year in (today.year, today.year + 1):
            start, end = item.dates(year)
            if end < today:
                continue
            until = max(0, (start - today).days)
            if until <= days:
                found.append(Suggestion(item, start, end, until))
            break
    return sorted(found, key=lambda s: (s.start, s.item.id))
