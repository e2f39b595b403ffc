"""Staff: what the bot keeps about the people who answer villagers, beyond their back-office account
(bot.storage.staff). For now: their own WeChat, bound with a code, so previews and notices reach them."""

from __future__ import annotations

from bot.services.staff.wechat import (
    BIND_CODE_TTL,
    BIND_WORD,
    bind_openid,
    binding_code,
    staff_openid,
    staff_openids,
    unbind,
)

__all__ = ["BIND_CODE_TTL", "BIND_WORD", "bind_openid", "binding_code", "staff_openid", "staff_openids", "unbind"]
