"""What the fake WeChat does with a message it accepted: whom it reaches, and a mass send's job report.

* Customer-service, template and subscribe messages and mass previews reach their ``touser``.
* A mass send reaches its audience — every follower (``filter.is_to_all``), a tag's members
  (``filter.tag_id``) or the listed openids (``/mass/send``) — less those who unfollowed and those who
  already got 4 mass messages this month (WeChat's limit per follower of a service account).
* WeChat reports every mass send with a MASSSENDJOBFINISH push: ``TotalCount`` is the audience,
  ``FilterCount`` what is left after those filters, ``SentCount`` and ``ErrorCount`` how that went.

The fake records whom each accepted call reached in ``Call.delivered_to`` (:func:`recipients`), tells its
``listeners`` (the simulator shows the messages in its villagers' chats) and hands every mass send's
:class:`MassJob` to ``FakeWeChat.on_mass_job`` (under ``serve --dev``: bot.devtools.dev_wechat pushes the
report back to the webhook).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.devtools.fake_wechat import Call, FakeWeChat

log = logging.getLogger(__name__)

#: mass messages one follower receives per month at most (service accounts)
MASS_MONTHLY_LIMIT = 4
TOUSER_PATHS = frozenset(
    {
        "/cgi-bin/message/custom/send",
        "/cgi-bin/message/template/send",
        "/cgi-bin/message/subscribe/bizsend",
        "/cgi-bin/message/mass/preview",
    }
)
MASS_PATHS = frozenset({"/cgi-bin/message/mass/sendall", "/cgi-bin/message/mass/send"})


@dataclass
class MassJob:
    """One accepted mass send: whom it was for and whom it reached."""

    msg_id: int
    audience: list[str]
    recipients: list[str]
    errors: int = 0
    status: str = "send success"

    def report(self) -> dict[str, str]:
        """The MASSSENDJOBFINISH fields WeChat pushes for this job."""
        return {
            "MsgID": str(self.msg_id),
            "Status": self.status,
            "TotalCount": str(len(self.audience)),
            "FilterCount": str(len(self.recipients) + self.errors),
            "SentCount": str(len(self.recipients)),
            "ErrorCount": str(self.errors),
        }


def _month(now: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(now + 8 * 3600))  # WeChat counts by Beijing month


def mass_audience(fake: FakeWeChat, path: str, body: dict[str, Any]) -> list[str]:
    """Who a mass send is for, before WeChat's filters."""
    if path.endswith("/mass/send"):
        return list(dict.fromkeys(str(o) for o in body.get("touser") or ()))
    filter_ = body.get("filter") or {}
    if filter_.get("is_to_all"):
        return sorted(fake.followers)
    tag_id = filter_.get("tag_id")
    return sorted(openid for openid, tags in fake.user_tags.items() if tag_id in tags)


def start_job(fake: FakeWeChat, msg_id: int, path: str, body: dict[str, Any]) -> MassJob:
    """An accepted mass send: filter its audience, count what each follower received this month, and hand the
    job to ``fake.on_mass_job`` (which reports it)."""
    audience = mass_audience(fake, path, body)
    month = _month(fake.now())
    recipients = [
        openid
        for openid in audience
        if openid not in fake.unsubscribed and fake.mass_received[(openid, month)] < MASS_MONTHLY_LIMIT
    ]
    for openid in recipients:
        fake.mass_received[(openid, month)] += 1
    job = MassJob(msg_id, audience, recipients)
    fake.mass_jobs[msg_id] = job
    if fake.on_mass_job is not None:
        fake.on_mass_job(job)
    return job


def recipients(fake: FakeWeChat, call: Call, result: dict[str, Any]) -> list[str]:
    """Whom an accepted call's message reached (nobody for the calls that send no message)."""
    body = call.body if isinstance(call.body, dict) else {}
    if call.path in TOUSER_PATHS and isinstance(body.get("touser"), str):
        return [body["touser"]]
    if call.path in MASS_PATHS:
        job = fake.mass_jobs.get(int(result.get("msg_id") or 0))
        return list(job.recipients) if job is not None else []
    return []


def delivered(fake: FakeWeChat, call: Call, result: dict[str, Any]) -> None:
    """An accepted call: record whom it reached, and tell the listeners if it reached anyone."""
    call.delivered_to = recipients(fake, call, result)
    for listener in list(fake.listeners) if call.delivered_to else ():
        try:
            listener(call)
        except Exception:  # a listener's bug must not change the API's answer
            log.exception("fake WeChat: a delivery listener failed")
