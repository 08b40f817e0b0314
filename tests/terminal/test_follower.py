"""`execlog run` / `follow-up` against a real server, in a real pseudo-terminal and piped:
approvals asked at the prompt and decided over the API, piped output without partial lines,
sessions followed by their events."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest

from execlog.client import ExeclogClient
from tests.conftest import LiveServer
from tests.terminal.records import assert_each_state_once
from tests.test_cli import CLI_TIMEOUT_SECONDS, cli_env, run_cli, split_records, start_cli

PROMPT_TIMEOUT_SECONDS = 30


def spawn_in_terminal(server_url: str, *args: str) -> pexpect.spawn:
    """The CLI on a pseudo-terminal: stdin and stdout are a tty, as for a person."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "execlog", *args],
        env=cli_env(server_url),
        encoding="utf-8",
        timeout=PROMPT_TIMEOUT_SECONDS,
        dimensions=(40, 120),
    )
    return child


def end_of(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF, timeout=CLI_TIMEOUT_SECONDS)
    child.close()
    status: int = child.exitstatus
    return status


def commit_call(client: ExeclogClient, process_id: str) -> dict[str, Any]:
    """The demo agent's `git commit` tool call (the one that asks for approval), as stored."""
    entries = client.fetch_tail(process_id, "normalized").entries
    calls = [
        e.entry["content"]["entry_type"]
        for e in entries
        if e.entry["content"]["entry_type"]["type"] == "tool_use"
        and "git commit" in e.entry["content"]["content"]
    ]
    assert len(calls) == 1, calls
    return calls[0]


