"""SIGHUP reloads the knowledge without a restart; a broken file keeps the old index serving."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from bot.keys import SERVICES
from bot.services.knowledge import KnowledgeHolder
from bot.settings import DEFAULT_KNOWLEDGE_DIR, Settings
from tests.phone import Phone


async def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "reload did not happen"
        await asyncio.sleep(0.05)


async def test_sighup_reloads_and_a_broken_file_keeps_the_old_index(
    make_client: Any, settings: Settings, tmp_path: Path
) -> None:
    directory = tmp_path / "knowledge"
    shutil.copytree(DEFAULT_KNOWLEDGE_DIR, directory)
    holder = KnowledgeHolder.load(directory)
    client = await make_client(settings.with_(knowledge_dir=str(directory)), knowledge=holder)
    phone = Phone(client, settings)
    before = client.app[SERVICES].knowledge

    # staff fix a text and send SIGHUP: the new text is used, no restart
    texts = directory / "texts.yaml"
    texts.write_text(texts.read_text(encoding="utf-8").replace("不客气！", "不用谢！"), encoding="utf-8")
    os.kill(os.getpid(), signal.SIGHUP)
    await _wait_for(lambda: client.app[SERVICES].knowledge is not before)
    assert "不用谢" in await phone.say("谢谢")

    # a broken FAQ file: the error is kept, the previous knowledge keeps answering
    serving = client.app[SERVICES].knowledge
    (directory / "faq" / "debt.yaml").write_text("- id: [broken\n", encoding="utf-8")
    os.kill(os.getpid(), signal.SIGHUP)
    await _wait_for(lambda: bool(holder.last_errors))
    assert client.app[SERVICES].knowledge is serving
    assert any("debt.yaml" in e for e in holder.last_errors)
    assert "借" in await phone.say("借钱不还怎么办")
    health = await (await client.get("/healthz")).json()
    assert health["knowledge_errors"]
    # …but only as a count: /healthz is public, the paths and file contents are for the log and staff
    assert "debt.yaml" not in str(health) and str(directory) not in str(health)
