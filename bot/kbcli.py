"""`lawbot ask` and `lawbot kb check|eval|review-due` — the FAQ matcher and the knowledge base from a shell.

Registered in the main group with ``main.add_command(ask); main.add_command(kb)``.
Only click is imported at module level: the matcher stack loads when a command runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from bot.knowledge import KnowledgeBase
    from bot.matcher import Features, Matcher, MatchResult
    from bot.matcher.evaluate import Report

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


def _load(explicit: Path | None) -> KnowledgeBase:
    from bot.knowledge import KnowledgeError, load_knowledge

    try:
        return load_knowledge(_knowledge_dir(explicit))
    except KnowledgeError as exc:
        for message in exc.messages:
            click.echo(message, err=True)
        raise click.exceptions.Exit(2) from exc


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
def ask(question: str | None, as_json: bool, explain: bool, knowledge_dir: Path | None) -> None:
    """Ask the FAQ matcher QUESTION; `-` (or no argument) reads one question per stdin line."""
    from bot.matcher import Matcher

    kbase = _load(knowledge_dir)
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
    """Check and evaluate the knowledge base (knowledge/)."""


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
def kb_eval(file: Path, as_json: bool, verbose: bool, bars: bool, knowledge_dir: Path | None) -> None:
    """Accuracy of the matcher on FILE (topic<TAB>question; `-` = out of scope; `a|b` = either)."""
    from bot.matcher import Matcher
    from bot.matcher.evaluate import evaluate, parse_tsv

    source = str(file)
    try:
        text = sys.stdin.read() if source == "-" else file.read_text(encoding="utf-8")
        items = parse_tsv(text, source=source)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    kbase = _load(knowledge_dir)
    start = time.perf_counter()
    matcher = Matcher(kbase)
    build_ms = (time.perf_counter() - start) * 1000
    unknown = sorted({t for it in items for t in it.labels} - set(kbase.topics))
    if unknown:
        click.echo(f"warning: labels not in topics.yaml: {', '.join(unknown)}", err=True)
    report = evaluate(matcher, items)
    metrics = report.metrics()
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
