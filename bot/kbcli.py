"""`lawbot ask` and `lawbot kb …` — the FAQ matcher and the knowledge base from a shell.

``check|eval|review-due`` read ``knowledge/``; ``ask`` and ``eval`` also use the township's
published layer from the configured database (``--no-layer``: the shipped pack alone; no
database or a fresh install: the pack alone). ``propose-variant|proposals|approve|reject|
export|import`` mirror the back-office's 知识库 pages (bot/services/knowledge).

Registered in the main group with ``main.add_command(ask); main.add_command(kb)``.
Only click is imported at module level: the matcher stack loads when a command runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

if TYPE_CHECKING:
    from bot.knowledge import KnowledgeBase
    from bot.matcher import Features, Matcher, MatchResult
    from bot.matcher.evaluate import Report
    from bot.services.knowledge import KnowledgeHolder, Layer
    from bot.settings import Settings
    from bot.storage.db import SessionFactory

T = TypeVar("T")

URGENT_NOTICE = "【紧急】如果有人正在受到伤害或有生命危险，请立刻拨打110（急救120）。想不开时请拨打心理援助热线12356。"
HANDOFF_TEXT = ("这个问题我还答不好。您可以：\n1. 回复“人工”，转给村里的调解员或法律明白人；\n"
                "2. 拨打12348公共法律服务热线；\n3. 找{office_name}（电话{office_phone}，{office_hours}）。")
SMALLTALK_TEXT = {
    "greeting": "您好！我是乡法通，可以直接打字或说话问法律问题，比如“离婚咋办手续”“工钱要不回来咋办”。",
    "thanks": "不客气！还有问题随时问。",
    "help": "直接把遇到的事说给我听就行，比如“邻居把路堵了”“借钱不还咋办”。我答不好的，会转给人工。",
    "bye": "再见！有事随时来问。",
}
ALTERNATIVES_TEXT = "不是这个？回复 {numbers}：\n{items}"
QUALITY_BARS = {"top1": 90.0, "top3": 97.0, "oos_answered": 5.0}

_dir_option = click.option(
    "--dir", "knowledge_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Knowledge directory (default: LAWBOT_KNOWLEDGE_DIR, i.e. the repository's knowledge/).",
)


def _knowledge_dir(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    from bot.settings import Settings

    return Path(Settings.from_env().knowledge_dir)


_no_layer_option = click.option(
    "--no-layer", is_flag=True, help="The shipped pack alone, without the township's published layer (database).",
)


def _load(explicit: Path | None, *, layer: bool = False) -> KnowledgeBase:
    """The knowledge directory, with the township's published layer on top when ``layer``."""
    from bot.knowledge import KnowledgeError, load_knowledge

    try:
        kbase = load_knowledge(_knowledge_dir(explicit))
    except KnowledgeError as exc:
        for message in exc.messages:
            click.echo(message, err=True)
        raise click.exceptions.Exit(2) from exc
    if not layer:
        return kbase
    published = _published_layer()
    if published is None or published[1].empty:
        return kbase
    from bot.services.knowledge import LayerError, merge

    version, township = published
    try:
        return merge(kbase, township).kb
    except LayerError as exc:
        click.echo(f"warning: the township's layer (version {version}) does not fit {kbase.root}; using the "
                   f"shipped pack alone: {'; '.join(exc.messages)}", err=True)
        return kbase


