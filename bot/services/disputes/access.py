"""Who sees and changes which dispute cases (the back-office, the CLI and the chat share these rules).

* 乡管理员 (admin): every case.
* 调解员 (mediator): the cases of their villages, and cases they mediate; they record and edit them.
* 法律明白人 (volunteer): records a found dispute for their own villages and sees only what they recorded
  (read-only afterwards); nothing of anybody else.
* 三长联动 (leader), and any account holding a 三长联动 position: the cases in the 三长联动 queue
  (高 risk or 稳控中, until resolved) — they read them and add follow-up notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import ColumnElement, and_, false, or_, true

from bot.storage.disputes import DisputeCase


class Actor(Protocol):
    """A staff member as the rules need them (the back-office's ``Staff`` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def village_ids(self) -> tuple[int, ...]: ...
    @property
    def position(self) -> str: ...


def in_queue() -> ColumnElement[bool]:
    return and_(DisputeCase.queue_entered_at.is_not(None), DisputeCase.queue_left_at.is_(None))


def follows_queue(actor: Actor) -> bool:
    return actor.role == "leader" or bool(actor.position)


def visible(actor: Actor) -> ColumnElement[bool]:
    """SQL filter: the cases ``actor`` may read."""
    if actor.role == "admin":
        return true()
    clauses: list[ColumnElement[bool]] = []
    if actor.role == "mediator":
        clauses.append(DisputeCase.mediator_id == actor.id)
        if actor.village_ids:
            clauses.append(DisputeCase.village_id.in_(list(actor.village_ids)))
    elif actor.role == "volunteer":
        clauses.append(DisputeCase.recorded_by_id == actor.id)
    if follows_queue(actor):
        clauses.append(in_queue())
    return or_(*clauses) if clauses else false()


def can_see(case: DisputeCase, actor: Actor) -> bool:
    if can_edit(case, actor):
        return True
    if actor.role == "volunteer" and case.recorded_by_id == actor.id:
        return True
    return follows_queue(actor) and case.in_queue


def can_edit(case: DisputeCase, actor: Actor) -> bool:
    """Change facts, parties, status, agreement, 回访: admins, and mediators of the case's village."""
    if actor.role == "admin":
        return True
    return actor.role == "mediator" and (case.village_id in actor.village_ids or case.mediator_id == actor.id)


def can_note(case: DisputeCase, actor: Actor) -> bool:
    """Add a note to the timeline: whoever edits, and the 三长 following a queued case."""
    return can_edit(case, actor) or (follows_queue(actor) and case.in_queue)


def can_record_in(village_id: int, actor: Actor) -> bool:
    """Register a newly found dispute in this village."""
    if actor.role == "admin":
        return True
    return actor.role in ("mediator", "volunteer") and village_id in actor.village_ids


def recordable_villages(actor: Actor, all_ids: Sequence[int]) -> list[int]:
    return [vid for vid in all_ids if can_record_in(vid, actor)]


def can_report_for(village_id: int, actor: Actor) -> bool:
    """Submit a village's monthly screening report: admins, and that village's mediators."""
    return actor.role == "admin" or (actor.role == "mediator" and village_id in actor.village_ids)
