"""The bot's legal-education knowledge: FAQ entries, topics, site values, statutes, word tables.

>>> from bot.knowledge import load_knowledge            # doctest: +SKIP
>>> kb = load_knowledge(Path(settings.knowledge_dir))   # doctest: +SKIP
"""

from bot.knowledge.base import DISCLAIMER, PLACEHOLDERS, KnowledgeBase
from bot.knowledge.laws import Article, LawIndex
from bot.knowledge.loader import CheckReport, check_knowledge, load_knowledge
from bot.knowledge.model import Entry, KnowledgeError, Problem, Topic

__all__ = [
    "DISCLAIMER",
    "PLACEHOLDERS",
    "Article",
    "CheckReport",
    "Entry",
    "KnowledgeBase",
    "KnowledgeError",
    "LawIndex",
    "Problem",
    "Topic",
    "check_knowledge",
    "load_knowledge",
]
