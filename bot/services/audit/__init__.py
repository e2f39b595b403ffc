"""The audit trail in words, for the back-office's 操作记录 page.

* ``names`` — every action code → Chinese (a test checks every code written anywhere has one), the
  filter groups, the object kinds;
* ``objects`` — what an entry was about (工单 2026-0003, 普法活动《…》, a villager by name and village).

Writing entries stays where it is: ``adm.audit`` in views, ``bot.services.tickets.audit_row`` in services.
"""

from __future__ import annotations

from bot.services.audit.names import ACTION_NAMES, GROUPS, OBJECT_TYPE_NAMES, action_name, group_of
from bot.services.audit.objects import describe

__all__ = ["ACTION_NAMES", "GROUPS", "OBJECT_TYPE_NAMES", "action_name", "describe", "group_of"]
