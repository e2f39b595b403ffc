"""FAQ matcher benchmark — run by hand, not a test. See bench/matcher_README.md.

    .venv/bin/python bench/matcher.py quality     # every calibration/check set (+ --baseline: naive WRatio)
    .venv/bin/python bench/matcher.py quality --held-out  # … and the held-out sets: a LOOK, log it
    .venv/bin/python bench/matcher.py reach       # every entry: own phrasings and fresh ones answered with it
    .venv/bin/python bench/matcher.py kfold       # the FAQ's own variants, each ranked with its fold left out
    .venv/bin/python bench/matcher.py speed       # latency, index build, memory (shipped + synthetic 10,000 entries)
    .venv/bin/python bench/matcher.py calibrate   # confidence model + thresholds → bot/matcher/confidence.json
    .venv/bin/python bench/matcher.py weights     # ranking weights + clarify threshold (grid search)

The held-out sets (knowledge/eval/holdout.tsv, narrative_holdout.tsv) are only ever *reported*
in aggregate (``quality --held-out``; every such look is logged in bench/matcher_README.md), never
used to choose anything. scope_check.tsv likewise is only reported in aggregate.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matcher_calibrate import add_arguments as add_calibrate_arguments  # noqa: E402
from rapidfuzz import fuzz, process  # noqa: E402

from bot.knowledge import Entry, KnowledgeBase, load_knowledge  # noqa: E402
from bot.matcher import Matcher, MatcherConfig  # noqa: E402
from bot.matcher.core import Features  # noqa: E402
from bot.matcher.evaluate import Labelled, Report, Row, evaluate, evaluate_unseen, reach, read_tsv, unseen_matchers  # noqa: E402

KNOWLEDGE = ROOT / "knowledge"
TUNE = KNOWLEDGE / "eval" / "tune.tsv"
HOLDOUT = KNOWLEDGE / "eval" / "holdout.tsv"
NARRATIVE_CAL = KNOWLEDGE / "eval" / "narrative_cal.tsv"
NARRATIVE_HOLDOUT = KNOWLEDGE / "eval" / "narrative_holdout.tsv"
SHORT_CAL = KNOWLEDGE / "eval" / "short_cal.tsv"
PARAPHRASE_CAL = KNOWLEDGE / "eval" / "paraphrase_cal.tsv"
SCOPE_CAL = KNOWLEDGE / "eval" / "scope_cal.tsv"
SCOPE_CHECK = KNOWLEDGE / "eval" / "scope_check.tsv"
REACH_CAL = KNOWLEDGE / "eval" / "reach_cal.tsv"


def bank_sets() -> list[Path]:
    """The calibration sets written for the question bank (knowledge/eval/bank_*.tsv)."""
    return sorted((KNOWLEDGE / "eval").glob("bank_*.tsv"))


def _shared_eval() -> Path:
    """The shared eval directory sits next to the main checkout (…/shared/eval); a worktree is one level deeper."""
    for up in (ROOT.parent, ROOT.parent.parent):
        if (up / "shared" / "eval").is_dir():
            return up / "shared" / "eval"
    return ROOT.parent / "shared" / "eval"


DEV = _shared_eval() / "dev_queries.tsv"
NARRATIVE_DEV = _shared_eval() / "narrative_dev.tsv"

#: Out-of-scope probes written for calibration from the categories knowledge/eval/README.md
#: lists (医保/新农合/养老保险/社保卡, 户口/身份证, 天气, 价格, 种地, 看病, 贷款, 驾照, 招工, 量刑,
#: 彩票, 快递, 风俗, chit-chat) — written here, independently of holdout.tsv. The answer
#: threshold must keep these out too, so it does not lean on topic gates fitted to tune.tsv.
_PROBES_TEXT = """
新农合一年交多少钱 医保卡丢了咋补办 城乡居民养老保险交了十五年一个月能领多少 社保卡在哪里激活
住院了医保能报销多少 养老金啥时候涨 医保异地报销咋弄 大病保险咋报 户口本丢了去哪补 孩子上户口要啥材料
身份证到期了在哪换 户口迁到县城要啥手续 改名字去哪改 后天有雨没有 这两天降温不 玉米今年多少钱一斤
花生收购价多少 鸡蛋价格咋又涨了 麦子叶子发黄咋回事 花椒树咋修剪 葡萄啥时候施肥 头疼吃啥药 孩子咳嗽老不好咋办
乡卫生院几点上班 信用社贷款利息多少 房贷能提前还不 助学贷款咋申请 驾照过期了咋换 电动车要上牌不 科目二咋练
附近哪里招工 想出去打工有啥活 建筑工地招小工不 偷东西判几年 酒驾判多久 贩毒判啥刑 彩票咋兑奖 体彩在哪买
快递丢了找谁 寄快递到北京多少钱 结婚给多少礼金合适 丧事要摆几桌 搬家要看日子不 你吃饭了没 今天心情不好
讲个笑话 你几岁了 手机话费咋充 网上缴电费咋弄 村里路灯坏了找谁 学校几号开学 孩子考大学报啥专业好
种地补贴啥时候发 退伍军人有啥补贴 残疾证咋办 危房改造咋申请 老人过生日办几桌 狗打疫苗去哪打 俺家猪不吃食咋办
外出打工坐哪趟车
"""
OOS_PROBES = tuple(_PROBES_TEXT.split())


def probe_items() -> list[Labelled]:
    return [Labelled(i, frozenset(), q) for i, q in enumerate(OOS_PROBES, 1)]


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


# -- quality ------------------------------------------------------------------------
def wratio_report(kb: KnowledgeBase, items: list[Labelled], cutoff: float) -> Report:
    """Naive baseline: process.extract with WRatio over every question and variant (raw text)."""
    choices: list[str] = []
    owners: list[Entry] = []
    for entry in kb.entries:
        for phrasing in entry.phrasings:
            choices.append(phrasing)
            owners.append(entry)
    rows = []
    for item in items:
        start = time.perf_counter()
        hits = process.extract(item.question, choices, scorer=fuzz.WRatio, limit=30)
        seen: list[Entry] = []
        scores: list[float] = []
        for _, score, index in hits:
            if owners[index] not in seen:
                seen.append(owners[index])
                scores.append(score)
        ms = (time.perf_counter() - start) * 1000
        top = scores[0] / 100 if scores else 0.0
        outcome = "answer" if scores and scores[0] >= cutoff else "handoff"
        rows.append(Row(item, outcome, tuple(e.topic for e in seen[:5]), seen[0].id if seen else None, top, ms,
                        tuple(e.id for e in seen[:5])))
    return Report(tuple(rows))


def quality_sets(held_out: bool = False) -> list[tuple[str, list[Labelled]]]:
    """Every set, calibration first, then the check set; the held-out ones last, only when asked
    (aggregate numbers only)."""
    named: list[tuple[str, Path | None]] = [
        ("tune", TUNE), ("dev", DEV), ("narr-dev", NARRATIVE_DEV), ("narr-cal", NARRATIVE_CAL),
        ("short-cal", SHORT_CAL), ("para-cal", PARAPHRASE_CAL), ("scope-cal", SCOPE_CAL), ("reach-cal", REACH_CAL),
        *((path.stem.replace("_", "-"), path) for path in bank_sets()), ("probes", None), ("scope-chk", SCOPE_CHECK)]
    if held_out:
        named += [("holdout", HOLDOUT), ("narr-hold", NARRATIVE_HOLDOUT)]
    out = []
    for name, path in named:
        if path is not None and not path.exists():
            print(f"{name}: {path} missing")
            continue
        out.append((name, read_tsv(path) if path is not None else probe_items()))
    return out


def quality(args: argparse.Namespace) -> None:
    kb = load_knowledge(KNOWLEDGE)
    matcher = Matcher(kb)
    cfg = matcher.config
    print(f"knowledge: {len(kb.entries)} entries, {len(kb.topics)} topics; "
          f"answer >= {cfg.answer_threshold:.3f}, without alternatives >= {cfg.sure_threshold:.3f}")
    table = []
    for name, items in quality_sets(args.held_out):
        ours = evaluate_unseen(kb, items).metrics()  # bank questions with their fold left out
        naive = wratio_report(kb, items, 80.0).metrics() if args.baseline else None
        table.append((name, ours, naive))
    print(f"{'set':9} {'who':8} {'top-1':>6} {'top-3':>6} {'answered':>8} {'precision':>9} {'+alts':>6} "
          f"{'rescued':>7} {'e-top1':>6} {'e-prec':>6} {'oos ref':>7} {'oos ans':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for name, ours, naive in table:
        for who, m in (("matcher", ours), ("WRatio", naive)):
            if m is None:
                continue
            ent = (f"{m['entry_top1']:6.1f} {m['entry_precision']:6.1f}" if m["entry_labelled"] else f"{'':6} {'':6}")
            print(f"{name:9} {who:8} {m['top1']:6.1f} {m['top3']:6.1f} {m['coverage']:8.1f} "
                  f"{m['answer_precision']:9.1f} {m['with_alternatives']:6.1f} {m['wrong_rescued']:7d} {ent} "
                  f"{m['oos_refused']:7.1f} {m['oos_answered']:7.1f} "
                  f"{m['latency_ms_p50']:7.2f} {m['latency_ms_p99']:7.2f}")
    print("(+alts: share of answers offering 2/3; rescued: wrong answers whose right topic is an alternative;"
          " e-: entry level, where labelled)")
    if args.baseline:
        print("(WRatio: process.extract(scorer=WRatio) over raw questions+variants; 'answered' = best score >= 80)")


# -- reach ---------------------------------------------------------------------------
def reach_report(args: argparse.Namespace) -> None:
    """Every entry: how many of its own phrasings (all indexed) and of its fresh ones (reach_cal.tsv,
    unseen) get a confident answer with that entry; entries below --below listed with their misses."""
    kb = load_knowledge(KNOWLEDGE)
    rows = reach(Matcher(kb), read_tsv(REACH_CAL))
    own = sum(r.answered for r in rows), sum(r.phrasings for r in rows)
    fresh = sum(r.fresh_answered for r in rows), sum(r.fresh for r in rows)
    first = sum(r.fresh_first for r in rows)
    print(f"{len(rows)} entries: own phrasings answered with their entry {own[0]}/{own[1]} "
          f"({100 * own[0] / own[1]:.1f} %); questions {sum(r.question for r in rows)}/{len(rows)}; "
          f"fresh (reach_cal.tsv) {fresh[0]}/{fresh[1]} ({100 * fresh[0] / max(1, fresh[1]):.1f} %) answered, "
          f"{first}/{fresh[1]} answered or offered first")
    print(f"lowest share of own phrasings: {min(r.share for r in rows):.2f}")
    for r in sorted(rows, key=lambda r: (r.share, r.entry_id)):
        if r.share < args.below or not r.question or (r.fresh and r.fresh_answered < r.fresh):
            print(f"{r.entry_id:42} own {r.answered:2}/{r.phrasings:<2} question {'yes' if r.question else 'NO '}"
                  + (f"  fresh {r.fresh_answered}/{r.fresh}" if r.fresh else ""))
            if args.misses:
                for phrasing, outcome, top in r.misses:
                    print(f"    {outcome:8} {top:38} {phrasing}")


# -- k-fold over the FAQ's own phrasings ------------------------------------------------
def kfold(args: argparse.Namespace) -> None:
    """Every variant ranked by an index built without it (variant i of an entry is in fold i mod k):
    ~2,000 villager phrasings the matcher has not seen — a large, holdout-like signal for ranking
    knobs and for the topics whose vocabulary is thin (``--per-topic``)."""
    kb = load_knowledge(KNOWLEDGE)
    rows: list[Row] = []
    for fold in range(args.folds):
        entries, items = [], []
        for e in kb.entries:
            entries.append(replace(e, variants=tuple(v for i, v in enumerate(e.variants) if i % args.folds != fold)))
            items += [Labelled(len(items), frozenset({e.topic}), v, frozenset({e.id}))
                      for i, v in enumerate(e.variants) if i % args.folds == fold]
        rows += evaluate(Matcher(kb.with_entries(tuple(entries))), items).rows
    m = Report(tuple(rows)).metrics()
    print(f"{args.folds}-fold over {m['in_scope']} variants: top-1 {m['top1']:.1f}  top-3 {m['top3']:.1f}  "
          f"entry top-1 {m['entry_top1']:.1f}  answered {m['coverage']:.1f}  precision {m['answer_precision']:.1f}")
    if args.per_topic:
        for topic, (n, right, _) in sorted(Report(tuple(rows)).per_topic().items(), key=lambda kv: kv[1][1] / kv[1][0]):
            print(f"  {topic:34} {right:3}/{n:<3} {100 * right / n:5.1f}")


# -- calibration ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Sample:
    labels: frozenset[str]
    smalltalk: bool
    feats: tuple[tuple[str, Features], ...]  # (topic, features) for every retrieved entry


def _samples(kb: KnowledgeBase, items: list[Labelled], config: MatcherConfig) -> list[_Sample]:
    """Every entry's features for every item; a question-bank item with its fold of the bank left out."""
    out = []
    for item, wide in zip(items, unseen_matchers(kb, items, replace(config, rescore_top=10**6)), strict=True):
        r = wide.match(item.question)
        if r.outcome == "smalltalk" or not r.candidates:
            out.append(_Sample(item.labels, r.outcome == "smalltalk", ()))
            continue
        ranked = wide.rank(r.normalized, limit=10**6, text=item.question)
        out.append(_Sample(item.labels, False, tuple((e.topic, f) for e, _, f in ranked if f.entry > 0)))
    return out


