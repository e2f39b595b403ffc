"""Staff: what the bot keeps about the people who answer villagers, beyond their back-office account
(bot.storage.staff): their own WeChat (bound with a code, for notices and campaign previews), the township
duty roster (值班), and whether they have a back-office page open (presence)."""

from __future__ import annotations

from bot.services.staff.duty import (
    WEEKDAY_NAMES,
    DutyError,
    OnDuty,
    Roster,
    active_admins,
    clear_day,
    duty_or_admins,
    local_day,
    on_duty,
    roster,
    set_day,
    set_weekday,
    set_weekdays,
)
from bot.services.staff.presence import PRESENT_WITHIN, is_present, present, touch
from bot.services.staff.wechat import (
    BIND_CODE_TTL,
    BIND_WORD,
    BIND_WORDS,
    MAX_BIND_FAILURES,
    Binding,
    bind_openid,
    bind_with_code,
    binding,
    binding_code,
    bound_openids,
    channels,
    is_staff_openid,
    staff_openid,
    staff_openids,
    unbind,
)

__all__ = [
    "BIND_CODE_TTL",
    "BIND_WORD",
    "BIND_WORDS",
    "MAX_BIND_FAILURES",
    "PRESENT_WITHIN",
    "WEEKDAY_NAMES",
    "Binding",
    "DutyError",
    "OnDuty",
    "Roster",
    "active_admins",
    "bind_openid",
    "bind_with_code",
    "binding",
    "binding_code",
    "bound_openids",
    "channels",
    "clear_day",
    "duty_or_admins",
    "is_present",
    "is_staff_openid",
    "local_day",
    "on_duty",
    "present",
    "roster",
    "set_day",
    "set_weekday",
    "set_weekdays",
    "staff_openid",
    "staff_openids",
    "touch",
    "unbind",
]