def _settings() -> Settings:
    from bot.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _published_layer() -> tuple[int, Layer] | None:
    """(version, layer) published in the configured database; None with no database or before `db upgrade`."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.storage.db import sqlite_file

    settings = _settings()
    url = settings.database_url
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is None or not Path(path).exists():
            return None

    async def read(factory: SessionFactory) -> tuple[int, Layer]:
        from bot.services.knowledge import published

        async with factory() as session:
            return await published(session)

    try:
        return _with_database(settings, read)
    except (SQLAlchemyError, OSError) as exc:
        text = str(exc).lower()
        if "no such table" not in text and "does not exist" not in text:
            click.echo(f"warning: could not read the township's layer from the database: {exc}", err=True)
        return None


def _with_database(settings: Settings, work: Callable[[SessionFactory], Awaitable[T]]) -> T:
    from bot.storage.all import load_all
    from bot.storage.db import create_engine, create_session_factory

    load_all()

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            return await work(create_session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _result_json(query: str, r: MatchResult) -> dict[str, Any]:
    return {
        "query": query,
        "outcome": r.outcome,
        "entry_id": r.entry.id if r.entry else None,
        "topic": r.entry.topic if r.entry else None,
        "score": round(r.score, 4),
        "candidates": [{"entry_id": c.entry.id, "topic": c.entry.topic, "score": round(c.score, 4)}
                       for c in r.candidates],
        # an answer offered with "不是这个？回复 2 或 3": the entries offered (also in candidates, after the answer)
        "alternatives": [{"entry_id": c.entry.id, "topic": c.entry.topic, "score": round(c.score, 4)}
                         for c in r.alternatives],
        "confidence": round(r.confidence, 4),
        "urgent": r.urgent,
        "smalltalk": r.smalltalk,
    }


def render_for_human(kbase: KnowledgeBase, r: MatchResult) -> str:
    """What a villager would roughly see (the chat handlers use texts.yaml for the wording)."""
    lines: list[str] = []
    if r.urgent:
        lines.append(URGENT_NOTICE)
    if r.outcome == "smalltalk":
        lines.append(SMALLTALK_TEXT.get(r.smalltalk or "greeting", SMALLTALK_TEXT["greeting"]))
    elif r.outcome == "answer" and r.entry is not None:
        lines.append(kbase.render_answer(r.entry))
        if r.alternatives:
            lines.append(ALTERNATIVES_TEXT.format(
                numbers=" 或 ".join(str(i) for i in range(2, len(r.alternatives) + 2)),
                items="\n".join(f"{i}. {kbase.fill(c.entry.question)}" for i, c in enumerate(r.alternatives, 2))))
    elif r.outcome == "clarify":
        lines.append("您是想问下面哪一个？回复数字就行：")
        lines.extend(f"{i}. {kbase.fill(c.entry.question)}" for i, c in enumerate(r.candidates[:3], 1))
        lines.append("都不是？回复“人工”转给工作人员。")
    else:
        lines.append(kbase.fill(HANDOFF_TEXT))
    meta = f"[{r.outcome}"
    if r.entry is not None:
        meta += f" · {r.entry.id} · {kbase.topic_name(r.entry.topic)}"
    meta += f" · {r.score:.2f} · p {r.confidence:.2f}" + (f" · {r.reason}" if r.reason else "") + "]"
    lines.append(meta)
    return "\n".join(lines)


@click.command("ask")
@click.argument("question", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per question (ensure_ascii off).")
@click.option("--explain", is_flag=True, help="Also show the best candidates and why they scored (for editors).")
@_dir_option
@_no_layer_option
def ask(question: str | None, as_json: bool, explain: bool, knowledge_dir: Path | None, no_layer: bool) -> None:
    """Ask the FAQ matcher QUESTION; `-` (or no argument) reads one question per stdin line."""
    from bot.matcher import Matcher

    kbase = _load(knowledge_dir, layer=not no_layer)
    matcher = Matcher(kbase)
    out = sys.stdout
    if question is not None and question != "-":
        _answer(kbase, matcher, question, as_json, out, explain)
        return
    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        _answer(kbase, matcher, line, as_json, out, explain)
        if not as_json:
            out.write("\n")


def _statute(kbase: KnowledgeBase, question: str, as_json: bool, out: TextIO) -> bool:
    """A "法条 行政复议法20" look-up, answered as the chat answers it; False if ``question`` is not one."""
    from handlers.common import LAW_PREFIXES

    asked = question.strip()
    if not asked.startswith(LAW_PREFIXES):
        return False
    article = kbase.laws.parse_query(asked)
    if as_json:
        out.write(json.dumps({"query": question, "outcome": "statute" if article else "statute_not_found",
                              "article": article.label if article else None,
                              "source": article.source if article else None,
                              "text": article.text if article else None}, ensure_ascii=False) + "\n")
    else:
        out.write((article.render() if article else _statute_not_found(kbase, asked, LAW_PREFIXES)) + "\n")
    return True


def _statute_not_found(kbase: KnowledgeBase, asked: str, prefixes: tuple[str, ...]) -> str:
    """The chat's own text (texts.yaml law_usage / law_not_found) for a look-up that found nothing."""
    from bot.knowledge import KnowledgeError
    from bot.services.knowledge import Texts

    bare = not any(asked.removeprefix(p).strip() for p in prefixes if asked.startswith(p))
    try:
        return Texts.load(kbase.root, kbase.site).get("law_usage" if bare else "law_not_found")
    except KnowledgeError:  # a directory without chat texts (tests, drafts)
        return "查法条请这样发：法条 民法典1079" if bare else "没有找到这一条。"


