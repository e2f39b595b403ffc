"""The newcomer's path: `lawbot db upgrade`, `lawbot serve --dev`, then `lawbot chat` against it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

LAWBOT = [sys.executable, "-m", "bot"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_healthy(server: subprocess.Popen[str], base: str, tries: int = 100) -> None:
    """Until `lawbot serve` at ``base`` answers /healthz with 200 (fails the test with its output if it never does)."""
    for _ in range(tries):
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    server.kill()
    pytest.fail(f"lawbot serve did not start:\n{server.communicate()[0]}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[dict[str, str], str, list[str]]]:
    port = free_port()
    env = {
        **os.environ,
        "LAWBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'lawbot.sqlite3'}",
        "LAWBOT_PORT": str(port),
        "LAWBOT_ENV": "development",
        "LAWBOT_LOG_LEVEL": "WARNING",
    }
    upgrade = subprocess.run([*LAWBOT, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert upgrade.returncode == 0, upgrade.stderr
    server = subprocess.Popen(
        [*LAWBOT, "serve", "--dev"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(server, base)
        assert server.stdout is not None
        printed = [server.stdout.readline()]  # printed (and flushed) before serving, after any warnings
        while printed[0] and not printed[0].startswith("乡法通 "):
            printed = [server.stdout.readline()]
        printed += [server.stdout.readline() for _ in range(6)]
        yield env, base, printed
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=20)
        assert "Traceback" not in out, out


def test_serve_prints_where_things_are_and_chat_talks_to_it(served: tuple[dict[str, str], str, list[str]]) -> None:
    env, base, printed = served
    port = base.rsplit(":", 1)[1]
    assert printed[0].startswith("乡法通 ") and printed[0].endswith(f"listening on {base}\n")
    addresses = {line.split(": ", 1)[0].strip(): line.split(": ", 1)[1].split()[0] for line in printed[1:]}
    assert addresses == {
        "start page": f"{base}/",
        "webhook (server URL for WeChat)": f"{base}/wechat",
        "simulator": f"{base}/simulator",
        "back-office": f"{base}/admin",
        "health": f"{base}/healthz",
        "fake WeChat API (what 'WeChat' received)": f"{base}/_fake/calls",
    }
    assert f"(first account: LAWBOT_PORT={port} .venv/bin/lawbot admin create-user NAME --role admin)" in printed[4]
    for path in ("/", "/simulator", "/admin/sign-in", "/healthz", "/_fake/calls", "/campaigns"):
        with urllib.request.urlopen(f"{base}{path}", timeout=5) as resp:
            assert resp.status == 200, path
    with urllib.request.urlopen(f"{base}/simulator", timeout=5) as resp:
        page = resp.read().decode()
    assert "模拟器" in page
    chat = subprocess.run(
        [*LAWBOT, "chat", "--scene", "village_2"],
        env=env,
        input="你好\n宅基地怎么申请\n/quit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert chat.returncode == 0, chat.stderr
    assert "西竹园村" in chat.stdout  # the welcome after subscribing through village 2's QR code
    assert "乡法通>" in chat.stdout
    assert "宅基地" in chat.stdout


def test_worker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal

    env = {
        **os.environ,
        "LAWBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'lawbot.sqlite3'}",
        "LAWBOT_WECHAT_API_BASE": "http://127.0.0.1:9",
        "LAWBOT_LOG_LEVEL": "INFO",
    }
    assert subprocess.run([*LAWBOT, "db", "upgrade"], env=env, capture_output=True, timeout=60).returncode == 0
    worker = subprocess.Popen([*LAWBOT, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert worker.stdout is not None
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until it runs (its signal handlers are in place)
        line = worker.stdout.readline()
        seen.append(line)
        if "started" in line or not line:
            break
    assert any("started" in line for line in seen), "".join(seen)
    worker.send_signal(signal.SIGTERM)
    rest, _ = worker.communicate(timeout=20)
    out = "".join(seen) + rest
    assert worker.returncode == 0, out
    assert "stopped" in out and "Traceback" not in out


def test_create_user_prints_the_sign_in_address_of_the_settings_it_runs_with(tmp_path: Path) -> None:
    """The address comes from LAWBOT_PUBLIC_URL, else LAWBOT_HOST/LAWBOT_PORT, of the environment the command
    runs in — and it says so, since the server may have been started with other values."""
    from click.testing import CliRunner

    from bot.cli import main

    env = {"LAWBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'lawbot.sqlite3'}", "LAWBOT_ENV": "test"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    args = ["admin", "create-user", "li", "--role", "admin", "--password-stdin"]
    result = runner.invoke(main, args, input="tea-by-the-river-42\n", env={**env, "LAWBOT_PORT": "18080"})
    assert result.exit_code == 0, result.output
    assert "sign in at http://127.0.0.1:18080/admin" in result.output
    assert "LAWBOT_HOST=127.0.0.1 and LAWBOT_PORT=18080 of this environment" in result.output
    args[2] = "wang"
    public = {**env, "LAWBOT_PUBLIC_URL": "https://fa.example.cn/"}
    result = runner.invoke(main, args, input="tea-by-the-river-42\n", env=public)
    assert result.exit_code == 0, result.output
    assert "sign in at https://fa.example.cn/admin" in result.output and "LAWBOT_PUBLIC_URL" in result.output