def _scored(sample: _Sample, w: tuple[float, float, float, float, float]) -> list[tuple[float, str, bool]]:
    we, wt, wf, wk, gp = w
    total = we + wt + wf + wk
    return sorted(((max(0.0, we * f.entry + wt * f.topic + wf * f.fuzz + wk * f.keyword - (0 if f.gate else gp))
                    / total, topic, f.gate) for topic, f in sample.feats), reverse=True)


def weights(args: argparse.Namespace) -> None:
    """Ranking weights (grid search on top-1 + ½·top-3) and the clarify threshold; calibration sets only."""
    kb = load_knowledge(KNOWLEDGE)
    items = (read_tsv(TUNE) + [i for p in (DEV, NARRATIVE_DEV) if p.exists() for i in read_tsv(p)]
             + read_tsv(NARRATIVE_CAL) + probe_items())
    best: tuple[float, float, float, MatcherConfig] | None = None
    for pw in (0.3, 0.6, 1.0):
        base = replace(MatcherConfig(), pinyin_weight=pw)
        samples = _samples(kb, items, base)
        ins = [s for s in samples if s.labels]
        penalties = (args.gate_penalty,) if args.gate_penalty is not None else (0.1, 0.2, 0.3, 0.4)
        fuzzes = (args.w_fuzz,) if args.w_fuzz is not None else (0.0, 0.25, 0.5, 1.0)
        for w in itertools.product((0.5, 1.0, 1.5), (0.5, 1.0, 1.5, 2.0), fuzzes, (0.0, 0.1, 0.2), penalties):
            t1 = t3 = 0
            for s in ins:
                ranked = _scored(s, w)
                t1 += bool(ranked) and ranked[0][1] in s.labels
                t3 += any(t in s.labels for _, t, _ in ranked[:3])
            objective = (t1 + 0.5 * t3) / len(ins)
            if best is None or objective > best[0] + 1e-9:
                cfg = replace(base, w_entry=w[0], w_topic=w[1], w_fuzz=w[2], w_keyword=w[3], gate_penalty=w[4])
                best = (objective, t1 / len(ins), t3 / len(ins), cfg)
    assert best is not None
    _, top1, top3, cfg = best
    print(f"weights: {cfg}  top-1 {100 * top1:.1f}%  top-3 {100 * top3:.1f}% (tune + dev)")

    samples = _samples(kb, items, cfg)
    w = (cfg.w_entry, cfg.w_topic, cfg.w_fuzz, cfg.w_keyword, cfg.gate_penalty)
    # clarify: hand off as many out-of-scope questions as possible while keeping all but
    # --handoff of the in-scope questions whose right topic is in the top 3 out of the handoff
    useful = sorted(min(1.0, ranked[0][0]) for s in samples if s.labels and (ranked := _scored(s, w))
                    and any(t in s.labels for _, t, _ in ranked[:3]))
    clarify = int(useful[int(len(useful) * args.handoff)] * 100) / 100 if useful else 0.0
    n_out = sum(1 for s in samples if not s.labels and not s.smalltalk)
    refused = sum(1 for s in samples if not s.labels and not s.smalltalk
                  and (not (ranked := _scored(s, w)) or min(1.0, ranked[0][0]) < clarify))
    print(f"clarify_threshold={clarify:.2f}: {refused}/{n_out} non-smalltalk out-of-scope questions handed off")
    print(f"MatcherConfig: {replace(cfg, clarify_threshold=clarify)}")


