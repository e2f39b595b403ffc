"""The command-line mirror: `lawbot kb propose-variant|proposals|approve|reject|export|import`, `lawbot ask` and
`lawbot kb eval` on the published layer, `lawbot admin create-user --reviewer`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bot.admin.cli import admin
from bot.kbcli import ask, kb
from bot.services.knowledge import Layer, published
from bot.storage.all import load_all
from bot.storage.db import create_engine, create_session_factory
from tests.test_knowledge_loop import QUESTION, RIGHT_ENTRY
from tests.test_tickets_support import cheap_hashing

__all__ = ["cheap_hashing"]

NEW_ENTRY = {
    "id": "local-road",
    "topic": "land.dispute_resolution",
    "question": "村里修路占了俺家的承包地，给补偿吗？",
    "variants": ["修路占了俺家地给钱不", "村里修路把俺的地占了咋办", "修村道占承包地有补偿没", "占地修路不给钱找谁",
                 "俺家地被修路用了赔不赔"],
    "answer": "村里修路占用承包地，要经过村民会议讨论决定，并对承包户给予合理补偿；不能不商量就占，也不能不给补偿。",
    "basis": ["农村土地承包法第55条"],
    "next_step": "先找村委会问清是否经过村民会议、补偿多少；谈不拢找村调委会调解，或打12348。",
    "reviewed": "2026-12-10",
}


def migrate(url: str) -> None:
    async def run() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(load_all().metadata.create_all)
        await engine.dispose()

    asyncio.run(run())


def layer_of(url: str) -> tuple[int, Layer]:
    async def run() -> tuple[int, Layer]:
        load_all()
        engine = create_engine(url)
        try:
            async with create_session_factory(engine)() as session:
                return await published(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.fixture
def town(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, str]:
    """A migrated database with a mediator, an admin and the lawyer (admin with 法律审核)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'town.sqlite3'}"
    monkeypatch.setenv("LAWBOT_DATABASE_URL", url)
    monkeypatch.delenv("LAWBOT_REDIS_URL", raising=False)
    migrate(url)
    runner = CliRunner()
    for args in (["med", "--role", "mediator", "--village", "1"], ["chief", "--role", "admin"],
                 ["lawyer", "--role", "admin", "--reviewer", "--name", "王律师"]):
        result = runner.invoke(admin, ["create-user", *args, "--password-stdin"], input="pw-for-tests-123\n")
        assert result.exit_code == 0, result.output
    assert "reviewer" in result.output
    return runner, url


def test_only_admins_can_be_reviewers(town: tuple[CliRunner, str]) -> None:
    runner, _url = town
    result = runner.invoke(admin, ["create-user", "m9", "--role", "mediator", "--village", "1", "--reviewer",
                                   "--password-stdin"], input="pw-for-tests-123\n")
    assert result.exit_code != 0 and "只有乡管理员" in result.output


def test_propose_review_and_ask_from_the_command_line(town: tuple[CliRunner, str]) -> None:
    runner, url = town
    before = json.loads(runner.invoke(ask, ["--json", QUESTION]).output)
    assert before["outcome"] != "answer"

    proposed = runner.invoke(kb, ["propose-variant", RIGHT_ENTRY, QUESTION, "--by", "med"])
    assert proposed.exit_code == 0, proposed.output
    proposal_id = int(proposed.stdout.strip())
    other = int(runner.invoke(kb, ["propose-variant", RIGHT_ENTRY, "地的事找谁"]).stdout.strip())
    listed = json.loads(runner.invoke(kb, ["proposals", "--json"]).stdout)
    assert [p["id"] for p in listed] == [other, proposal_id]
    mine = listed[1]
    assert mine["kind"] == "variant" and mine["status"] == "pending" and mine["entry_id"] == RIGHT_ENTRY
    assert mine["payload"] == {"text": QUESTION} and mine["proposed_by"] == "med" and mine["problems"] == []
    assert mine["title"] == "地界、承包地有纠纷，该找谁解决？"
    assert {"summary", "created_at", "needs_edit", "drops", "decided_by", "decision_reason", "version"} <= set(mine)

    for who in ("med", "chief"):  # not reviewers
        refused = runner.invoke(kb, ["approve", str(proposal_id), "--by", who])
        assert refused.exit_code == 1 and "法律审核" in refused.output
    assert layer_of(url)[0] == 0
    approved = runner.invoke(kb, ["approve", str(proposal_id), "--by", "lawyer", "--note", "村民常这么说"])
    assert approved.exit_code == 0, approved.output
    assert "已发布第 1 版" in approved.output
    rejected = runner.invoke(kb, ["reject", str(other), "--by", "lawyer", "--reason", "太笼统"])
    assert rejected.exit_code == 0 and f"已退回建议 {other}" in rejected.output
    assert json.loads(runner.invoke(kb, ["proposals", "--json"]).stdout) == []
    every = json.loads(runner.invoke(kb, ["proposals", "--json", "--all"]).stdout)
    assert {p["status"] for p in every} == {"approved", "rejected"}

    # ask and eval use the published layer; --no-layer the shipped pack alone
    after = json.loads(runner.invoke(ask, ["--json", QUESTION]).output)
    assert after["outcome"] == "answer" and after["entry_id"] == RIGHT_ENTRY
    shipped = json.loads(runner.invoke(ask, ["--json", "--no-layer", QUESTION]).output)
    assert shipped["outcome"] != "answer"
    tsv = f"land.dispute_resolution\t{QUESTION}\n"
    report = json.loads(runner.invoke(kb, ["eval", "--json", "-"], input=tsv).output)
    assert report["metrics"]["coverage"] == 100.0


