"""存为问答草稿: a staff reply on a ticket becomes a draft new entry, personal details stripped.

The villager's question (the ticket's summary) becomes the draft's question and the reply its
answer; an answer inserted from the FAQ (answer, 依据, 下一步, disclaimer) is split back into
its fields. Names, phone numbers, id numbers and addresses are taken out with the same rules
everywhere (bot/services/privacy.py), the township's own phone and address turn back into
their placeholders, and the draft is marked ``needs_edit``: a reviewer must edit it before it
can be published.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from bot.knowledge import DISCLAIMER, KnowledgeBase
from bot.services.knowledge.proposals import TEXT_MAX, ProposalError, propose
from bot.services.privacy import strip_personal
from bot.storage.db import SessionFactory
from bot.storage.knowledge import KnowledgeProposal
from bot.storage.staff import StaffUser

_BASIS_RE = re.compile(r"^\s*依据[:：](?P<basis>.*)$", re.MULTILINE)
_NEXT_RE = re.compile(r"下一步[:：]")


def split_reply(text: str) -> tuple[str, list[str], str]:
    """(answer, basis, next step) of a reply that may contain an inserted FAQ answer."""
    body = text.replace(DISCLAIMER, "").replace("以上为普法解答，不构成律师意见。", "")
    next_step = ""
    parts = _NEXT_RE.split(body, maxsplit=1)
    if len(parts) == 2:
        body, next_step = parts
    basis: list[str] = []
    match = _BASIS_RE.search(body)
    if match:
        basis = [b.strip() for b in re.split(r"[、，,；;]", match.group("basis")) if b.strip()]
        body = body[: match.start()] + body[match.end():]
    return body.strip(), basis, next_step.strip()


def new_entry_id(kb: KnowledgeBase) -> str:
    while True:
        candidate = f"local-{secrets.token_hex(3)}"
        if candidate not in kb.by_id:
            return candidate


def draft_entry(kb: KnowledgeBase, *, question: str, reply: str, topic: str | None,
                names: tuple[str, ...] = ()) -> dict[str, Any]:
    site = {k: str(v) for k, v in kb.site.items() if isinstance(v, str | int) and not isinstance(v, bool)}

    def clean(text: str) -> str:
        return strip_personal(text, names=names, site=site).strip()

    answer, basis, next_step = split_reply(reply)
    return {
        "id": new_entry_id(kb),
        "topic": topic if topic in kb.topics else "",
        "question": clean(" ".join(question.split()))[: TEXT_MAX["question"]],
        "variants": [],
        "answer": clean(answer)[: TEXT_MAX["answer"]],
        "basis": basis,
        "next_step": clean(next_step)[: TEXT_MAX["next_step"]],
    }


async def draft_from_reply(factory: SessionFactory, kb: KnowledgeBase, *, question: str, reply: str,
                           topic: str | None, ticket_number: str, staff: StaffUser,
                           names: tuple[str, ...] = ()) -> KnowledgeProposal:
    if not reply.strip():
        raise ProposalError("回复是空的，没有可以存的内容。")
    entry = draft_entry(kb, question=question, reply=reply, topic=topic, names=names)
    return await propose(factory, kb, kind="entry", entry_id=None, payload={"entry": entry}, by=staff,
                         source="ticket", source_ref=ticket_number, needs_edit=True)
