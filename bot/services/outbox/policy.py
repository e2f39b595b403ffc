"""How the outbox waits and when it gives up: claim leases, backoff, WeChat's quotas, calls that
may have reached WeChat, and which rows are patient. Decisions only, no I/O.

* **Lease** — a claim lasts ``lease`` seconds and is renewed every ``renew_every`` while its
  batch is in flight; a worker that dies stops renewing, and after at most ``lease`` +
  ``reclaim_every`` (45 s by default) another worker takes its rows over.
* **Quota** (45009 daily, 45011 per minute, 45066 same ``clientmsgid`` too soon) — the row waits
  until the quota resets (45009: the next midnight, China time; the others: a minute) and the
  wait is not a failed attempt, so no message ends ``failed`` in a quota outage.
* **Maybe delivered** — after a timeout, a dropped connection or an HTTP 5xx the call may have
  reached WeChat: the next try waits at least the client timeout plus ``timeout_margin`` from
  the start of that call. (Template and mass sends also carry an idempotency id WeChat honours.)
* **Giving up** — a transient error counts an attempt; a row fails after ``max_attempts``,
  except rows from ``patient_sources`` (staff replies and notices, answers to villagers'
  pushes, 'new reply' notices), which keep retrying until ``patient_for`` after they were queued.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))

#: WeChat's daily API quota ("reach max api daily quota limit"): resets at midnight, China time.
DAILY_QUOTA_CODES = frozenset({45009})
#: 45011 "api minute-quota reach limit, retry next minute"; 45066 the same clientmsgid again within a minute.
MINUTE_QUOTA_CODES = frozenset({45011, 45066})
#: quota errors that close the whole API for this worker until the reset (45066 is about one message)
API_WIDE_QUOTA_CODES = frozenset({45009, 45011})

#: quota is counted per API: the API a kind of row calls
API_OF_KIND = {
    "cs_text": "custom/send",
    "cs_news": "custom/send",
    "cs_image": "custom/send",
    "template": "template/send",
    "subscribe": "subscribe/bizsend",
    "mass_tag": "mass/sendall",
    "mass_openids": "mass/send",
    "mass_preview": "mass/preview",
    "untag": "tags/members/batchuntagging",
}


def next_china_midnight(now: dt.datetime) -> dt.datetime:
    """The next 00:00 in China (UTC+8, no daylight saving), as an aware UTC datetime."""
    local = now.astimezone(CHINA_TZ)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0, 0), tzinfo=CHINA_TZ)
    return midnight.astimezone(dt.UTC)


def china_time(at: dt.datetime) -> str:
    """e.g. ``12月7日 00:03`` — how staff read a time."""
    local = at.astimezone(CHINA_TZ)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


@dataclass(frozen=True)
class OutboxPolicy:
    batch_size: int = 100
    #: API calls in flight at once
    concurrency: int = 64
    #: batches processed at once by ``run`` (messages to one openid stay in order only within a batch)
    lanes: int = 1
    max_attempts: int = 8
    backoff_base: float = 5.0
    backoff_max: float = 3600.0
    #: the delay is multiplied by a random factor in [1 - jitter, 1 + jitter]
    jitter: float = 0.5
    #: seconds a claim lasts without renewal: a dead worker's rows are taken over after this
    lease: float = 40.0
    #: how often a worker renews the claims of the batches it is sending
    renew_every: float = 10.0
    #: how often a worker looks for claims that ran out (their worker died)
    reclaim_every: float = 5.0
    #: a call is cut off this long before its claim could run out (worker hosts' clocks differ a little)
    clock_margin: float = 5.0
    #: after a call that may have reached WeChat, the next try waits the client timeout plus this
    timeout_margin: float = 20.0
    #: rows whose ``source`` starts with one of these retry transient errors until ``patient_for``
    patient_sources: tuple[str, ...] = ("ticket:", "inbound:", "outbox:")
    patient_for: dt.timedelta = dt.timedelta(hours=47)
    #: a row WeChat accepted is committed as sent this many seconds later, with those accepted meanwhile
    #: (one commit per message would cost more than sending it)
    record_linger: float = 0.002
    #: a daily-quota wait ends a minute after midnight plus up to this many seconds (spreads the restart)
    quota_spread: float = 300.0
    idle_sleep: float = 0.5
    window: dt.timedelta = dt.timedelta(hours=48)
    #: hold a little before WeChat's limit, so a message is not refused in flight
    window_margin: dt.timedelta = dt.timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.renew_every >= self.lease - self.clock_margin:
            raise ValueError("renew_every must be well below the lease (minus clock_margin)")

    def backoff(self, attempts: int) -> float:
        delay: float = min(self.backoff_max, self.backoff_base * 2.0 ** max(0, attempts - 1))
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)

    def takeover_within(self) -> float:
        """Longest time a dead worker's rows wait before another worker takes them (seconds)."""
        return self.lease + self.reclaim_every

    def quota_wait(self, errcode: int, now: dt.datetime) -> dt.datetime | None:
        """When a row refused for quota may try again (None: ``errcode`` is not a quota error)."""
        if errcode in DAILY_QUOTA_CODES:  # a minute past midnight, spread over quota_spread
            return next_china_midnight(now) + dt.timedelta(seconds=60 + random.uniform(0, self.quota_spread))
        if errcode in MINUTE_QUOTA_CODES:
            return now + dt.timedelta(seconds=60 + random.uniform(0, min(self.quota_spread, 15.0)))
        return None

    def patient(self, source: str | None) -> bool:
        return bool(source) and str(source).startswith(self.patient_sources)

    def gives_up(self, *, attempts: int, source: str | None, created_at: dt.datetime, now: dt.datetime) -> bool:
        """After a transient error: is this row done trying?"""
        if attempts < self.max_attempts:
            return False
        return not self.patient(source) or now - created_at >= self.patient_for


def quota_reason(reason: str, errcode: int, until: dt.datetime) -> str:
    """``last_error`` of a row waiting for WeChat's quota (shown to staff on the ticket)."""
    if errcode in DAILY_QUOTA_CODES:
        wait = "今日额度用完，北京时间零点后自动发送 / waits for the daily quota to reset"
    else:
        wait = "一分钟后自动重发 / retried after a minute"
    return f"{reason}；{wait}（{china_time(until)}）"


def maybe_delivered_reason(reason: str, until: dt.datetime) -> str:
    return f"{reason}；可能已送达微信，{china_time(until)} 以后再试 / may have reached WeChat; retried no sooner"
