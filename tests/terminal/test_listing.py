"""`execlog sessions` / `ps` / `show` / `stop` against a real server list what the API lists."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from execlog.client import ExeclogClient
from execlog.terminal.listing import format_duration, render_sessions
from tests.conftest import LiveServer
from tests.test_cli import run_cli, start_cli
from tests.test_client import wait_for, wait_for_end


@pytest.fixture
def server(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server()


@pytest.mark.timeout(120)  # seconds alone; up to ~50 s measured on a loaded machine
def test_sessions_and_show_list_what_the_api_lists(server: LiveServer) -> None:
    with ExeclogClient(server.url) as client:
        done = client.create_session("script", command=[sys.executable, "-c", "print(1)"])
        wait_for_end(client, done.processes[0].id)
        code = "import time\nprint('up', flush=True)\ntime.sleep(60)"
        sleeper = client.create_session(
            "script", command=[sys.executable, "-c", code], setup_script="true"
        )
        wait_for(
            lambda: (
                any(
                    p.status == "running" and p.run_reason == "script"
                    for p in client.get_session(sleeper.id).processes
                )
                or None
            ),
            "the sleeper to run",
        )
        listed = client.list_sessions()

        table = run_cli(server.url, "sessions")
        assert table.returncode == 0, table.stderr
        rows = table.stdout.splitlines()
        assert rows[0].split()[:5] == ["SESSION", "STATUS", "EXECUTOR", "AGE", "DURATION"]
        assert [row.split()[:3] for row in rows[1:]] == [
            [sleeper.id, "running", "script"],
            [done.id, "completed", "script"],
        ]
        assert rows[2].endswith("-c 'print(1)'")

        as_json = json.loads(run_cli(server.url, "ps", "--json").stdout)
        assert [s["id"] for s in as_json] == [s["id"] for s in listed]
        assert as_json[1] == listed[1]  # the ended session, exactly as the API has it
        running = run_cli(server.url, "sessions", "--running").stdout.splitlines()
        assert [row.split()[0] for row in running[1:]] == [sleeper.id]

        shown = run_cli(server.url, "show", sleeper.id)
        assert shown.returncode == 0, shown.stderr
        api = client.get_session_data(sleeper.id)
        for process in api["processes"]:
            line = next(row for row in shown.stdout.splitlines() if row.startswith(process["id"]))
            assert process["status"] in line.split()
        assert f"session    {sleeper.id}" in shown.stdout

        stopped = run_cli(server.url, "stop", sleeper.id)
        assert stopped.returncode == 0, stopped.stderr
        main = [p for p in api["processes"] if p["run_reason"] == "script"][0]
        assert stopped.stdout == f"{main['id']} killed\n"
        assert client.get_process(main["id"]).status == "killed"
        again = run_cli(server.url, "stop", main["id"])
        assert again.stdout == f"{main['id']} killed\n"  # already ended: shown as it is


def test_show_lists_the_approvals_a_session_waits_for(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--pace 0 --seed 2")
    server = live_server()
    proc = start_cli(server.url, "run", "-q", "--executor", "demo", "--prompt", "p")
    try:
        with ExeclogClient(server.url) as client:
            approval = wait_for(lambda: next(iter(client.list_approvals()), None), "approval")
            session_id = client.list_sessions()[0]["id"]
            shown = run_cli(server.url, "show", session_id).stdout
            assert "waiting for approval:" in shown
            assert f"{approval.id}  Bash  git commit" in shown
            assert run_cli(server.url, "deny", approval.id).returncode == 0
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_durations_read_like_kubectl() -> None:
    assert [format_duration(s) for s in (None, 5, 192, 7500, 360000)] == [
        "-",
        "5s",
        "3m12s",
        "2h5m",
        "4d4h",
    ]


def test_an_empty_listing_is_the_header_only() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert render_sessions([], now).split() == [
        "SESSION",
        "STATUS",
        "EXECUTOR",
        "AGE",
        "DURATION",
        "PROMPT",
        "/",
        "COMMAND",
    ]
