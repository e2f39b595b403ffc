"""The booking rules and seed in ``knowledge/booking.yaml`` (parsed, checked, re-read when the file
changes), and the chat texts for code that runs outside a chat.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.services.knowledge import Texts

CONFIG_FILE = "booking.yaml"
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class BookingConfigError(ValueError):
    """knowledge/booking.yaml is malformed."""


@dataclass(frozen=True)
class Rules:
    """The booking rules from ``knowledge/booking.yaml`` (``rules:``)."""

    timezone: str = "Asia/Shanghai"
    days_ahead: int = 7
    max_upcoming: int = 2
    min_lead_minutes: int = 60
    wizard_minutes: int = 30
    reminder_eve_time: dt.time = dt.time(18, 0)
    reminder_before_minutes: int = 120
    offer_hold_minutes: int = 120
    phone_retention_days: int = 180
    adjusted_workday_weekday: int = 0
    fallback_holidays: tuple[str, ...] = ("01-01", "05-01", "05-02", "05-03", "10-01", "10-02", "10-03")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def min_lead(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.min_lead_minutes)

    @property
    def reminder_before(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.reminder_before_minutes)


@dataclass(frozen=True)
class BookingConfig:
    rules: Rules
    seed: Mapping[str, Any]
    path: str = ""


def parse_hhmm(value: Any, where: str = "time") -> dt.time:
    """'08:30' → time(8, 30); a YAML 1.1 sexagesimal int (8:30 unquoted) is accepted too."""
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and 0 <= value < 24 * 60:  # YAML reads an unquoted 8:30 as 510
        return dt.time(value // 60, value % 60)
    match = _HHMM.match(str(value).strip())
    if not match:
        raise BookingConfigError(f"{where}: expected HH:MM, got {value!r}")
    return dt.time(int(match.group(1)), int(match.group(2)))


def parse_span(value: Any, where: str = "hours") -> tuple[dt.time, dt.time]:
    """'08:30-12:00' → (08:30, 12:00)."""
    text = str(value).replace("—", "-").replace("～", "-").replace("~", "-")
    start, sep, end = text.partition("-")
    if not sep:
        raise BookingConfigError(f"{where}: expected HH:MM-HH:MM, got {value!r}")
    a, b = parse_hhmm(start, where), parse_hhmm(end, where)
    if b <= a:
        raise BookingConfigError(f"{where}: {value!r} ends before it starts")
    return a, b


def _positive_int(raw: Mapping[str, Any], key: str, default: int, *, minimum: int = 0) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BookingConfigError(f"rules.{key}: expected a whole number >= {minimum}, got {value!r}")
    return value


def parse_rules(raw: Mapping[str, Any] | None) -> Rules:
    raw = raw or {}
    d = Rules()
    timezone = str(raw.get("timezone", d.timezone))
    try:
        ZoneInfo(timezone)
    except (KeyError, ValueError) as exc:
        raise BookingConfigError(f"rules.timezone: unknown time zone {timezone!r}") from exc
    weekday = _positive_int(raw, "adjusted_workday_weekday", d.adjusted_workday_weekday)
    if weekday > 6:
        raise BookingConfigError("rules.adjusted_workday_weekday: 0 (Monday) to 6 (Sunday)")
    fallback = raw.get("fallback_holidays", list(d.fallback_holidays))
    if not isinstance(fallback, list) or not all(re.fullmatch(r"\d\d-\d\d", str(x)) for x in fallback):
        raise BookingConfigError("rules.fallback_holidays: a list of MM-DD")
    return Rules(
        timezone=timezone,
        days_ahead=_positive_int(raw, "days_ahead", d.days_ahead, minimum=1),
        max_upcoming=_positive_int(raw, "max_upcoming", d.max_upcoming, minimum=1),
        min_lead_minutes=_positive_int(raw, "min_lead_minutes", d.min_lead_minutes),
        wizard_minutes=_positive_int(raw, "wizard_minutes", d.wizard_minutes, minimum=1),
        reminder_eve_time=parse_hhmm(raw.get("reminder_eve_time", "18:00"), "rules.reminder_eve_time"),
        reminder_before_minutes=_positive_int(raw, "reminder_before_minutes", d.reminder_before_minutes),
        offer_hold_minutes=_positive_int(raw, "offer_hold_minutes", d.offer_hold_minutes, minimum=1),
        phone_retention_days=_positive_int(raw, "phone_retention_days", d.phone_retention_days, minimum=1),
        adjusted_workday_weekday=weekday,
        fallback_holidays=tuple(str(x) for x in fallback),
    )


def parse_config(data: Any, path: str = "") -> BookingConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BookingConfigError(f"{path}: expected a mapping with rules/services/places/schedules")
    rules = parse_rules(data.get("rules"))
    seed = {k: data.get(k) or [] for k in ("services", "places", "schedules", "special_days")}
    for key, items in seed.items():
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BookingConfigError(f"{path}: {key} must be a list of mappings")
    _check_seed(seed)
    return BookingConfig(rules=rules, seed=seed, path=path)


def _check_seed(seed: Mapping[str, list[dict[str, Any]]]) -> None:
    services = {str(s.get("code")) for s in seed["services"]}
    places = {str(p.get("code")) for p in seed["places"]}
    for kind, items in (("services", seed["services"]), ("places", seed["places"])):
        for item in items:
            if not item.get("code") or not item.get("name"):
                raise BookingConfigError(f"{kind}: every item needs code and name ({item!r})")
    for i, sch in enumerate(seed["schedules"]):
        where = f"schedules[{i}]"
        if str(sch.get("place")) not in places:
            raise BookingConfigError(f"{where}: unknown place {sch.get('place')!r}")
        for code in sch.get("services") or []:
            if str(code) not in services:
                raise BookingConfigError(f"{where}: unknown service {code!r}")
        for span in sch.get("hours") or []:
            parse_span(span, f"{where}.hours")
        for span in sch.get("breaks") or []:
            parse_span(span, f"{where}.breaks")
        days = sch.get("weekdays") or []
        if not days or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
            raise BookingConfigError(f"{where}: weekdays must be a list of 0 (Monday) to 6 (Sunday)")
    for i, sp in enumerate(seed["special_days"]):
        if sp.get("kind") not in ("closed", "extra"):
            raise BookingConfigError(f"special_days[{i}]: kind must be closed or extra")
        if not isinstance(sp.get("day"), dt.date):
            raise BookingConfigError(f"special_days[{i}]: day must be a date (YYYY-MM-DD)")


_config_cache: dict[Path, tuple[int, BookingConfig]] = {}


def load_config(knowledge_dir: str | Path) -> BookingConfig:
    """``knowledge/booking.yaml``, re-read when the file changes. A missing file means the defaults."""
    path = Path(knowledge_dir) / CONFIG_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return BookingConfig(rules=Rules(), seed={}, path=str(path))
    cached = _config_cache.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BookingConfigError(f"{path}: {exc}") from exc
    config = parse_config(data, str(path))
    _config_cache[path] = (mtime, config)
    return config


_texts_cache: dict[Path, tuple[tuple[int, ...], Texts]] = {}


def load_texts(knowledge_dir: str | Path) -> Texts:
    """Chat texts and site values for code that runs outside a chat (the periodic job)."""
    directory = Path(knowledge_dir)
    files = [directory / "site.yaml", directory / "texts.yaml", *sorted((directory / "texts").glob("*.yaml"))]
    stamp = tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in files)
    cached = _texts_cache.get(directory)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    site_file = directory / "site.yaml"
    site = yaml.safe_load(site_file.read_text(encoding="utf-8")) if site_file.exists() else {}
    texts = Texts.load(directory, site if isinstance(site, dict) else {})
    _texts_cache[directory] = (stamp, texts)
    return texts