def calibrate(args: argparse.Namespace) -> None:
    from matcher_calibrate import calibrate as run

    sets = {"tune": read_tsv(TUNE), "narrative-cal": read_tsv(NARRATIVE_CAL), "short-cal": read_tsv(SHORT_CAL),
            "paraphrase-cal": read_tsv(PARAPHRASE_CAL), "scope-cal": read_tsv(SCOPE_CAL),
            "reach-cal": read_tsv(REACH_CAL), **{path.stem.replace("_", "-"): read_tsv(path) for path in bank_sets()},
            "probes": probe_items()}
    narrative = ["narrative-cal"]
    if DEV.exists():
        sets["dev"] = read_tsv(DEV)
    if NARRATIVE_DEV.exists():
        sets["narrative-dev"] = read_tsv(NARRATIVE_DEV)
        narrative.append("narrative-dev")
    run(load_knowledge(KNOWLEDGE), sets, narrative, args)


# -- speed -----------------------------------------------------------------------------
def synthetic_kb(kb: KnowledgeBase, n: int, seed: int = 7) -> KnowledgeBase:
    """n entries in the language of the shipped ones: every phrasing splices a piece of
    another phrasing of the same topic into a shipped phrasing, and one character in
    three phrasings is a random typo (a character from the knowledge's own alphabet) —
    so the vocabulary grows the way a real, larger FAQ's would, and every entry differs."""
    rng = random.Random(seed)
    alphabet = sorted({ch for e in kb.entries for p in e.phrasings for ch in p if "\u4e00" <= ch <= "\u9fff"})
    by_topic: dict[str, list[str]] = {}
    for e in kb.entries:
        by_topic.setdefault(e.topic, []).extend(e.phrasings)

    def vary(text: str, topic: str) -> str:
        donor = rng.choice(by_topic[topic])
        cut, take = rng.randrange(len(text) + 1), rng.randrange(len(donor) + 1)
        out = list(text[:cut] + donor[take:take + rng.randint(2, 6)] + text[cut + rng.randint(0, 3):])
        if out and rng.random() < 0.33:
            out[rng.randrange(len(out))] = rng.choice(alphabet)
        return "".join(out)

    entries = []
    for i in range(n):
        base = kb.entries[i % len(kb.entries)]
        entries.append(replace(base, id=f"{base.id}-syn{i}", question=vary(base.question, base.topic),
                               variants=tuple(vary(v, base.topic) for v in base.variants),
                               keywords=tuple(vary(k, base.topic) for k in base.keywords)))
    return kb.with_entries(tuple(entries))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _latency(matcher: Matcher, questions: list[str], rounds: int) -> dict[str, float]:
    """Per-question latency. CPU time of this thread (time.thread_time) is what one core spends;
    wall time also counts waiting for the CPU, which other processes on a busy machine take."""
    for q in questions[:50]:
        matcher.match(q)
    cpu, wall = [], []
    gc.collect()
    for _ in range(rounds):
        for q in questions:
            w0, c0 = time.perf_counter(), time.thread_time()
            matcher.match(q)
            cpu.append((time.thread_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
    cpu.sort()
    wall.sort()

    def pct(values: list[float], q: float) -> float:
        return round(values[int(q * (len(values) - 1))], 3)

    return {"cpu_p50_ms": pct(cpu, 0.5), "cpu_p99_ms": pct(cpu, 0.99), "cpu_max_ms": round(cpu[-1], 3),
            "wall_p50_ms": pct(wall, 0.5), "wall_p99_ms": pct(wall, 0.99)}


def speed_one(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    _pin_one_core()
    kb = load_knowledge(KNOWLEDGE)
    questions = [i.question for p in (TUNE, DEV) if p.exists() for i in read_tsv(p)]
    if args.entries:
        kb = synthetic_kb(kb, args.entries)
    gc.collect()
    before = _rss_mb()
    start = time.perf_counter()
    matcher = Matcher(kb)
    build = time.perf_counter() - start
    latency = _latency(matcher, questions, args.rounds)
    print(json.dumps({"entries": len(kb.entries), "build_s": round(build, 3), **latency, "rss_mb": round(_rss_mb(), 1),
                      "rss_before_index_mb": round(before, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def speed(args: argparse.Namespace) -> None:
    for entries, rounds in ((0, 5), (10_000, 1)):
        cmd = [sys.executable, __file__, "speed-one", "--entries", str(entries), "--rounds", str(rounds)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        print(("shipped " if not entries else "10,000  ") + out)
    start = time.perf_counter()
    lines = "\n".join(itertools.islice(itertools.cycle(
        [i.question for i in read_tsv(TUNE)]), 1000)) + "\n"
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bot.kbcli import ask; "
            "ask.main(['--json', '-'], standalone_mode=True)")
    done = subprocess.run([sys.executable, "-c", code], input=lines, capture_output=True, text=True, check=True)
    print(f"lawbot ask --json - with 1,000 lines: {time.perf_counter() - start:.2f} s wall "
          f"({len(done.stdout.splitlines())} JSON lines)")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code.replace("'--json', '-'", "'你好'")], capture_output=True, check=True)
    print(f"lawbot ask '你好' start-up: {time.perf_counter() - start:.2f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    qual = sub.add_parser("quality")
    qual.add_argument("--baseline", action="store_true", help="also the naive rapidfuzz WRatio baseline")
    qual.add_argument("--held-out", action="store_true",
                      help="also the held-out sets (aggregate only) — a look: log it in bench/matcher_README.md")
    qual.set_defaults(func=quality)
    rch = sub.add_parser("reach", help="every entry: own and fresh phrasings answered with it")
    rch.add_argument("--below", type=float, default=1.0, help="list entries answering less than this share")
    rch.add_argument("--misses", action="store_true", help="also list the phrasings not answered with their entry")
    rch.set_defaults(func=reach_report)
    kf = sub.add_parser("kfold", help="the FAQ's variants ranked by an index built without them")
    kf.add_argument("--folds", type=int, default=5)
    kf.add_argument("--per-topic", action="store_true")
    kf.set_defaults(func=kfold)
    cal = sub.add_parser("calibrate", help="fit the confidence model (bench/matcher_calibrate.py)")
    add_calibrate_arguments(cal)
    cal.set_defaults(func=calibrate)
    wts = sub.add_parser("weights", help="ranking weights and the clarify threshold")
    cal = wts
    cal.add_argument("--gate-penalty", type=float, default=None, help="fix the gate penalty instead of searching")
    cal.add_argument("--w-fuzz", type=float, default=None, help="fix the rapidfuzz weight instead of searching")
    cal.add_argument("--handoff", type=float, default=0.015,
                     help="share of in-scope questions with the right topic in the top 3 that may be handed off")
    cal.set_defaults(func=weights)
    sub.add_parser("speed").set_defaults(func=speed)
    one = sub.add_parser("speed-one")
    one.add_argument("--entries", type=int, default=0)
    one.add_argument("--rounds", type=int, default=3)
    one.set_defaults(func=speed_one)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
