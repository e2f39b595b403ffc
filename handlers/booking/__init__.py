"""预约 / 我的预约 / 取消预约 / 改约: booking the public legal service from chat.

The wizard, one explicit state per step (each step accepts “取消” and expires after
``rules.wizard_minutes``)::

    booking.service → booking.place (only when there is a choice) → booking.day
        → booking.time → booking.contact → booking.confirm → booking.done
    booking.day (a full day) → booking.full → booking.contact → booking.confirm (waiting list)

Contact and consent: a name is needed (staff call villagers by it); the phone number is
optional. The confirm step asks for consent explicitly (“1” = book and keep the phone number,
“2” = book without it), so a villager who does not want to leave a number still books. The
number is kept on the booking only and erased ``rules.phone_retention_days`` after it.

A re-sent “1” cannot book twice: the booking's request key is the wizard's token, and after the
booking the villager is in ``booking.done`` for a few minutes, where “1” only repeats the code.
The rules live in :mod:`bot.services.booking`. Here: ``env`` (words, contact parsing, the per-message
context), ``wizard`` (booking), ``manage`` (my bookings, cancel, reschedule, offers), ``routes`` (the router).
"""

from __future__ import annotations

from handlers.booking.routes import router
from handlers.booking.wizard import start_booking

__all__ = ["router", "start_booking"]
