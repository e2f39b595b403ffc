"""Published versions of the township's layer: the one in use, the history, publishing, restoring.

Every change — an approved proposal, an import, a restore, a reviewer's decision about a
release — is a new row of ``knowledge_versions`` holding the whole layer, with who, when and
why. The highest id is the layer in use; restoring version N copies its layer into a new
version (history is never rewritten).

Publishing is two steps so that no transaction is held while the index is built and the eval
sets run (seconds; on SQLite the process has one connection): :func:`publish` reads the
version in use, lets the caller prepare the new layer off the loop, then inserts version + 1
in a short transaction. If someone published in between, it prepares again on top of theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.knowledge.layer import REPLACEABLE, Layer
from bot.services.knowledge.runtime import KnowledgeHolder
from bot.settings import Settings
from bot.storage.db import SessionFactory
from bot.storage.knowledge import KnowledgeVersion
from bot.storage.models import utcnow
from bot.storage.staff import StaffUser

log = logging.getLogger(__name__)

ACTION_NAMES = {"approve": "发布建议", "restore": "恢复旧版本", "import": "导入", "review": "复核决定"}
ATTEMPTS = 4


class VersionError(Exception):
    """Shown to staff as is (plain Chinese)."""


class NotAllowed(VersionError):
    """Only a reviewer may publish."""


def can_publish(staff: StaffUser | None) -> bool:
    """The reviewer permission: an active township admin marked as reviewer (the judicial office's lawyer)."""
    return staff is not None and staff.active and staff.role == "admin" and bool(staff.reviewer)


async def reviewer_of(session: AsyncSession, staff_id: int | None) -> StaffUser:
    staff = await session.get(StaffUser, staff_id) if staff_id is not None else None
    if not can_publish(staff):
        raise NotAllowed("只有有“法律审核”权限的乡管理员（司法所律师）可以发布、退回或恢复问答。")
    assert staff is not None
    return staff


async def latest_id(session: AsyncSession) -> int:
    return int((await session.execute(select(func.max(KnowledgeVersion.id)))).scalar_one_or_none() or 0)


async def published(session: AsyncSession) -> tuple[int, Layer]:
    """(version, layer) in use; (0, empty layer) before anything was published."""
    row = (
        await session.execute(select(KnowledgeVersion).order_by(KnowledgeVersion.id.desc()).limit(1))
    ).scalar_one_or_none()
    if row is None:
        return 0, Layer()
    return row.id, Layer.from_json(row.layer)


async def history(session: AsyncSession, limit: int = 100) -> list[KnowledgeVersion]:
    return list(
        (await session.execute(select(KnowledgeVersion).order_by(KnowledgeVersion.id.desc()).limit(limit))).scalars()
    )


@dataclass
class Change:
    """What :func:`publish` writes: the new layer and the version's who/why, plus what else to do in the
    same transaction (``finish(session, version)``, e.g. mark the proposal approved)."""

    layer: Layer
    action: str
    summary: str
    reason: str = ""
    by: StaffUser | None = None
    by_name: str = ""
    proposal_id: int | None = None
    restored_from: int | None = None
    finish: Callable[[AsyncSession, KnowledgeVersion], Awaitable[None]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Prepare = Callable[[int, Layer], Awaitable[Change]]


async def publish(factory: SessionFactory, settings: Settings | None, prepare: Prepare,
                  holder: KnowledgeHolder | None = None) -> KnowledgeVersion:
    """Build on the version in use with ``prepare(version, layer)`` (may raise to refuse) and insert version + 1.

    Announces the new version to every process (sync.py) and swaps ``holder`` (this process's) at once.
    """
    from bot.services.knowledge import sync

    for _attempt in range(ATTEMPTS):
        async with factory() as session:
            version, layer = await published(session)
        change = await prepare(version, layer)
        try:
            async with factory() as session, session.begin():
                if await latest_id(session) != version:
                    continue  # someone published meanwhile: prepare again on top of theirs
                row = KnowledgeVersion(
                    id=version + 1,
                    layer=change.layer.to_json(),
                    action=change.action,
                    summary=change.summary[:2000],
                    reason=change.reason[:2000],
                    proposal_id=change.proposal_id,
                    restored_from=change.restored_from,
                    by_id=change.by.id if change.by else None,
                    by_name=(change.by.display_name or change.by.username) if change.by else change.by_name,
                    created_at=utcnow(),
                )
                session.add(row)
                await session.flush()
                if change.finish is not None:
                    await change.finish(session, row)
                await sync.notify_in_transaction(session, row.id)
        except IntegrityError:
            log.info("knowledge version %d was taken meanwhile; building on the new one", version + 1)
            continue
        await sync.announce(settings, row.id)
        if holder is not None:
            await sync.catch_up(holder, factory)
        log.info("knowledge version %d published (%s): %s", row.id, row.action, row.summary)
        return row
    raise VersionError("别人同时在发布，请稍后再试一次。")


async def version_layer(session: AsyncSession, version_id: int) -> Layer:
    if version_id == 0:
        return Layer()
    row = await session.get(KnowledgeVersion, version_id)
    if row is None:
        raise VersionError(f"没有第 {version_id} 版。")
    return Layer.from_json(row.layer)


async def restore(factory: SessionFactory, settings: Settings | None, holder: KnowledgeHolder, version_id: int,
                  reviewer_id: int | None, reason: str) -> KnowledgeVersion:
    """Publish the layer of an old version again (as a new version); it must still pass the checks."""
    from bot.services.knowledge import quality, validation

    if not reason.strip():
        raise VersionError("恢复旧版本要写明原因。")
    async with factory() as session:
        reviewer = await reviewer_of(session, reviewer_id)
        old = await version_layer(session, version_id)

    async def prepare(version: int, _layer: Layer) -> Change:
        if version == version_id:
            raise VersionError(f"第 {version_id} 版就是现在用的版本。")
        problems = await quality.run(validation.problems_for, holder.current.base, old, None)
        if problems:
            raise VersionError(f"第 {version_id} 版和现在的知识库文件合不上，不能恢复：{'；'.join(problems)}")
        return Change(old, "restore", f"恢复第 {version_id} 版（{old.describe()}）", reason.strip(), by=reviewer,
                      restored_from=version_id)

    return await publish(factory, settings, prepare, holder)


async def resolve_flag(factory: SessionFactory, settings: Settings | None, holder: KnowledgeHolder, entry_id: str,
                       reviewer_id: int | None, keep: bool, reason: str = "") -> KnowledgeVersion:
    """A reviewer's decision about a flagged entry: keep the township's text (now against the new release)
    or drop the township's part (take the release's entry)."""
    async with factory() as session:
        reviewer = await reviewer_of(session, reviewer_id)

    async def prepare(_version: int, layer: Layer) -> Change:
        shipped = holder.current.base
        entry = shipped.by_id.get(entry_id)
        if keep and entry is not None and entry_id in layer.overrides:
            fields = {k: v for k, v in layer.overrides[entry_id].items() if k in (*REPLACEABLE, "reviewed")}
            new = layer.with_override(entry, entry_id, fields)
            what = f"复核后保留本乡替换的答案：{shipped.fill(entry.question)}"
        elif entry_id in layer.entries and entry is not None:
            new = layer.copy()
            new.entries.pop(entry_id)
            what = f"新发布的知识库有了同一编号的问答，删掉本乡的：{layer.entries[entry_id].get('question', '')}"
        else:
            new = layer.without_override(entry_id)
            new.variants.pop(entry_id, None)
            label = shipped.fill(entry.question) if entry is not None else entry_id
            what = f"复核后改用新发布的版本：{label}"
        if new.to_json() == layer.to_json():
            raise VersionError("这条问答已经处理过了。")
        return Change(new, "review", what, reason.strip(), by=reviewer)

    return await publish(factory, settings, prepare, holder)