def _answer(kbase: KnowledgeBase, matcher: Matcher, question: str, as_json: bool, out: TextIO,
            explain: bool = False) -> None:
    if _statute(kbase, question, as_json, out):
        return
    r = matcher.match(question)
    if as_json:
        data = _result_json(question, r)
        if explain:
            data["normalized"] = r.normalized
            data["reason"] = r.reason
            data["explain"] = [{"entry_id": e.id, "score": round(s, 4), **{k: round(float(v), 4) for k, v in
                                                                        _features(f).items()}}
                               for e, s, f in matcher.rank(r.normalized)] if r.normalized else []
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    out.write(render_for_human(kbase, r) + "\n")
    if explain and r.normalized:
        out.write(f"normalised: {r.normalized}\n")
        for e, s, f in matcher.rank(r.normalized):
            parts = "  ".join(f"{k} {float(v):.2f}" for k, v in _features(f).items())
            out.write(f"  {s:.3f}  {e.id:36} {parts}\n")


def _features(f: Features) -> dict[str, float | bool]:
    return {"entry": f.entry, "topic": f.topic, "fuzz": f.fuzz, "keyword": f.keyword, "gate": f.gate,
            "exact": f.exact}


@click.group("kb")
def kb() -> None:
    """Check and evaluate the knowledge base (knowledge/); proposals, review and the township's layer."""


@kb.command("check")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when all is well.")
@_dir_option
def kb_check(quiet: bool, knowledge_dir: Path | None) -> None:
    """Validate the knowledge directory; non-zero exit with `file:line: message` lines on problems."""
    from collections import Counter

    from bot.knowledge import check_knowledge

    directory = _knowledge_dir(knowledge_dir)
    report = check_knowledge(directory)
    for item in report.due:
        click.echo(f"warning: {directory / item.entry.source_file}:{item.entry.source_line}: {item.summary()}",
                   err=True)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not report.ok:
        for problem in sorted(report.problems, key=lambda p: (p.file, p.line)):
            click.echo(str(problem))
        errors = sum(p.level == "error" for p in report.problems)
        click.echo(f"{len(report.problems)} problem(s) ({errors} stop loading) in {directory}", err=True)
        raise click.exceptions.Exit(1)
    assert report.kb is not None
    if quiet:
        return
    kbase = report.kb
    counts = Counter(e.topic for e in kbase.entries)
    variants = sum(len(e.variants) for e in kbase.entries)
    articles = sum(len(law.articles) for law in kbase.laws.laws.values())
    click.echo(f"knowledge OK: {directory}")
    click.echo(f"  {len(kbase.entries)} entries in {len(counts)}/{len(kbase.topics)} topics "
               f"(fewest: {min(counts.values())}, most: {max(counts.values())}), "
               f"{variants / len(kbase.entries):.1f} variants per entry")
    click.echo(f"  {len(kbase.laws.laws)} laws, {articles} articles; every citation resolves")
    click.echo(f"  {len(kbase.tables.synonyms)} synonyms, {len(kbase.tables.topic_gates)} topic gates, "
               f"{sum(len(r) for r in kbase.urgent_rules.rules.values())} urgent rules")
    if report.due:
        click.echo(f"  {len(report.due)} entries due for review against the law: lawbot kb review-due")