@pytest.fixture
def demo_server(live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--pace 0 --seed 5")
    return live_server()


@pytest.mark.timeout(120)
def test_yes_then_no_at_the_prompt_end_success_and_denied(demo_server: LiveServer) -> None:
    run = spawn_in_terminal(
        demo_server.url, "run", "--executor", "demo", "--prompt", "fix it", "--normalized"
    )
    run.expect_exact("Bash wants to run: git commit -am")
    run.expect_exact("Allow? [y/N]")
    run.sendline("y")
    run.expect_exact("execlog: approved")
    assert end_of(run) == 0
    with ExeclogClient(demo_server.url) as client:
        session = client.list_sessions()[0]
        first = session["processes"][0]["id"]
        assert commit_call(client, first)["status"] == {"status": "success"}

        # A follow-up turn asks again; this time the answer is no, with a reason.
        turn = spawn_in_terminal(
            demo_server.url, "follow-up", session["id"], "--prompt", "again", "--normalized"
        )
        turn.expect_exact("Allow? [y/N]")
        turn.sendline("n")
        turn.expect_exact("Reason (optional")
        turn.sendline("not today")
        turn.expect_exact("execlog: denied")
        turn.expect_exact("denied: not today")  # the tool call's line, redrawn with its end
        assert end_of(turn) == 0
        processes = client.get_session(session["id"]).processes
        assert [p.run_reason for p in processes] == ["codingagent", "codingagent"]
        status = commit_call(client, processes[1].id)["status"]
        assert status == {"status": "denied", "reason": "not today"}


@pytest.mark.timeout(120)
def test_piped_demo_run_prints_each_entry_once_per_state(demo_server: LiveServer) -> None:
    result = run_cli(
        demo_server.url,
        "run",
        "-q",
        "--approve-all",
        "--executor",
        "demo",
        "--prompt",
        "fix",
        "--normalized",
    )
    assert result.returncode == 0, result.stderr
    assert "approved Bash: git commit" in result.stderr
    records = split_records(result.stdout)
    with ExeclogClient(demo_server.url) as client:
        process_id = client.list_sessions()[0]["processes"][0]["id"]
        final = client.fetch_tail(process_id, "normalized").entries
    assert_each_state_once(records, final)
    assert any(r.endswith("(approved)") for r in records if "git commit" in r)


@pytest.mark.timeout(120)
def test_off_a_terminal_one_line_says_how_to_decide(demo_server: LiveServer) -> None:
    proc = start_cli(
        demo_server.url, "run", "--executor", "demo", "--prompt", "fix", "--normalized"
    )
    assert proc.stderr is not None
    hint = ""
    while "execlog approve" not in hint:
        hint = proc.stderr.readline()
        assert hint, "the run ended without saying how to decide"
    approval_id = hint.split("execlog approve ")[1].split("`")[0]
    assert f"execlog deny {approval_id}" in hint and "git commit" in hint
    decided = run_cli(demo_server.url, "approve", approval_id)
    assert (decided.returncode, decided.stdout) == (0, f"approved Bash ({approval_id})\n")
    out, err = proc.communicate(timeout=CLI_TIMEOUT_SECONDS)
    assert proc.returncode == 0, err
    assert "(pending approval)" in out and out.rstrip().splitlines()[-1].startswith("[system]")
    again = run_cli(demo_server.url, "deny", approval_id)
    assert again.returncode == 1 and approval_id in again.stderr


@pytest.mark.timeout(120)
def test_deny_all_denies_without_asking(demo_server: LiveServer) -> None:
    result = run_cli(
        demo_server.url,
        "run",
        "--deny-all",
        "--executor",
        "demo",
        "--prompt",
        "x",
        "--plain",
        "--normalized",
    )
    assert result.returncode == 0, result.stderr
    assert "denied Bash: git commit" in result.stderr
    assert "(denied: denied with --deny-all)" in result.stdout


def test_approve_all_and_deny_all_exclude_each_other(demo_server: LiveServer) -> None:
    result = run_cli(demo_server.url, "run", "--approve-all", "--deny-all", "--", "true")
    assert result.returncode == 2 and "--approve-all" in result.stderr
    with ExeclogClient(demo_server.url) as client:
        assert client.list_sessions() == []


def test_run_follows_a_chain_the_server_ends_after_a_failed_setup(server: LiveServer) -> None:
    # The client does not know that a failed setup ends the chain: the server's events say so.
    result = run_cli(
        server.url, "run", "--setup", "exit 3", "--cleanup", "echo never", "--", "echo main"
    )
    assert result.returncode == 3
    assert result.stdout == ""
    assert "setup script failed (exit code 3)" in result.stderr


@pytest.fixture
def server(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server()


def test_stdout_and_stderr_of_a_run_in_a_terminal_keep_their_lines(server: LiveServer) -> None:
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)"
    child = spawn_in_terminal(server.url, "run", "-q", "--", sys.executable, "-c", code)
    assert end_of(child) == 0
    assert child.before is not None
    assert "out" in child.before and "err" in child.before


def test_a_session_that_is_gone_from_under_follow_up_names_its_id(server: LiveServer) -> None:
    unknown = "0f0e8a4e-64c4-4b1c-9a3a-6c0b6d7c9d11"
    result = run_cli(server.url, "follow-up", unknown, "--prompt", "more")
    assert result.returncode == 1
    assert result.stderr == f"Error: session {unknown} not found\n"


def test_run_without_a_terminal_never_reads_stdin(server: LiveServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "execlog", "run", "-q", "--", "echo", "hi"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=cli_env(server.url),
        timeout=CLI_TIMEOUT_SECONDS,
    )
    assert (proc.returncode, proc.stdout) == (0, "hi\n")


@pytest.mark.timeout(120)
def test_several_pending_approvals_are_asked_one_at_a_time(
    live_server: Callable[..., LiveServer],
) -> None:
    agent = Path(__file__).parent / "agents" / "two_approvals.py"
    server = live_server(claude_command=f"{sys.executable} {agent}")
    run = spawn_in_terminal(
        server.url, "run", "--executor", "claude-code", "--prompt", "tidy", "--normalized"
    )
    run.expect(r"(Bash|Write) wants to run: ")
    first = run.match.group(1)
    run.expect_exact("Allow? [y/N]")
    run.sendline("y")
    run.expect_exact("execlog: approved")
    assert "Allow?" not in (run.before or "")  # the second one waits for the first answer
    run.expect(r"(Bash|Write) wants to run: ")
    second = run.match.group(1)
    run.expect_exact("Allow? [y/N]")
    run.sendline("n")
    run.expect_exact("Reason (optional")
    run.sendline("")
    run.expect_exact("execlog: denied")
    assert end_of(run) == 0
    assert {first, second} == {"Bash", "Write"}
    with ExeclogClient(server.url) as client:
        process_id = client.list_sessions()[0]["processes"][0]["id"]
        entries = client.fetch_tail(process_id, "normalized").entries
    statuses = {
        e.entry["content"]["entry_type"]["tool_name"]: e.entry["content"]["entry_type"]["status"]
        for e in entries
        if e.entry["content"]["entry_type"]["type"] == "tool_use"
    }
    assert statuses[first] == {"status": "success"}
    assert statuses[second] == {"status": "denied", "reason": None}
