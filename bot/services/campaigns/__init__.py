"""Legal-education campaigns: plan, preview, approve, broadcast through the outbox, report reach.

The life of a campaign::

    draft ──submit──▶ awaiting_approval ──approve (admin)──▶ scheduled ──tick──▶ sending ──▶ sent | failed
      ▲  ◀──return to draft / edit──┘                            │
      └────────────────────────────────return to draft (admin)───┘      cancel: draft, awaiting, scheduled

One module per concern; this package's names are what the back-office, the chat and the jobs use:

* ``rules`` — statuses and labels, errors, who may do what: an admin or a mediator drafts, edits, submits
  and previews; only an admin approves, sends back a scheduled campaign or cancels one that is scheduled.
  A mediator sees and changes only campaigns they drafted or that go only to their villages
  (:func:`can_see`; the services check it when given the ``Actor``), and never addresses or sees an
  openid list.
* ``lifecycle`` — the form and its checks; create, edit, submit, approve, return to draft, cancel.
* ``preview`` — :func:`request_preview` queues a ``mass_preview`` to the staff member's own openid;
  approval needs a delivered preview of the campaign's current version.
* ``quota`` — a service account reaches each follower at most 4 times a calendar month (Beijing time), a
  subscription account sends once a day. :func:`quota_status` shows what is left and
  :func:`check_quota` refuses a campaign that would go over — at approval (counting what is already
  scheduled) and again just before sending (counting what has gone out).
* ``sending`` — :func:`tick` turns due campaigns into parts, one WeChat call each — all followers
  (``filter.is_to_all``), one village tag (``filter.tag_id``) or ≤ 10,000 openids — written to the
  outbox in one transaction with idempotency keys ``campaign:{id}:{send_key}:{seq}``. The worker
  derives the ``clientmsgid`` from that key, so a retried call cannot send twice.
* ``reach`` — MASSSENDJOBFINISH events (:func:`record_job_finish`) are matched to parts by ``msg_id`` when
  it is known, otherwise to the oldest sent part still waiting for its report.
* ``tags`` — :func:`sync_village_tags` creates a WeChat tag per village on demand and puts
  followers in the tag of their village (batches of ≤ 50, paced by the API client's rate limiter),
  from the difference between ``villagers`` and ``village_tag_members``, so a rerun is a no-op.
* ``message`` and ``news`` — 图文 (news) campaigns: one WITH a cover image goes out as ``mpnews``. The worker
  (:func:`tick`, never a web request) downloads the cover (``fetch_cover``: http(s), ≤ 2 MB, an image),
  uploads it as a permanent image material, makes a WeChat draft of the article (``prepare_news``) and
  keeps the draft's ``media_id`` for the campaign's current version; an edit that changes the content
  makes a new version, so it is prepared again. A preview requested before that waits (status
  ``preparing``) and is queued once the draft exists; a due campaign waits too (retried every tick,
  failed after ``SEND_GRACE``). A failure is kept in ``mpnews_error`` as a sentence for staff. A news
  campaign WITHOUT a cover cannot be an mpnews (WeChat needs a thumb), so it still goes out as text with
  its link (:func:`message_text`).
* ``followups`` — an optional customer-service notice after the broadcast, only to villagers in the
  48-hour window who have not sent "退订".
* ``archive`` (往期普法), ``calendar`` (the legal-education dates), ``job`` (the periodic :func:`tick`).
* ``privacy`` — 删除我的信息: the follower leaves their village tag (an ``untag`` through the outbox), openid
  lists and a staff binding; :func:`erase_personal_data` / :func:`export_personal_data` are the hooks
  ``bot.services.tickets.forget_villager`` / ``export_villager`` call.

Staff members' own WeChat (the "预览绑定" code previews go to) lives in :mod:`bot.services.staff`.
"""

from __future__ import annotations

from bot.services.campaigns.archive import public_campaign, public_campaigns
from bot.services.campaigns.calendar import CalendarItem, calendar_path, load_calendar, upcoming
from bot.services.campaigns.followups import set_opt_out
from bot.services.campaigns.job import tick
from bot.services.campaigns.lifecycle import (
    MAX_DESCRIPTION,
    MAX_TEXT,
    MAX_TITLE,
    CampaignInput,
    approve,
    cancel,
    create_campaign,
    is_web_url,
    parse_openids,
    return_to_draft,
    submit,
    update_campaign,
)
from bot.services.campaigns.message import excerpt, message_text, mpnews_ready
from bot.services.campaigns.preview import preview_ok, previews, request_preview
from bot.services.campaigns.privacy import erase_personal_data, export_personal_data
from bot.services.campaigns.quota import check_quota, quota_status
from bot.services.campaigns.reach import campaign_parts, job_status_label, record_job_finish
from bot.services.campaigns.rules import (
    AUDIENCE_LABELS,
    CHINA_TZ,
    EDITABLE,
    KIND_LABELS,
    STATUS_LABELS,
    Actor,
    CampaignError,
    NotFound,
    NotPrepared,
    PermissionDenied,
    QuotaExceeded,
    can_see,
    china_time,
)
from bot.services.campaigns.store import get_campaign, list_campaigns, village_names
from bot.services.campaigns.tags import sync_village_tags, tag_name

__all__ = [
    "AUDIENCE_LABELS",
    "CHINA_TZ",
    "EDITABLE",
    "KIND_LABELS",
    "MAX_DESCRIPTION",
    "MAX_TEXT",
    "MAX_TITLE",
    "STATUS_LABELS",
    "Actor",
    "CalendarItem",
    "CampaignError",
    "CampaignInput",
    "NotFound",
    "NotPrepared",
    "PermissionDenied",
    "QuotaExceeded",
    "approve",
    "calendar_path",
    "campaign_parts",
    "can_see",
    "cancel",
    "check_quota",
    "china_time",
    "create_campaign",
    "erase_personal_data",
    "excerpt",
    "export_personal_data",
    "get_campaign",
    "is_web_url",
    "job_status_label",
    "list_campaigns",
    "load_calendar",
    "message_text",
    "mpnews_ready",
    "parse_openids",
    "preview_ok",
    "previews",
    "public_campaign",
    "public_campaigns",
    "quota_status",
    "record_job_finish",
    "request_preview",
    "return_to_draft",
    "set_opt_out",
    "submit",
    "sync_village_tags",
    "tag_name",
    "tick",
    "upcoming",
    "update_campaign",
    "village_names",
]
