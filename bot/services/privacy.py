"""Personal data shown to staff: one masking rule for every feature — a phone number given with consent, and
one a villager typed into any message (a ticket's story, 补充, a question).

* :func:`mask_phone` — a number on its own: '13800138000' → '138****8000'.
* :func:`find_phones` / :func:`mask_phones` — numbers inside free text (mobile numbers, also written with
  spaces or dashes, full-width digits or +86; landlines with an area code), masked the same way. Staff see
  a text masked unless they may see the consented number too (the ticket's assignee, or an admin's audited
  "显示完整号码"); pages without such a person (the queue, knowledge gaps) always mask.
* :func:`remove_phones` / :func:`remove_phones_deep` — the numbers taken out for good (180 days after the
  matter ends, and from the questions kept for knowledge review).
"""

from __future__ import annotations

import re
from typing import Any

#: a mobile number (11 digits from 13–19, perhaps as 138 0013 8000 / 138-0013-8000, full-width, +86) or a
#: landline with its area code (0571-88888888, 010 12345678); never part of a longer run of digits
_D = "[0-9０-９]"
_SEP = r"[ \-－—]?"
PHONE_IN_TEXT = re.compile(
    rf"(?<![0-9０-９])(?:(?:\+|＋)?(?:86|８６){_SEP})?[1１][3-9３-９]"
    rf"(?:{_SEP}{_D}){{9}}(?![0-9０-９])"
    rf"|(?<![0-9０-９])0[1-9１-９]{_D}{{1,2}}{_SEP}[2-9２-９]{_D}{{6,7}}(?![0-9０-９])"
)
#: a number masked by :func:`mask_phone` (a stored reply that echoed it): still seven digits of it
MASKED_IN_TEXT = re.compile(r"(?<![0-9])[01][0-9]{2}\*{3,}[0-9]{4}(?![0-9])")
_FULL_WIDTH = str.maketrans("０１２３４５６７８９＋", "0123456789+")
#: what a number taken out for good becomes
PHONE_REMOVED = "[电话已删除]"


def mask_phone(phone: str | None) -> str:
    """'13800138000' → '138****8000'; short numbers are masked whole, never shown."""
    if not phone:
        return ""
    digits = phone.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:3] + "*" * max(len(digits) - 7, 1) + digits[-4:]


def _digits(found: str) -> str:
    digits = re.sub(r"\D", "", found.translate(_FULL_WIDTH))
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits


def find_phones(text: str | None) -> list[str]:
    """The phone numbers in a text, as plain digits."""
    return [_digits(m.group(0)) for m in PHONE_IN_TEXT.finditer(text or "")]


def mask_phones(text: str | None) -> str:
    """The text with every phone number in it masked like :func:`mask_phone`."""
    return PHONE_IN_TEXT.sub(lambda m: mask_phone(_digits(m.group(0))), text or "")


def shown_to_staff(text: str | None, *, full: bool) -> str:
    """A villager's text on a staff page: as written when ``full`` (the person who may see the number),
    else with the numbers masked."""
    return (text or "") if full else mask_phones(text)


def remove_phones(text: str | None) -> str:
    """Every phone number in the text, and every masked one, replaced by :data:`PHONE_REMOVED`."""
    return MASKED_IN_TEXT.sub(PHONE_REMOVED, PHONE_IN_TEXT.sub(PHONE_REMOVED, text or ""))


def remove_phones_deep(value: Any) -> Any:
    """:func:`remove_phones` on every string inside a JSON value (a push, a stored reply, an outbox payload)."""
    if isinstance(value, str):
        return remove_phones(value)
    if isinstance(value, list):
        return [remove_phones_deep(v) for v in value]
    if isinstance(value, dict):
        return {k: remove_phones_deep(v) for k, v in value.items()}
    return value