@kb.command("review-due")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list: [{entry_id, question, topic, file, line, reviewed, reasons: [{law, version, "
                   "in_force, kind, why, citations}]}].")
@_dir_option
def kb_review_due(as_json: bool, knowledge_dir: Path | None) -> None:
    """List the FAQ entries to check again because a law they rest on is newer than their `reviewed` date.

    Exit 0 whether or not entries are listed; 2 if the knowledge directory cannot be loaded.
    """
    from bot.knowledge.currency import review_due

    kbase = _load(knowledge_dir)
    due = review_due(kbase)
    if as_json:
        click.echo(json.dumps([d.as_json(kbase.topic_name(d.entry.topic)) for d in due], ensure_ascii=False,
                              indent=1))
        return
    if not kbase.currency.enabled:
        click.echo(f"warning: {kbase.root / 'law_currency.yaml'} is missing: nothing can be checked", err=True)
    if not due:
        click.echo("没有需要复核的问答。")
        return
    click.echo(f"需要复核的问答：{len(due)} 条")
    for d in due:
        e = d.entry
        click.echo("")
        click.echo(f"{e.source_file}:{e.source_line}  {e.id}  {e.question}")
        click.echo(f"  类别：{kbase.topic_name(e.topic)}；上次复核：{e.reviewed or '未填'}")
        for r in d.reasons:
            click.echo(f"  - {r.why}")


@kb.command("eval")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Metrics, confusions and every row as one JSON object.")
@click.option("-v", "--verbose", is_flag=True, help="List every miss.")
@click.option("--bars", is_flag=True,
              help="Exit 1 unless top-1 >= 90%, top-3 >= 97% and out-of-scope answered <= 5%.")
@_dir_option
@_no_layer_option
def kb_eval(file: Path, as_json: bool, verbose: bool, bars: bool, knowledge_dir: Path | None, no_layer: bool) -> None:
    """Accuracy of the matcher on FILE (topic<TAB>question; `-` = out of scope; `a|b` = either)."""
    from bot.matcher import Matcher
    from bot.matcher.evaluate import evaluate_unseen, in_bank, parse_tsv

    source = str(file)
    try:
        text = sys.stdin.read() if source == "-" else file.read_text(encoding="utf-8")
        items = parse_tsv(text, source=source)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    kbase = _load(knowledge_dir, layer=not no_layer)
    start = time.perf_counter()
    matcher = Matcher(kbase)
    build_ms = (time.perf_counter() - start) * 1000
    unknown = sorted({t for it in items for t in it.labels} - set(kbase.topics))
    if unknown:
        click.echo(f"warning: labels not in topics.yaml: {', '.join(unknown)}", err=True)
    report = evaluate_unseen(kbase, items)  # questions of the question bank: with their fold left out
    metrics = report.metrics()
    banked = sum(in_bank(kbase, it) for it in items)
    if banked and not as_json:
        click.echo(f"{banked} questions are in the question bank (question_bank.yaml): each was matched by an index "
                   "without its fold of the bank", err=True)
    if as_json:
        click.echo(json.dumps(_report_json(report, metrics, source, build_ms), ensure_ascii=False, indent=1))
    else:
        _print_report(report, matcher, source, build_ms, verbose)
    if bars and not _meets_bars(metrics):
        raise click.exceptions.Exit(1)


def _meets_bars(m: dict[str, Any]) -> bool:
    return bool(m["top1"] >= QUALITY_BARS["top1"] and m["top3"] >= QUALITY_BARS["top3"]
                and m["oos_answered"] <= QUALITY_BARS["oos_answered"])


def _report_json(report: Report, metrics: dict[str, Any], source: str, build_ms: float) -> dict[str, Any]:
    return {
        "file": source,
        "metrics": metrics,
        "index_build_ms": round(build_ms, 1),
        "per_topic": {t: {"questions": n, "top1": ok, "answered": a} for t, (n, ok, a) in report.per_topic().items()},
        "confusion": [{"expected": e, "got": g, "count": c} for (e, g), c in report.confusion().most_common()],
        "rows": [{"line": r.item.line, "question": r.item.question, "labels": sorted(r.item.labels),
                  "outcome": r.outcome, "entry_id": r.entry_id, "topics": list(r.topics[:3]),
                  "score": round(r.score, 4), "top1": r.top1, "ms": round(r.ms, 3)} for r in report.rows],
    }


def _print_report(report: Report, matcher: Matcher, source: str, build_ms: float, verbose: bool) -> None:
    kbase, cfg = matcher.kb, matcher.config
    echo = click.echo
    echo(f"{source}: {len(report.rows)} questions; knowledge {len(kbase.entries)} entries / {len(kbase.topics)} "
         f"topics; index built in {build_ms:.0f} ms")
    echo(f"thresholds: answer at confidence >= {cfg.answer_threshold:.2f} (alone >= {cfg.sure_threshold:.2f}, "
         f"topic gate, no wrong-role word), clarify at score >= {cfg.clarify_threshold:.2f}")
    m = report.metrics()
    echo(f"outcomes: {', '.join(f'{k} {v}' for k, v in sorted(m['outcomes'].items()))}")
    echo("")
    echo("per topic (questions / top-1 right / answered confidently):")
    for topic, (n, ok, answered) in report.per_topic().items():
        flag = "" if ok == n else "  <"
        echo(f"  {topic:32} {n:3} {ok:3} {answered:3}{flag}")
    confusion = report.confusion()
    if confusion:
        echo("")
        echo("confusions (expected -> got: count; '-' = out of scope answered):")
        for (expected, got), count in confusion.most_common():
            echo(f"  {expected} -> {got}: {count}")
    if verbose:
        echo("")
        echo("misses:")
        for r in report.rows:
            bad = (r.item.in_scope and not r.top1) or (not r.item.in_scope and r.answered)
            if bad:
                expected = "|".join(sorted(r.item.labels)) or "-"
                echo(f"  {source}:{r.item.line}: {r.item.question} — expected {expected}, got "
                     f"{r.topics[0] if r.topics else '(none)'} ({r.outcome} {r.score:.2f}; top-3 "
                     f"{', '.join(r.topics[:3])})")
    echo("")
    for line in report.summary_lines():
        echo(line)


# ---------------------------------------------------------------- the township's layer: proposals and review
def _holder(settings: Settings) -> KnowledgeHolder:
    from bot.knowledge import KnowledgeError
    from bot.services.knowledge import KnowledgeHolder

    try:
        return KnowledgeHolder.load(Path(settings.knowledge_dir))
    except KnowledgeError as exc:
        for message in exc.messages:
            click.echo(message, err=True)
        raise click.exceptions.Exit(2) from exc


async def _staff_id(factory: SessionFactory, name: str | None) -> int | None:
    """The account named by ``--by`` (its username, or its display name when that is unique)."""
    if not name:
        return None
    from sqlalchemy import or_, select

    from bot.storage.staff import StaffUser

    async with factory() as session:
        rows = list((await session.execute(
            select(StaffUser).where(or_(StaffUser.username == name, StaffUser.display_name == name))
        )).scalars())
    exact = [s for s in rows if s.username == name] or rows
    if len(exact) != 1:
        raise click.ClickException(f"没有这个后台账号：{name}（--by 写用户名）")
    return exact[0].id


def _layer_command(work: Callable[[Settings, SessionFactory, KnowledgeHolder], Awaitable[T]]) -> T:
    """Run ``work`` with the settings, the database and the knowledge on the published version;
    staff-facing errors become a message and exit status 1."""
    from bot.services.knowledge import VersionError, catch_up

    settings = _settings()
    holder = _holder(settings)

    async def run(factory: SessionFactory) -> T:
        await catch_up(holder, factory)
        return await work(settings, factory, holder)

    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    try:
        return _with_database(settings, run)
    except VersionError as exc:
        click.echo(str(exc), err=True)
        raise click.exceptions.Exit(1) from exc
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        raise click.ClickException(f"数据库不能用（先运行 lawbot db upgrade？）：{exc}") from exc


_reviewer_option = click.option(
    "--by", "by", required=True, help="The reviewer (username of an admin account with 法律审核)."
)
_confirm_drop_option = click.option(
    "--confirm-drop", "confirm_drop", default="",
    help="Publish although the matcher's quality drops by more than one point: the reason.",
)


@kb.command("propose-variant")
@click.argument("entry_id")
@click.argument("text")
@click.option("--by", "by", default=None, help="The back-office account proposing it (username).")
def kb_propose_variant(entry_id: str, text: str, by: str | None) -> None:
    """Propose TEXT as a new phrasing of ENTRY_ID; prints the proposal id (a reviewer publishes it)."""
    from bot.services.knowledge import propose, refresh_checks
    from bot.storage.staff import StaffUser

    async def work(settings: Settings, factory: SessionFactory, holder: KnowledgeHolder) -> tuple[int, Any]:
        staff_id = await _staff_id(factory, by)
        async with factory() as session:
            staff = await session.get(StaffUser, staff_id) if staff_id else None
        proposal = await propose(factory, holder.current.kb, kind="variant", entry_id=entry_id,
                                 payload={"text": text}, by=staff, source="cli")
        return proposal.id, await refresh_checks(factory, holder, proposal.id)

    proposal_id, checks = _layer_command(work)
    click.echo(proposal_id)
    for problem in (checks or {}).get("problems") or []:
        click.echo(f"warning: {problem}", err=True)
    for drop in ((checks or {}).get("quality") or {}).get("drops") or []:
        click.echo(f"warning: 质量下降：{drop}", err=True)


@kb.command("proposals")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list: [{id, kind, status, entry_id, title, summary, payload, proposed_by, created_at, "
                   "needs_edit, problems, drops, decided_by, decision_reason, version}].")
@click.option("--all", "show_all", is_flag=True, help="Also the published, rejected and withdrawn ones.")
def kb_proposals(as_json: bool, show_all: bool) -> None:
    """The proposals waiting for the reviewer (newest first)."""
    from bot.services.knowledge import proposals as svc

    async def work(_settings: Settings, factory: SessionFactory, holder: KnowledgeHolder) -> list[dict[str, Any]]:
        async with factory() as session:
            rows = await svc.listing(session, None if show_all else "pending")
        return [svc.as_json(p, holder.current.kb) for p in rows]

    rows = _layer_command(work)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    if not rows:
        click.echo("没有待审核的建议。" if not show_all else "还没有建议。")
        return
    for row in rows:
        status = svc.STATUS_NAMES.get(row["status"], row["status"])
        click.echo(f"{row['id']}\t{status}\t{svc.KIND_NAMES.get(row['kind'], row['kind'])}\t{row['summary']}"
                   f"\t{row['proposed_by']}")
        for problem in row["problems"]:
            click.echo(f"\t  问题：{problem}")


@kb.command("approve")
@click.argument("proposal_id", type=int)
@_reviewer_option
@click.option("--note", default="", help="Why (recorded with the version).")
@_confirm_drop_option
def kb_approve(proposal_id: int, by: str, note: str, confirm_drop: str) -> None:
    """Publish proposal PROPOSAL_ID as a new version of the township's layer (every process uses it in seconds)."""
    from bot.services.knowledge import approve

    async def work(settings: Settings, factory: SessionFactory, holder: KnowledgeHolder) -> Any:
        reviewer_id = await _staff_id(factory, by)
        return await approve(factory, settings, holder, proposal_id, reviewer_id, note=note,
                             confirm_reason=confirm_drop)

    version = _layer_command(work)
    click.echo(f"已发布第 {version.id} 版：{version.summary}")


@kb.command("reject")
@click.argument("proposal_id", type=int)
@_reviewer_option
@click.option("--reason", required=True, help="Why (the proposer sees it).")
def kb_reject(proposal_id: int, by: str, reason: str) -> None:
    """Return proposal PROPOSAL_ID to its author with a reason."""
    from bot.services.knowledge import reject

    async def work(_settings: Settings, factory: SessionFactory, _holder: KnowledgeHolder) -> int:
        reviewer_id = await _staff_id(factory, by)
        return (await reject(factory, proposal_id, reviewer_id, reason)).id

    click.echo(f"已退回建议 {_layer_command(work)}")


@kb.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def kb_export(directory: Path) -> None:
    """Write the township's published layer to DIRECTORY as YAML in the knowledge/ format."""
    from bot.services.knowledge import published
    from bot.services.knowledge.porting import export_layer

    async def work(_settings: Settings, factory: SessionFactory, _holder: KnowledgeHolder) -> tuple[int, Layer]:
        async with factory() as session:
            return await published(session)

    version, layer = _layer_command(work)
    for path in export_layer(layer, directory):
        click.echo(str(path))
    click.echo(f"第 {version} 版：{layer.describe()}", err=True)


@kb.command("import")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_reviewer_option
@click.option("--reason", default="", help="Why (recorded with the version).")
@_confirm_drop_option
def kb_import(directory: Path, by: str, reason: str, confirm_drop: str) -> None:
    """Publish the layer in DIRECTORY (written by `lawbot kb export`) as a new version."""
    from bot.services.knowledge.porting import import_layer

    async def work(settings: Settings, factory: SessionFactory, holder: KnowledgeHolder) -> Any:
        reviewer_id = await _staff_id(factory, by)
        return await import_layer(factory, settings, holder, directory, reviewer_id, reason=reason,
                                  confirm_reason=confirm_drop)

    version = _layer_command(work)
    if version is None:
        click.echo("和现在用的本乡知识库完全一样，没有导入。")
        return
    click.echo(f"已发布第 {version.id} 版：{version.summary}")
