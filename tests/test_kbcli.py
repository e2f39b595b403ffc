"""`lawbot ask` and `lawbot kb check|eval`, driven through click's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.kbcli import ask, kb
from tests.test_knowledge_tiny import entry_yaml, write_tiny_kb

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_kb(tmp_path_factory.mktemp("cli") / "knowledge")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_ask_prints_the_answer_a_villager_would_get(runner: CliRunner, tiny: Path) -> None:
    result = runner.invoke(ask, ["--dir", str(tiny), "宅急地咋申请"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("农村村民一户只能拥有一处宅基地")
    assert "依据：土地管理法第62条" in result.output and "下一步：" in result.output
    assert "不构成律师意见" in result.output
    assert "[answer · homestead-application · 宅基地" in result.output


def test_ask_offers_three_choices_or_hands_off(runner: CliRunner, tiny: Path) -> None:
    clarify = runner.invoke(ask, ["--dir", str(tiny), "离婚"]).output
    assert "1. 两口子都同意离婚，协议离婚咋办？" in clarify and "3. " in clarify
    handoff = runner.invoke(ask, ["--dir", str(tiny), "今天天气咋样"]).output
    assert "12348" in handoff and "观音寺乡司法所" in handoff and "不构成律师意见" not in handoff
    urgent = runner.invoke(ask, ["--dir", str(tiny), "我不想活了"]).output
    assert urgent.startswith("【紧急】") and "110" in urgent


def test_ask_json_reads_one_question_per_line(runner: CliRunner, tiny: Path) -> None:
    lines = "宅急地咋申请\n\n你好\n今天天气咋样\n离婚\n"
    result = runner.invoke(ask, ["--json", "--dir", str(tiny), "-"], input=lines)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["query"] for r in rows] == ["宅急地咋申请", "你好", "今天天气咋样", "离婚"]  # blank lines skipped
    assert [r["outcome"] for r in rows] == ["answer", "smalltalk", "handoff", "clarify"]
    first = rows[0]
    assert set(first) >= {"query", "outcome", "entry_id", "topic", "score", "candidates"}
    assert (first["entry_id"], first["topic"]) == ("homestead-application", "land.homestead")
    assert len(first["candidates"]) >= 3 and first["candidates"][0]["entry_id"] == "homestead-application"
    assert set(first["candidates"][0]) == {"entry_id", "topic", "score"}
    assert rows[1]["entry_id"] is None and rows[1]["candidates"] == [] and rows[1]["smalltalk"] == "greeting"
    assert "宅急地" in result.output  # ensure_ascii=False


TWO_TOPICS = ("工钱要不回来想找人评理", "俺俩都同意离了去哪办手续，老板欠俺工钱不给", "协议离婚要带啥，宅基地能卖不能",
              "离婚的事想找人调解", "老板不给工钱想找村里说和", "工钱要不回来找谁说和",
              "离婚的事找人说和")


def test_ask_json_an_answer_with_alternatives_is_still_an_answer(runner: CliRunner, tiny: Path) -> None:
    # a question joining two topics is answered "fairly sure": the answer plus "不是这个？回复 2 或 3" —
    # outcome stays `answer`, the offered entries are in `alternatives`, right after it in `candidates`
    rows = [json.loads(line) for line in runner.invoke(
        ask, ["--json", "--dir", str(tiny), "-"], input="\n".join(TWO_TOPICS) + "\n").output.splitlines()]
    assert all(r["outcome"] in ("answer", "clarify", "handoff", "smalltalk") for r in rows)
    row = next((r for r in rows if r["alternatives"]), None)
    assert row is not None, "none of the two-topic questions got an answer with alternatives"
    assert row["outcome"] == "answer" and 0.0 < row["confidence"] < 1.0
    offered = [a["entry_id"] for a in row["alternatives"]]
    assert offered == [c["entry_id"] for c in row["candidates"][1 : 1 + len(offered)]]
    assert row["entry_id"] == row["candidates"][0]["entry_id"] not in offered
    assert set(row["alternatives"][0]) == {"entry_id", "topic", "score"}
    human = runner.invoke(ask, ["--dir", str(tiny), row["query"]]).output
    assert "不是这个？回复 2 或 3：\n2. " in human and "\n3. " in human
    sure = json.loads(runner.invoke(ask, ["--json", "--dir", str(tiny), "宅急地咋申请"]).output)
    assert (sure["outcome"], sure["alternatives"]) == ("answer", [])


def test_ask_explain_shows_the_features(runner: CliRunner, tiny: Path) -> None:
    result = runner.invoke(ask, ["--json", "--explain", "--dir", str(tiny), "宅急地咋申请"])
    row = json.loads(result.output)
    assert row["normalized"] == "宅急地怎么申请" or row["normalized"] == "宅基地怎么申请"
    assert {"entry", "topic", "fuzz", "gate"} <= set(row["explain"][0])


def test_a_broken_knowledge_directory_fails_ask(runner: CliRunner, tmp_path: Path) -> None:
    root = write_tiny_kb(tmp_path / "k", faq={"a.yaml": "- id: x\n  topic: [\n"})
    result = runner.invoke(ask, ["--dir", str(root), "你好"])
    assert result.exit_code == 2
    assert "a.yaml:" in result.output and "YAML syntax" in result.output


def test_kb_check_lists_problems_as_file_line_message(runner: CliRunner, tiny: Path) -> None:
    result = runner.invoke(kb, ["check", "--dir", str(tiny)])
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line]
    assert problems and all(line.startswith(f"{tiny / 'topics.yaml'}:") for line in problems)
    assert "at least 3 needed" in problems[0]


def test_kb_check_summarises_a_good_directory(runner: CliRunner, tmp_path: Path) -> None:
    faq = []
    for topic in ("marriage.divorce_procedure", "land.homestead", "labor.wage_arrears", "social.assistance",
                  "service.mediation"):
        for i in range(3):
            faq.append(entry_yaml(f"{topic.split('.')[1].replace('_', '-')}-{i}", topic, f"{topic}问题{i}？",
                                  ", ".join(f"{topic}说法{i}-{j}" for j in range(5)), "", "回答。", ""))
    root = write_tiny_kb(tmp_path / "k", faq={"all.yaml": "".join(faq)})
    result = runner.invoke(kb, ["check", "--dir", str(root)])
    assert result.exit_code == 0, result.output
    assert "knowledge OK" in result.stdout and "15 entries in 5/5 topics" in result.stdout
    assert "EXAMPLE values" in result.stderr
    quiet = runner.invoke(kb, ["check", "--quiet", "--dir", str(root)])
    assert quiet.exit_code == 0 and quiet.stdout == ""


EVAL_TSV = """\
land.homestead\t宅急地咋申请
marriage.divorce_procedure\t俺俩都同意离了去哪办手续
labor.wage_arrears|social.assistance\t老板欠俺工钱不给咋办
social.assistance\t宅基地能卖不能
-\t今天天气咋样
-\t你好
"""


def test_kb_eval_reports_accuracy_confusions_and_ends_with_three_summary_lines(runner: CliRunner, tiny: Path,
                                                                               tmp_path: Path) -> None:
    path = tmp_path / "eval.tsv"
    path.write_text(EVAL_TSV, encoding="utf-8")
    result = runner.invoke(kb, ["eval", str(path), "--dir", str(tiny), "-v"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "social.assistance -> land.homestead: 1" in out  # the one mistake, in the confusions
    assert f"{path}:4: 宅基地能卖不能 — expected social.assistance" in out
    summary = out.splitlines()[-3:]
    assert summary[0].startswith("in-scope 4: top-1 75.0%  top-3 75.0%  answered 100.0%  precision 75.0%")
    assert summary[1] == "out-of-scope 2: refused 100.0%  answered confidently 0.0%"
    assert summary[2].startswith("latency p50 ")
    bars = runner.invoke(kb, ["eval", str(path), "--dir", str(tiny), "--bars"])
    assert bars.exit_code == 1  # 75 % top-1 is under the 90 % bar


def test_kb_eval_json(runner: CliRunner, tiny: Path) -> None:
    result = runner.invoke(kb, ["eval", "-", "--json", "--dir", str(tiny)], input=EVAL_TSV)
    data = json.loads(result.stdout)
    assert data["metrics"]["in_scope"] == 4 and data["metrics"]["out_of_scope"] == 2
    assert data["metrics"]["top1"] == 75.0
    assert data["confusion"] == [{"expected": "social.assistance", "got": "land.homestead", "count": 1}]
    assert data["rows"][0]["line"] == 1 and data["rows"][0]["top1"] is True


def test_kb_eval_rejects_a_malformed_file(runner: CliRunner, tiny: Path) -> None:
    result = runner.invoke(kb, ["eval", "-", "--dir", str(tiny)], input="land.homestead 宅基地\n")
    assert result.exit_code == 1 and "-:1: expected topic<TAB>question" in result.output


def test_the_cli_module_stays_light() -> None:
    code = ("import sys, bot.kbcli, bot.knowledge, bot.matcher; "
            "heavy = [m for m in ('aiohttp', 'sqlalchemy', 'jinja2') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ask_answers_the_law_command_as_the_chat_does(runner: CliRunner, tiny: Path) -> None:
    result = runner.invoke(ask, ["--dir", str(tiny), "法条 民法典1079"])
    assert result.exit_code == 0 and result.stdout.startswith("民法典第1079条\n")
    assert "（来源：民法典-婚姻家庭编）" in result.stdout
    assert "没有找到这一条" in runner.invoke(ask, ["--dir", str(tiny), "法条 婚姻法32"]).stdout
    assert "查法条请这样发" in runner.invoke(ask, ["--dir", str(tiny), "法条"]).stdout
    data = json.loads(runner.invoke(ask, ["--json", "--dir", str(tiny), "查法条 刑法第276条之一"]).stdout)
    assert {k: data[k] for k in ("outcome", "article", "source")} == {
        "outcome": "statute", "article": "刑法第276条之一", "source": "刑法.md"}
