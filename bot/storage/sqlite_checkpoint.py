"""SQLite's write-ahead log is copied into the database file by a thread of its own.

By default the connection that commits does it: once the log holds 1,000 pages, that
commit copies them and syncs twice, on the event loop, while every webhook request waits
(about a tenth of the webhook's throughput and its p99 stalls, bench/webhook_load.py).
:class:`WalCheckpointer` runs PASSIVE checkpoints (they never block a writer) every few
milliseconds on its own connection; Python's sqlite3 releases the GIL while SQLite works,
so the copying and syncing happen beside the event loop, on the other core.

A passive checkpoint cannot restart the log while commits keep arriving, so the serving
connection still checkpoints itself, but only every :data:`WRITER_CHECKPOINT_PAGES` pages
and only the few pages the thread has not copied yet; that lets the log start over. If
the thread stops, that setting alone keeps the log bounded.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

#: ``PRAGMA wal_autocheckpoint`` for connections whose log a WalCheckpointer copies
WRITER_CHECKPOINT_PAGES = 8000


class WalCheckpointer:
    def __init__(self, database: str, *, interval: float = 0.05, busy_timeout: float = 10.0) -> None:
        self.database = database
        self.interval = interval
        self.busy_timeout = busy_timeout
        self.runs = 0
        self.pages_copied = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpoint", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        busy, log_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.runs += 1
        if copied > 0:
            self.pages_copied += copied
        if busy:
            log.debug("wal checkpoint was busy (%s of %s pages copied)", copied, log_pages)

    def _run(self) -> None:
        conn = sqlite3.connect(self.database, timeout=self.busy_timeout, isolation_level=None)
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # e.g. the file was replaced; try again next round
                    log.warning("wal checkpoint failed: %s", exc)
        finally:
            conn.close()
