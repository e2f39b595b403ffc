"""Proposals: any staff member suggests, the reviewer (the judicial office's lawyer) publishes.

Four kinds: ``variant`` (a phrasing villagers used, for an entry), ``entry`` (a new entry),
``edit`` (a local replacement of an entry's answer / next step / details / basis) and ``site``
(local values such as the office's phone). Each proposal shows a diff, the problems
``lawbot kb check`` would report (validation.py) and the matcher quality on the eval sets
before and after (quality.py). Checks run off the event loop when the proposal is made or
changed and are cached in the row with the layer version they were computed against.

Only an active township admin with the reviewer flag publishes (:func:`approve` → a new
version, versions.py); a quality drop of more than one point needs a reason. A draft made from
a ticket reply must be edited by a reviewer before it can be published.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.knowledge import KnowledgeBase
from bot.services.knowledge import quality, validation
from bot.services.knowledge.layer import REPLACEABLE, SITE_KEYS, SITE_NAMES, Layer, LayerError, merge, to_staff
from bot.services.knowledge.runtime import Knowledge, KnowledgeHolder
from bot.services.knowledge.versions import Change, NotAllowed, VersionError, can_publish, publish, reviewer_of
from bot.settings import Settings
from bot.storage.db import SessionFactory
from bot.storage.knowledge import PROPOSAL_KINDS, KnowledgeProposal, KnowledgeVersion
from bot.storage.models import utcnow
from bot.storage.staff import StaffUser

log = logging.getLogger(__name__)

KIND_NAMES = {"variant": "新问法", "entry": "新问答", "edit": "修改答案", "site": "本乡信息"}
STATUS_NAMES = {"pending": "待审核", "approved": "已发布", "rejected": "已退回", "withdrawn": "已撤回"}
FIELD_LABELS = {"question": "问题", "topic": "类别", "variants": "问法", "keywords": "关键词", "answer": "答案",
                "details": "详细说明", "basis": "依据", "next_step": "下一步"}
VARIANT_MAX = 100
TEXT_MAX = {"answer": 600, "details": 2000, "next_step": 300, "question": 100}
CHECKS_RETRY_AFTER = dt.timedelta(seconds=90)  # a process died while checking: start again
BEIJING = dt.timezone(dt.timedelta(hours=8))


class ProposalError(VersionError):
    """Shown to staff as is (plain Chinese)."""


class Refused(ProposalError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("没有通过检查，不能发布：" + "；".join(problems))
        self.problems = problems


class NeedsConfirmation(ProposalError):
    def __init__(self, drops: list[str]) -> None:
        super().__init__("发布后机器人的回答质量会下降超过 1 个百分点：" + "；".join(drops)
                         + "。确实要发布，请写明原因再确认。")
        self.drops = drops


def today() -> dt.date:
    return dt.datetime.now(BEIJING).date()


def entry_key(entry_id: str) -> str:
    """What staff pages carry instead of an entry's id (forms, links): no slug on a staff page."""
    return hashlib.sha256(f"lawbot-entry\0{entry_id}".encode()).hexdigest()[:12]


def entry_by_key(kb: KnowledgeBase, key: str) -> str | None:
    """The entry id behind :func:`entry_key` (None: no such entry in this knowledge)."""
    return next((e.id for e in kb.entries if entry_key(e.id) == key), None) if key else None


def title(kb: KnowledgeBase, entry_id: str | None) -> str:
    entry = kb.by_id.get(entry_id or "")
    return kb.fill(entry.question) if entry else ""


# ---------------------------------------------------------------- what a proposal does to the layer
def apply(proposal: KnowledgeProposal | Mapping[str, Any], layer: Layer, shipped: KnowledgeBase,
          on: dt.date | None = None) -> Layer:
    """The layer with the proposal published (``reviewed`` = the day of publishing for answers)."""
    kind, entry_id, payload = _parts(proposal)
    reviewed = (on or today()).isoformat()
    if kind == "variant":
        return layer.with_variant(str(entry_id), str(payload["text"]))
    if kind == "entry":
        return layer.with_entry({**payload["entry"], "reviewed": reviewed})
    if kind == "edit":
        return layer.with_override(shipped.by_id.get(str(entry_id)), str(entry_id),
                                   {**payload["fields"], "reviewed": reviewed})
    if kind == "site":
        return layer.with_site(payload["site"])
    raise LayerError([f"不认识的建议类型：{kind}"])