def test_export_then_import_gives_the_same_layer(town: tuple[CliRunner, str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    runner, url = town
    exported = tmp_path / "township"
    source = Layer().with_variant(RIGHT_ENTRY, QUESTION).with_entry(NEW_ENTRY)
    source = source.with_site({"office_phone": "0375-1234567"})
    from bot.knowledge import load_knowledge
    from bot.settings import DEFAULT_KNOWLEDGE_DIR

    shipped = load_knowledge(DEFAULT_KNOWLEDGE_DIR)
    next_step = "先找村调委会调解，或打司法所电话{office_phone}。"
    source = source.with_override(shipped.by_id["dog-bite-compensation"], "dog-bite-compensation",
                                  {"next_step": next_step, "reviewed": "2026-12-10"})
    (tmp_path / "seed").mkdir()
    from bot.services.knowledge.porting import export_layer

    export_layer(source, tmp_path / "seed")
    imported = runner.invoke(kb, ["import", str(tmp_path / "seed"), "--by", "lawyer", "--reason", "从邻乡拿来的"])
    assert imported.exit_code == 0, imported.output
    version, layer = layer_of(url)
    assert version == 1 and layer.to_json() == source.to_json()

    result = runner.invoke(kb, ["export", str(exported)])
    assert result.exit_code == 0, result.output
    assert (exported / "faq" / "township.yaml").exists() and (exported / "local.yaml").exists()
    entries = yaml.safe_load((exported / "faq" / "township.yaml").read_text("utf-8"))
    assert entries[0]["id"] == "local-road" and str(entries[0]["reviewed"]) == "2026-12-10"  # the knowledge/ format
    assert yaml.safe_load((exported / "site.yaml").read_text("utf-8")) == {"office_phone": "0375-1234567"}

    # another township (a fresh database) imports it: the same layer
    other = f"sqlite+aiosqlite:///{tmp_path / 'other.sqlite3'}"
    monkeypatch.setenv("LAWBOT_DATABASE_URL", other)
    migrate(other)
    assert runner.invoke(admin, ["create-user", "lawyer", "--role", "admin", "--reviewer", "--password-stdin"],
                         input="pw-for-tests-123\n").exit_code == 0
    assert runner.invoke(kb, ["import", str(exported), "--by", "lawyer"]).exit_code == 0
    assert layer_of(other)[1].to_json() == layer_of(url)[1].to_json()
    again = runner.invoke(kb, ["import", str(exported), "--by", "lawyer"])
    assert again.exit_code == 0 and "没有导入" in again.output and layer_of(other)[0] == 1
    answer = json.loads(runner.invoke(ask, ["--json", "村里修路把俺的地占了咋办"]).output)
    assert answer["entry_id"] == "local-road"

    # a broken export is refused with file:line
    township = exported / "faq" / "township.yaml"
    township.write_text(township.read_text("utf-8").replace("land.dispute_resolution", "no.such.topic"), "utf-8")
    broken = runner.invoke(kb, ["import", str(exported), "--by", "lawyer"])
    assert broken.exit_code == 1 and "township.yaml:" in broken.output and "no.such.topic" in broken.output


def test_ask_works_without_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAWBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'none' / 'never.sqlite3'}")
    result = CliRunner().invoke(ask, ["--json", "宅基地怎么申请"])
    assert result.exit_code == 0 and json.loads(result.output)["outcome"] == "answer"
    assert not (tmp_path / "none" / "never.sqlite3").exists()
    unmigrated = tmp_path / "fresh.sqlite3"
    unmigrated.touch()
    monkeypatch.setenv("LAWBOT_DATABASE_URL", f"sqlite+aiosqlite:///{unmigrated}")
    result = CliRunner().invoke(ask, ["--json", "宅基地怎么申请"])
    assert result.exit_code == 0 and json.loads(result.stdout)["outcome"] == "answer"
    assert "warning" not in result.output
