"""Disputes (纠纷台账): the grid's mediation work — cases, 月排查/月报告 with 零报告, the 三长联动 queue,
人民调解 documents, 司法确认 deadlines and 回访.

Modules, one concern each:

* ``cases`` — numbers, registering (by hand, from a ledger row, from a ticket), status, risk, the
  三长联动 queue, agreement, 司法确认 and 回访;
* ``timeline`` — the case's history, and a case's state on a past day;
* ``access`` — who sees and changes which case;
* ``ledger`` — importing the villages' Excel 台账;
* ``report`` — the monthly screening reports and the month's numbers (and their XLSX/CSV);
* ``documents`` / ``word`` — the 人民调解 documents, and writing them as DOCX;
* ``deadlines`` / ``reminders`` — dates (China time), and the periodic reminder job (:func:`tick`);
* ``notices`` — WeChat notices to staff who bound their WeChat;
* ``privacy`` — 删除我的信息 and the data export for cases;
* ``cli`` — ``lawbot disputes …``.

This package imports no heavy library at import time (python-docx, openpyxl, pygal load when used).
"""

from __future__ import annotations

from bot.services.disputes.cases import DisputeError, PartyIn, create_case, from_ticket, set_risk, set_status
from bot.services.disputes.privacy import erase_personal_data, export_personal_data
from bot.services.disputes.reminders import tick

__all__ = [
    "DisputeError",
    "PartyIn",
    "create_case",
    "erase_personal_data",
    "export_personal_data",
    "from_ticket",
    "set_risk",
    "set_status",
    "tick",
]
