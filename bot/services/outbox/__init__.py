"""The outbox: every message to a villager (or staff member) goes through WeChat's API from here.

* ``queue`` — ``enqueue`` in the caller's transaction, ``release_held``, message kinds.
* ``policy`` — leases, backoff, WeChat's quotas, maybe-delivered calls, when to give up.
* ``claims`` — claiming rows with a lease, renewing it, taking over a dead worker's rows,
  recording each row WeChat accepted at once.
* ``worker`` — :class:`OutboxWorker` (send, hold outside the 48-hour window, mark) and
  ``run_worker`` (the process entry point).

Delivery is at least once; ``bench/outbox_README.md`` says exactly when a message can repeat.
"""

from bot.services.outbox.policy import OutboxPolicy
from bot.services.outbox.queue import CS_KINDS, KINDS, MASS_KINDS, RELEASE_HELD, client_msg_id, enqueue, release_held
from bot.services.outbox.worker import (
    HELD_NOTICE_TEXT,
    OutboxWorker,
    WorkerStats,
    default_held_notice_data,
    run_worker,
    stop_on_signals,
)

__all__ = [
    "CS_KINDS",
    "HELD_NOTICE_TEXT",
    "KINDS",
    "MASS_KINDS",
    "RELEASE_HELD",
    "OutboxPolicy",
    "OutboxWorker",
    "WorkerStats",
    "client_msg_id",
    "default_held_notice_data",
    "enqueue",
    "release_held",
    "run_worker",
    "stop_on_signals",
]
