"""SQLite's log is copied into the database file beside the event loop, not in a commit on it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.keys import CHECKPOINTER, ENGINE
from bot.settings import Settings
from bot.storage.sqlite_checkpoint import WRITER_CHECKPOINT_PAGES, WalCheckpointer


def _writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # this connection never copies the log itself
    conn.execute("CREATE TABLE IF NOT EXISTS pushes (id INTEGER PRIMARY KEY, body BLOB)")
    return conn


def test_the_thread_copies_the_log_while_a_writer_keeps_committing(tmp_path: Path) -> None:
    path = tmp_path / "lawbot.sqlite3"
    writer = _writer(path)
    checkpointer = WalCheckpointer(str(path), interval=0.005)
    checkpointer.start()
    try:
        for n in range(300):
            writer.execute("INSERT INTO pushes (body) VALUES (?)", (bytes(3000),))
            if n % 50 == 0:
                time.sleep(0.01)  # let the thread run a few rounds meanwhile
        deadline = time.monotonic() + 5
        while checkpointer.pages_copied < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpointer.running
        assert checkpointer.pages_copied >= 300  # a page per 3 KB row at least, none copied by the writer
    finally:
        checkpointer.stop()
        writer.close()
    assert not checkpointer.running
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM pushes").fetchone()[0] == 300
    check.close()


def test_a_failing_round_is_logged_and_the_thread_goes_on(tmp_path: Path, caplog: Any) -> None:
    path = tmp_path / "lawbot.sqlite3"
    _writer(path).close()
    checkpointer = WalCheckpointer(str(path), interval=0.005)
    real = checkpointer.checkpoint
    failures = [sqlite3.OperationalError("disk I/O error")]

    def flaky(conn: sqlite3.Connection) -> None:
        if failures:
            raise failures.pop()
        real(conn)

    checkpointer.checkpoint = flaky  # type: ignore[method-assign]
    checkpointer.start()
    deadline = time.monotonic() + 5
    while checkpointer.runs < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checkpointer.running and checkpointer.runs >= 3
    checkpointer.stop()
    assert "wal checkpoint failed: disk I/O error" in caplog.text


async def test_the_app_runs_the_thread_for_a_sqlite_file_and_stops_it_on_shutdown(
    make_client: Any, base_settings: Settings, sqlite_url: str
) -> None:
    client = await make_client(base_settings.with_(database_url=sqlite_url))
    checkpointer = client.app[CHECKPOINTER]
    assert checkpointer.running
    async with client.app[ENGINE].connect() as conn:
        # the serving connection copies the log itself only rarely (and only what is left)
        assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one() == WRITER_CHECKPOINT_PAGES
    await client.close()
    assert not checkpointer.running
