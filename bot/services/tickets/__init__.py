"""Tickets: intake, assignment, deadlines, replies through the outbox, escalation, satisfaction, privacy.

Shared by the chat handlers (handlers/handoff.py), the back-office (bot/admin/tickets_views.py),
the operator CLI (``lawbot tickets``, :mod:`bot.services.tickets.cli`) and the periodic job. Every
function works inside the caller's transaction (``session``) and never commits. One module per concern;
this package's names are what those callers use:

* ``intake`` — numbers (``2026-0001``: a per-year counter row, incremented with ``UPDATE … RETURNING``;
  the row lock serialises concurrent intakes on PostgreSQL, SQLite serialises writers anyway) and
  assignment: round robin over the active mediators of the villager's village (the one whose last
  automatic assignment is oldest); no village or no mediator → the township queue (``assignee_id`` None).
* ``deadlines`` — the first response is due within N *working hours* of the Chinese calendar;
  N is ``LAWBOT_FIRST_RESPONSE_HOURS``, else :data:`DEFAULT_FIRST_RESPONSE_HOURS`.
* ``alerts`` — urgent tickets: due within ``LAWBOT_URGENT_RESPONSE_MINUTES`` day and night, the duty person
  (值班) beside the mediator, an alert (WeChat notices, the back-office banner and sound) until a staff member
  opens the ticket, every admin told when nobody did in time; :func:`file_urgent` is the chat's way in.
* ``job`` — :func:`tick` marks tickets past their first-response deadline once, raises their priority
  and escalates them to the township admins (idempotent: ``UPDATE … WHERE overdue_at IS NULL``).
* ``escalation`` (三长联动), ``notices`` (WeChat notices to staff), ``actions`` (reply, note, assign,
  status, agreement), ``thread``, ``access`` (who sees what), ``lookups`` and ``satisfaction`` (the
  villager's side), ``errors``.
* ``privacy`` — :func:`forget_villager` anonymises a villager's tickets and deletes personal fields;
  :func:`export_villager` returns everything stored about one openid. Other features join in by
  exposing ``async def erase_personal_data(session, openid)`` / ``async def export_personal_data(session,
  openid) -> dict`` in a package listed in ``PRIVACY_MODULES`` (bot.services.booking does).
"""

from __future__ import annotations

from bot.services.tickets.access import can_see, staff_of_village, visible_to
from bot.services.tickets.actions import REPLY_MAX_CHARS, add_note, assign, set_agreement, set_status, staff_reply
from bot.services.tickets.alerts import (
    URGENT_KIND_NAMES,
    AlertOutcome,
    EscalationOutcome,
    category_name,
    escalate_to,
    escalate_unseen,
    escalation_pending_for,
    kind_name,
    make_urgent,
    mark_opened,
    pending_alerts,
    position_holders,
    raise_alert,
    urgent_due,
)
from bot.services.tickets.deadlines import (
    CHINA_TZ,
    format_due,
    format_time,
    is_overdue,
    local,
    statutory_clock,
)
from bot.services.tickets.errors import TicketError
from bot.services.tickets.escalation import (
    ESCALATION_TARGETS,
    LEADER_TARGETS,
    POSITION_TARGETS,
    TARGET_POSITIONS,
    escalate,
    mark_urgent,
)
from bot.services.tickets.intake import (
    Intake,
    Part,
    add_villager_message,
    create_ticket,
    file_urgent,
    parse_phone,
    summary_of,
)
from bot.services.tickets.job import tick
from bot.services.tickets.lookups import followup_ticket, latest_open_ticket, may_follow_up, tickets_of
from bot.services.tickets.notices import admin_ids, notify_staff
from bot.services.tickets.privacy import export_villager, forget_villager
from bot.services.tickets.satisfaction import (
    SATISFACTION_NAMES,
    pending_satisfaction,
    record_satisfaction,
    satisfaction_question_is_last,
)
from bot.services.tickets.thread import add_event, audit_row, deliveries
from bot.storage.tickets import (
    ANSWERED,
    ASSIGNED,
    CLOSED,
    IN_PROGRESS,
    MEDIATING,
    NEW,
    OPEN_STATUSES,
    RESOLVED,
    STATUSES,
    TRANSFERRED,
)

__all__ = [
    "ANSWERED",
    "ASSIGNED",
    "CHINA_TZ",
    "CLOSED",
    "ESCALATION_TARGETS",
    "IN_PROGRESS",
    "LEADER_TARGETS",
    "MEDIATING",
    "NEW",
    "OPEN_STATUSES",
    "POSITION_TARGETS",
    "REPLY_MAX_CHARS",
    "RESOLVED",
    "SATISFACTION_NAMES",
    "STATUSES",
    "TARGET_POSITIONS",
    "TRANSFERRED",
    "URGENT_KIND_NAMES",
    "AlertOutcome",
    "EscalationOutcome",
    "Intake",
    "Part",
    "TicketError",
    "add_event",
    "add_note",
    "add_villager_message",
    "admin_ids",
    "assign",
    "audit_row",
    "can_see",
    "category_name",
    "create_ticket",
    "deliveries",
    "escalate",
    "escalate_to",
    "escalate_unseen",
    "escalation_pending_for",
    "export_villager",
    "file_urgent",
    "followup_ticket",
    "forget_villager",
    "format_due",
    "format_time",
    "is_overdue",
    "kind_name",
    "latest_open_ticket",
    "local",
    "make_urgent",
    "mark_opened",
    "mark_urgent",
    "may_follow_up",
    "notify_staff",
    "parse_phone",
    "pending_alerts",
    "pending_satisfaction",
    "position_holders",
    "raise_alert",
    "record_satisfaction",
    "satisfaction_question_is_last",
    "set_agreement",
    "set_status",
    "staff_of_village",
    "staff_reply",
    "statutory_clock",
    "summary_of",
    "tick",
    "tickets_of",
    "urgent_due",
    "visible_to",
]
