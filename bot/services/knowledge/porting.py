"""`lawbot kb export DIR` / `lawbot kb import DIR`: the township's layer as YAML in the knowledge/ format.

    DIR/faq/township.yaml   the township's own entries, exactly as in knowledge/faq/*.yaml
                            (can be reviewed in git or contributed upstream as they are)
    DIR/local.yaml          variants: new phrasings for shipped entries (entry id → list)
                            replacements: local answers of shipped entries, with the shipped text
                            and hash they were made against
    DIR/site.yaml           local site values (only the ones the township changed)

Import reads the same files back with the loader's rules (``file:line`` on a problem), checks
the layer like a proposal and publishes it as one new version.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge import KnowledgeBase
from bot.knowledge.loader import load_entry_file
from bot.services.knowledge import quality, validation
from bot.services.knowledge.layer import SITE_KEYS, Layer, canonical_item, entry_item, merge
from bot.services.knowledge.runtime import KnowledgeHolder
from bot.services.knowledge.versions import Change, VersionError, publish, reviewer_of
from bot.settings import Settings
from bot.storage.db import SessionFactory
from bot.storage.knowledge import KnowledgeVersion

ENTRIES_FILE = "faq/township.yaml"
LOCAL_FILE = "local.yaml"
SITE_FILE = "site.yaml"
_HEADERS = {
    ENTRIES_FILE: "# 本乡自己的问答（格式同 knowledge/faq/*.yaml）。由 lawbot kb export 写出。\n",
    LOCAL_FILE: "# 本乡对随版本发布的问答的改动：variants 是新问法，replacements 是本乡替换的答案\n"
                "# （shipped / shipped_hash 记着替换时发布版的原文，别改）。由 lawbot kb export 写出。\n",
    SITE_FILE: "# 本乡信息（只列本乡改过的项）。由 lawbot kb export 写出。\n",
}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(path: Path, rel: str, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)
    path.write_text(_HEADERS[rel] + text, encoding="utf-8")


def export_layer(layer: Layer, directory: Path) -> list[Path]:
    """Write the layer; returns the files written (all three, empty ones too, so an import sees deletions)."""
    entries = []
    for item in layer.entries.values():
        entry = canonical_item(item)
        if isinstance(entry.get("reviewed"), str):
            entry["reviewed"] = dt.date.fromisoformat(entry["reviewed"])  # a YAML date, as in knowledge/faq
        entries.append(entry)
    written = []
    for rel, data in ((ENTRIES_FILE, entries),
                      (LOCAL_FILE, {"variants": layer.variants, "replacements": layer.overrides}),
                      (SITE_FILE, dict(layer.site))):
        _dump(directory / rel, rel, data)
        written.append(directory / rel)
    return written


def read_layer(directory: Path, shipped: KnowledgeBase) -> Layer:
    """Read an exported directory; raises VersionError with ``file:line`` lines on a problem."""
    if not directory.is_dir():
        raise VersionError(f"{directory}: 没有这个目录")
    problems: list[str] = []

    def load(rel: str) -> Any:
        path = directory / rel
        if not path.exists():
            return None
        try:
            return yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            problems.append(f"{path}: YAML 格式错误：{exc}")
            return None

    site_raw = load(SITE_FILE) or {}
    local = load(LOCAL_FILE) or {}
    if not isinstance(site_raw, dict):
        problems.append(f"{directory / SITE_FILE}:1: 应是“项目: 值”的映射")
        site_raw = {}
    if not isinstance(local, dict) or not all(isinstance(local.get(k) or {}, dict)
                                              for k in ("variants", "replacements")):
        problems.append(f"{directory / LOCAL_FILE}:1: 应有 variants: 和 replacements: 两个映射")
        local = {}
    site = {str(k): str(v) for k, v in site_raw.items()}
    problems += [f"{directory / SITE_FILE}: {p}" for p in validation.site_problems(site)]
    entries, found = load_entry_file(directory, ENTRIES_FILE, shipped.topics, {**shipped.site, **site})
    problems += [str(p) for p in found if p.level == "error"]
    variants = {str(k): [str(x) for x in v] for k, v in (local.get("variants") or {}).items() if isinstance(v, list)}
    replacements = {str(k): dict(v) for k, v in (local.get("replacements") or {}).items() if isinstance(v, dict)}
    for value in replacements.values():
        if isinstance(value.get("reviewed"), dt.date):
            value["reviewed"] = value["reviewed"].isoformat()
    if problems:
        raise VersionError("\n".join(problems))
    return Layer(variants, {e.id: entry_item(e) for e in entries}, replacements,
                 {k: v for k, v in site.items() if k in SITE_KEYS})


async def import_layer(factory: SessionFactory, settings: Settings | None, holder: KnowledgeHolder, directory: Path,
                       reviewer_id: int | None, *, reason: str = "",
                       confirm_reason: str = "") -> KnowledgeVersion | None:
    """Publish the layer in ``directory`` as one version (None when it is the layer in use already)."""
    from bot.services.knowledge.proposals import NeedsConfirmation, Refused

    async with factory() as session:
        reviewer = await reviewer_of(session, reviewer_id)
    shipped = holder.current.base
    new = read_layer(directory, shipped)
    unchanged = False

    async def prepare(version: int, layer: Layer) -> Change:
        nonlocal unchanged
        if new.to_json() == layer.to_json():
            unchanged = True
            raise VersionError("unchanged")
        problems = await quality.run(validation.problems_for, shipped, new, None)
        if problems:
            raise Refused(problems)
        before_kb = merge(shipped, layer).kb
        before = await quality.run(quality.score_cached, before_kb, shipped, version)
        after = await quality.run(quality.score, merge(shipped, new).kb)
        drops = quality.compare(before, after)["drops"]
        why = reason.strip() or f"从 {directory} 导入"
        if drops:
            if not confirm_reason.strip():
                raise NeedsConfirmation(drops)
            why += f"；质量下降已确认（{'；'.join(drops)}）：{confirm_reason.strip()}"
        return Change(new, "import", f"导入：{new.describe()}", why, by=reviewer)

    try:
        return await publish(factory, settings, prepare, holder)
    except VersionError:
        if unchanged:
            return None
        raise
