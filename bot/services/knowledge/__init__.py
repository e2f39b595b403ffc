"""Knowledge: the shipped pack plus the township's own layer, reviewed by the judicial office, live in seconds.

Modules, one concern each:

* ``runtime``    — the knowledge in use (Knowledge, KnowledgeHolder, Texts) and the swap
* ``layer``      — the township's layer (new phrasings, entries, local answers, site values),
                   merged onto the shipped pack; flags what a new release changed
* ``validation`` — the rules of `lawbot kb check` for a change, in plain Chinese
* ``quality``    — matcher quality on the eval sets before and after, off the event loop
* ``proposals``  — propose, check, diff, approve, reject
* ``drafts``     — 存为问答草稿 from a ticket reply, personal details stripped
* ``versions``   — published versions: history, publish, restore, decisions about flags
* ``sync``       — every process follows the published version (LISTEN/NOTIFY, Redis, polling)
* ``porting``    — export / import the layer as YAML in the knowledge/ format

Callers import the package: ``from bot.services import knowledge``.
"""

from bot.services.knowledge.layer import Flag, Layer, LayerError, merge
from bot.services.knowledge.proposals import (
    KIND_NAMES,
    STATUS_NAMES,
    NeedsConfirmation,
    ProposalError,
    Refused,
    approve,
    propose,
    refresh_checks,
    reject,
)
from bot.services.knowledge.runtime import (
    MATCH_CACHE_SIZE,
    REQUIRED_TEXTS,
    Knowledge,
    KnowledgeHolder,
    Texts,
    fill,
    match_level,
    process_holder,
)
from bot.services.knowledge.sync import Follower, catch_up
from bot.services.knowledge.versions import NotAllowed, VersionError, can_publish, published, restore

__all__ = [
    "KIND_NAMES",
    "MATCH_CACHE_SIZE",
    "REQUIRED_TEXTS",
    "STATUS_NAMES",
    "Flag",
    "Follower",
    "Knowledge",
    "KnowledgeHolder",
    "Layer",
    "LayerError",
    "NeedsConfirmation",
    "NotAllowed",
    "ProposalError",
    "Refused",
    "Texts",
    "VersionError",
    "approve",
    "can_publish",
    "catch_up",
    "fill",
    "match_level",
    "merge",
    "process_holder",
    "propose",
    "published",
    "refresh_checks",
    "reject",
    "restore",
]