def _parts(proposal: KnowledgeProposal | Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    if isinstance(proposal, KnowledgeProposal):
        return proposal.kind, proposal.entry_id, dict(proposal.payload)
    return str(proposal["kind"]), proposal.get("entry_id"), dict(proposal["payload"])


def affected(proposal: KnowledgeProposal | Mapping[str, Any]) -> set[str] | None:
    kind, entry_id, payload = _parts(proposal)
    if kind == "site":
        return None  # a site value is filled into every answer
    if kind == "entry":
        return {str(payload["entry"]["id"])}
    return {str(entry_id)}


def compute_checks(knowledge: Knowledge, version: int, layer: Layer,
                   proposal: KnowledgeProposal | Mapping[str, Any]) -> dict[str, Any]:
    """Problems and quality before/after (slow: run it through :func:`quality.run`)."""
    shipped = knowledge.base
    checks: dict[str, Any] = {"version": version, "problems": [], "quality": None,
                              "computed_at": utcnow().isoformat()}
    try:
        after = apply(proposal, layer, shipped)
    except LayerError as exc:
        checks["problems"] = exc.messages
        return checks
    checks["problems"] = validation.problems_for(shipped, after, affected(proposal))
    if checks["problems"]:
        return checks
    before_kb = knowledge.kb if knowledge.version == version else merge(shipped, layer).kb
    before = quality.score_cached(before_kb, shipped, version)
    checks["quality"] = quality.compare(before, quality.score(merge(shipped, after).kb))
    return checks


# ---------------------------------------------------------------- proposing
def _clean_lines(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").replace("、", "\n").splitlines()
    seen: list[str] = []
    for item in items:
        text = str(item).strip()
        if text and text not in seen:
            seen.append(text)
    return seen


def normalise(kind: str, entry_id: str | None, payload: Mapping[str, Any], kb: KnowledgeBase,
              layer: Layer | None = None) -> tuple[str | None, dict[str, Any]]:
    """Check the shape of a proposal and tidy it; raises ProposalError with what to fix."""
    if kind not in PROPOSAL_KINDS:
        raise ProposalError("不认识的建议类型。")
    if kind == "variant":
        text = " ".join(str(payload.get("text", "")).split())
        if not text:
            raise ProposalError("问法不能为空。")
        if len(text) > VARIANT_MAX:
            raise ProposalError(f"问法太长（最多 {VARIANT_MAX} 个字）。")
        if entry_id not in kb.by_id:
            raise ProposalError("没有这条问答。")
        if text in kb.by_id[entry_id].phrasings:
            raise ProposalError(f"“{title(kb, entry_id)}”已经有这个问法了。")
        return entry_id, {"text": text}
    if kind == "edit":
        if entry_id not in kb.by_id:
            raise ProposalError("没有这条问答。")
        entry = kb.by_id[entry_id]
        fields: dict[str, Any] = {}
        raw = payload.get("fields", {})
        for key in REPLACEABLE:
            if key not in raw:
                continue
            value: Any = _clean_lines(raw[key]) if key == "basis" else str(raw[key] or "").strip()[:TEXT_MAX[key]]
            current: Any = list(entry.basis) if key == "basis" else (getattr(entry, key) or "")
            if value != current:
                fields[key] = value or None if key == "details" else value
        if not fields:
            raise ProposalError("没有改动。")
        return entry_id, {"fields": fields}
    if kind == "site":
        values = {k: " ".join(str(v).split()) for k, v in (payload.get("site") or {}).items() if k in SITE_KEYS}
        changed = {k: v for k, v in values.items() if v != str(kb.site.get(k, ""))}
        if not changed:
            raise ProposalError("没有改动。")
        problems = validation.site_problems(changed)
        if problems:
            raise ProposalError("；".join(problems))
        return None, {"site": changed}
    raw_entry = dict(payload.get("entry") or {})
    new_id = str(raw_entry.get("id") or "").strip()
    if not new_id:
        raise ProposalError("新问答缺少编号。")
    taken = new_id in kb.by_id and (layer is None or new_id not in layer.entries)
    if taken:
        raise ProposalError("这个编号已经有问答了。")
    item: dict[str, Any] = {"id": new_id, "topic": str(raw_entry.get("topic") or "").strip()}
    for key in ("question", "answer", "next_step", "details"):
        value = " ".join(str(raw_entry.get(key) or "").split()) if key == "question" else \
            str(raw_entry.get(key) or "").strip()
        if value or key != "details":
            item[key] = value[:TEXT_MAX[key]]
    for key in ("variants", "keywords", "basis"):
        item[key] = _clean_lines(raw_entry.get(key))
    if raw_entry.get("urgent"):
        item["urgent"] = True
    return None, {"entry": item}


async def propose(factory: SessionFactory, kb: KnowledgeBase, *, kind: str, entry_id: str | None,
                  payload: Mapping[str, Any], by: StaffUser | None, by_name: str = "", source: str = "page",
                  source_ref: str = "", needs_edit: bool = False) -> KnowledgeProposal:
    """Save a proposal (checks are computed afterwards, :func:`refresh_checks`). The same pending
    proposal made twice is returned, not duplicated."""
    entry_id, clean = normalise(kind, entry_id, payload, kb)
    now = utcnow()
    async with factory() as session, session.begin():
        pending = (
            await session.execute(
                select(KnowledgeProposal).where(KnowledgeProposal.status == "pending",
                                                KnowledgeProposal.kind == kind,
                                                KnowledgeProposal.entry_id == entry_id)
            )
        ).scalars()
        for existing in pending:
            if existing.payload == clean:
                return existing
        proposal = KnowledgeProposal(
            kind=kind, status="pending", entry_id=entry_id, payload=clean, source=source, source_ref=source_ref[:64],
            needs_edit=needs_edit, proposed_by_id=by.id if by else None,
            proposed_by=(by.display_name or by.username) if by else (by_name or "命令行"),
            created_at=now, updated_at=now,
        )
        session.add(proposal)
        await session.flush()
    return proposal


async def update(factory: SessionFactory, kb: KnowledgeBase, proposal_id: int, staff: StaffUser,
                 payload: Mapping[str, Any]) -> KnowledgeProposal:
    """Change a pending proposal (its author or a reviewer). A reviewer's edit clears ``needs_edit``."""
    async with factory() as session, session.begin():
        proposal = await _pending(session, proposal_id)
        if proposal.proposed_by_id != staff.id and not can_publish(staff):
            raise NotAllowed("只有提建议的人或审核人可以修改这条建议。")
        from bot.services.knowledge.versions import published

        _version, layer = await published(session)
        entry_id, clean = normalise(proposal.kind, proposal.entry_id, payload, kb, layer)
        if proposal.kind == "entry":  # the id of a new entry stays what it was
            clean["entry"]["id"] = proposal.payload["entry"]["id"]
        proposal.entry_id, proposal.payload = entry_id, clean
        proposal.checks, proposal.checks_version, proposal.checks_started_at = None, None, None
        proposal.updated_at = utcnow()
        if can_publish(staff):
            proposal.needs_edit = False
    return proposal


async def _pending(session: AsyncSession, proposal_id: int) -> KnowledgeProposal:
    proposal = await session.get(KnowledgeProposal, proposal_id)
    if proposal is None:
        raise ProposalError("没有这条建议。")
    if proposal.status != "pending":
        raise ProposalError(f"这条建议{STATUS_NAMES.get(proposal.status, proposal.status)}，不能再改动。")
    return proposal


# ---------------------------------------------------------------- checks (off the event loop)
def checks_current(proposal: KnowledgeProposal, version: int) -> bool:
    return proposal.checks is not None and proposal.checks_version == version


def checks_running(proposal: KnowledgeProposal, now: dt.datetime | None = None) -> bool:
    started = proposal.checks_started_at
    return started is not None and (now or utcnow()) - started < CHECKS_RETRY_AFTER


async def refresh_checks(factory: SessionFactory, holder: KnowledgeHolder, proposal_id: int) -> dict[str, Any] | None:
    """Compute and store the checks of a pending proposal against the version in use (if not current)."""
    from bot.services.knowledge.versions import published

    async with factory() as session, session.begin():
        proposal = await session.get(KnowledgeProposal, proposal_id)
        if proposal is None or proposal.status != "pending":
            return None
        version, layer = await published(session)
        if checks_current(proposal, version):
            return proposal.checks
        proposal.checks_started_at = utcnow()
        snapshot = {"kind": proposal.kind, "entry_id": proposal.entry_id, "payload": dict(proposal.payload)}
        stamp = proposal.updated_at
    checks = await quality.run(compute_checks, holder.current, version, layer, snapshot)
    async with factory() as session, session.begin():
        proposal = await session.get(KnowledgeProposal, proposal_id)
        if proposal is None or proposal.updated_at != stamp or proposal.status != "pending":
            return checks  # changed meanwhile: the next view computes again
        proposal.checks, proposal.checks_version, proposal.checks_started_at = checks, version, None
    return checks


# ---------------------------------------------------------------- deciding
def summary(proposal: KnowledgeProposal, kb: KnowledgeBase) -> str:
    payload = proposal.payload
    if proposal.kind == "variant":
        return f"给“{title(kb, proposal.entry_id)}”加问法：{payload['text']}"
    if proposal.kind == "entry":
        return f"新问答：{payload['entry'].get('question', '')}"
    if proposal.kind == "edit":
        changed = "、".join(FIELD_LABELS.get(k, k) for k in payload["fields"])
        return f"本乡替换“{title(kb, proposal.entry_id)}”的{changed}"
    return "本乡信息：" + "、".join(f"{SITE_NAMES.get(k, k)} {v}" for k, v in payload["site"].items())


async def approve(factory: SessionFactory, settings: Settings | None, holder: KnowledgeHolder, proposal_id: int,
                  reviewer_id: int | None, *, note: str = "", confirm_reason: str = "") -> KnowledgeVersion:
    """Publish a pending proposal as a new version; raises NotAllowed, Refused, NeedsConfirmation, ProposalError."""
    async with factory() as session:
        reviewer = await reviewer_of(session, reviewer_id)
        proposal = await _pending(session, proposal_id)
    if proposal.needs_edit:
        raise ProposalError("这条草稿来自工单回复：审核人要先修改（核对个人信息已去掉，"
                            "补全问法、依据和下一步）再发布。")

    async def prepare(version: int, layer: Layer) -> Change:
        knowledge = holder.current
        if checks_current(proposal, version):
            checks = dict(proposal.checks or {})
        else:
            checks = await quality.run(compute_checks, knowledge, version, layer, proposal)
        if checks["problems"]:
            raise Refused(list(checks["problems"]))
        drops = list((checks.get("quality") or {}).get("drops") or [])
        if drops and not confirm_reason.strip():
            raise NeedsConfirmation(drops)
        new_layer = apply(proposal, layer, knowledge.base)
        reason = note.strip()
        if drops:
            confirmed = f"质量下降已确认（{'；'.join(drops)}）：{confirm_reason.strip()}"
            reason = f"{reason}；{confirmed}" if reason else confirmed

        async def finish(session: AsyncSession, row: KnowledgeVersion) -> None:
            current = await session.get(KnowledgeProposal, proposal_id, with_for_update=True)
            if current is None or current.status != "pending" or current.updated_at != proposal.updated_at:
                raise ProposalError("这条建议刚被别人改动或处理过，请刷新后再看。")
            current.status, current.version_id = "approved", row.id
            current.decided_by_id, current.decided_by = reviewer.id, reviewer.display_name or reviewer.username
            current.decided_at, current.decision_reason = utcnow(), reason
            current.checks, current.checks_version = checks, version

        return Change(new_layer, "approve", summary(proposal, knowledge.kb), reason, by=reviewer,
                      proposal_id=proposal_id, finish=finish)

    return await publish(factory, settings, prepare, holder)


async def reject(factory: SessionFactory, proposal_id: int, reviewer_id: int | None, reason: str) -> KnowledgeProposal:
    if not reason.strip():
        raise ProposalError("退回要写明原因（提建议的人会看到）。")
    async with factory() as session, session.begin():
        reviewer = await reviewer_of(session, reviewer_id)
        proposal = await _pending(session, proposal_id)
        proposal.status = "rejected"
        proposal.decided_by_id, proposal.decided_by = reviewer.id, reviewer.display_name or reviewer.username
        proposal.decided_at, proposal.decision_reason = utcnow(), reason.strip()[:2000]
    return proposal


async def withdraw(factory: SessionFactory, proposal_id: int, staff_id: int) -> KnowledgeProposal:
    async with factory() as session, session.begin():
        proposal = await _pending(session, proposal_id)
        if proposal.proposed_by_id != staff_id:
            raise NotAllowed("只能撤回自己提的建议。")
        proposal.status, proposal.decided_at = "withdrawn", utcnow()
    return proposal


# ---------------------------------------------------------------- showing
async def listing(session: AsyncSession, status: str | None = "pending", limit: int = 200) -> list[KnowledgeProposal]:
    stmt = select(KnowledgeProposal).order_by(KnowledgeProposal.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(KnowledgeProposal.status == status)
    return list((await session.execute(stmt)).scalars())


def segments(before: str, after: str) -> list[tuple[str, str]]:
    """Character diff: [("same"|"del"|"ins", text)], for <del>/<ins> on the page."""
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            out.append(("same", before[a1:a2]))
            continue
        if a2 > a1:
            out.append(("del", before[a1:a2]))
        if b2 > b1:
            out.append(("ins", after[b1:b2]))
    return out


def as_text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def diff(proposal: KnowledgeProposal, kb: KnowledgeBase) -> list[dict[str, Any]]:
    """Rows of what publishing changes: label, before, after and their character diff."""
    rows: list[dict[str, Any]] = []

    def row(label: str, before: Any, after: Any) -> None:
        b, a = to_staff(as_text(before)), to_staff(as_text(after))
        if b != a:
            rows.append({"label": label, "before": b, "after": a, "segments": segments(b, a)})

    payload = proposal.payload
    if proposal.kind == "variant":
        entry = kb.by_id.get(proposal.entry_id or "")
        row("问法", "", payload["text"])
        if entry is not None:
            rows[-1]["context"] = f"{len(entry.phrasings)} 个现有问法，例如：" + "；".join(entry.phrasings[:4])
    elif proposal.kind == "entry":
        item = payload["entry"]
        existing = kb.by_id.get(str(item.get("id")))
        topics = kb.topics
        for key in ("question", "topic", "variants", "keywords", "answer", "details", "basis", "next_step"):
            after = topics[item[key]].name if key == "topic" and item.get(key) in topics else item.get(key)
            before = getattr(existing, key, None) if existing else None
            if key == "topic" and before in topics:
                before = topics[str(before)].name
            row(FIELD_LABELS[key], list(before) if isinstance(before, tuple) else before, after)
    elif proposal.kind == "edit":
        entry = kb.by_id.get(proposal.entry_id or "")
        for key, value in payload["fields"].items():
            before = getattr(entry, key, None) if entry else None
            row(FIELD_LABELS.get(key, key), list(before) if isinstance(before, tuple) else before, value)
    else:
        for key, value in payload["site"].items():
            row(SITE_NAMES.get(key, key), kb.site.get(key, ""), value)
    return rows


def as_json(proposal: KnowledgeProposal, kb: KnowledgeBase) -> dict[str, Any]:
    """One proposal for `lawbot kb proposals --json`."""
    checks = proposal.checks or {}
    return {
        "id": proposal.id,
        "kind": proposal.kind,
        "status": proposal.status,
        "entry_id": proposal.entry_id,
        "title": title(kb, proposal.entry_id) or (proposal.payload.get("entry") or {}).get("question", ""),
        "summary": summary(proposal, kb),
        "payload": proposal.payload,
        "proposed_by": proposal.proposed_by,
        "created_at": proposal.created_at.isoformat(),
        "needs_edit": proposal.needs_edit,
        "problems": list(checks.get("problems") or []),
        "drops": list((checks.get("quality") or {}).get("drops") or []),
        "decided_by": proposal.decided_by or None,
        "decision_reason": proposal.decision_reason or None,
        "version": proposal.version_id,
    }
