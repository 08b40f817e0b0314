"""`execlog logs` and `execlog run` as real subprocesses against a real server: tails, follows
without gap or duplicate (also through resyncs), the demo agent's conversation, exit codes,
Ctrl-C, and errors as one line on stderr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from execlog.client import ExeclogClient
from execlog.console import UPDATE_MARK, format_normalized_entry
from tests.conftest import LiveServer
from tests.terminal.records import assert_each_state_once
from tests.test_client import (
    GATED_SCRIPT,
    free_port,
    run_script,
    wait_for,
    wait_for_end,
    wait_for_entries,
)

CLI_TIMEOUT_SECONDS = 60.0
TOKEN = "s3cret-token-0123456789"


def cli_env(server_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("EXECLOG_SERVER_URL", "EXECLOG_AUTH_TOKEN")
    }
    if server_url is not None:
        env["EXECLOG_SERVER_URL"] = server_url
    env.update(extra)
    return env


def start_cli(server_url: str | None, *args: str, **extra: str) -> subprocess.Popen[str]:
    # -X faulthandler: a CLI that does not end in time is made to print its threads (finish).
    return subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "execlog", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(server_url, **extra),
    )


def run_cli(server_url: str | None, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "execlog", *args],
        capture_output=True,
        text=True,
        env=cli_env(server_url, **extra),
        timeout=CLI_TIMEOUT_SECONDS,
    )


def finish(proc: subprocess.Popen[str], timeout: float = CLI_TIMEOUT_SECONDS) -> tuple[str, str]:
    """The CLI's output once it ends. One that hangs past ``timeout`` is aborted, and the test
    fails with its threads' tracebacks (faulthandler) and what it printed."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        pytest.fail(f"the CLI did not end within {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    finally:
        if proc.poll() is None:
            proc.kill()
    return out, err


def read_lines(proc: subprocess.Popen[str], count: int) -> list[str]:
    """The next ``count`` lines of stdout (blocking; the test timeout bounds it)."""
    assert proc.stdout is not None
    return [proc.stdout.readline() for _ in range(count)]


def split_records(text: str) -> list[str]:
    """Normalized output as entries: a record starts at column 0, continuations are indented."""
    records: list[str] = []
    for line in text.splitlines():
        if line.startswith("  ") and records:
            records[-1] += "\n" + line
        else:
            records.append(line)
    return records


@pytest.fixture
def server(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server()


@pytest.fixture
def client(server: LiveServer) -> Iterator[ExeclogClient]:
    with ExeclogClient(server.url) as client:
        yield client


# --- logs ---------------------------------------------------------------------------------


def test_logs_tail_prints_exactly_the_newest_lines(
    server: LiveServer, client: ExeclogClient
) -> None:
    pid = run_script(client, "for i in range(50): print(f'line {i}')")
    wait_for_end(client, pid)
    result = run_cli(server.url, "logs", pid, "--tail", "5")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "".join(f"line {i}\n" for i in range(45, 50))
    assert run_cli(server.url, "logs", pid, "--tail", "0").stdout == ""


def test_logs_prints_everything_split_by_stream(server: LiveServer, client: ExeclogClient) -> None:
    code = (
        "import sys\nfor i in range(1500): print(i, file=sys.stderr if i % 7 == 0 else sys.stdout)"
    )
    pid = run_script(client, code)
    wait_for_end(client, pid)
    result = run_cli(server.url, "logs", pid)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [str(i) for i in range(1500) if i % 7]
    assert result.stderr.splitlines() == [str(i) for i in range(0, 1500, 7)]


def test_logs_follow_prints_every_line_once_and_exits_when_finished(
    server: LiveServer, client: ExeclogClient, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    pid = run_script(client, GATED_SCRIPT, str(gate))
    wait_for_entries(client, pid, 11)
    proc = start_cli(server.url, "logs", pid, "--follow")
    # The first ten lines come from the history page; the rest only once the gate opens.
    assert read_lines(proc, 10) == [f"{i}\n" for i in range(10)]
    gate.touch()
    out, err = finish(proc)
    assert proc.returncode == 0, err
    assert out == "".join(f"{i}\n" for i in range(10, 20))
    assert err == "half\n"


def test_logs_follow_prints_nothing_twice_through_resyncs(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    # A tiny queue and a reader that does not read: the stream has to resync, with `replace`
    # frames of entries the follower already printed, and with entries memory has evicted.
    server = live_server(ws_queue_capacity=2, log_history_max_entries=500)
    gate = tmp_path / "go"
    code = (
        "import os, sys, time\nprint('ready', flush=True)\n"
        "while not os.path.exists(sys.argv[1]): time.sleep(0.005)\n"
        "for i in range(20000): print(f'{i:06d} ' + 'x' * 200)\n"
    )
    with ExeclogClient(server.url) as client:
        pid = run_script(client, code, str(gate))
        wait_for_entries(client, pid, 1)
        proc = start_cli(server.url, "logs", pid, "-f")
        assert read_lines(proc, 1) == ["ready\n"]
        gate.touch()
        assert wait_for_end(client, pid).status == "completed"
        out, err = finish(proc)
    assert proc.returncode == 0, err
    assert out.splitlines() == [f"{i:06d} " + "x" * 200 for i in range(20000)]


def test_logs_normalized_tail_and_follow_of_a_running_demo_agent(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo agent asks for approval and waits: it is still running when `logs` starts.
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--pace 0 --seed 3")
    server = live_server()
    with ExeclogClient(server.url) as client, httpx.Client(base_url=server.url) as http:
        pid = client.create_session("demo", prompt="commit it").processes[0].id
        approval = wait_for(lambda: _pending_approval(http, pid), "an approval request")
        tail = client.fetch_tail(pid, "normalized", 3)
        proc = start_cli(server.url, "logs", pid, "--normalized", "--tail", "3", "--follow")
        expected_tail = [format_normalized_entry(e.entry) for e in tail.entries]
        shown = read_lines(proc, sum(text.count("\n") + 1 for text in expected_tail))
        assert split_records("".join(shown)) == expected_tail
        assert any("(pending approval)" in text for text in expected_tail)
        decided = http.post(f"/api/approvals/{approval['id']}/respond", json={"approved": True})
        assert decided.status_code == 200, decided.text
        out, err = finish(proc)
        assert proc.returncode == 0, err
        assert wait_for_end(client, pid).status == "completed"
        final = client.fetch_tail(pid, "normalized")
    records = split_records(out)
    # Nothing of the tail is printed again; every later entry once per state it was seen in.
    commit = next(r for r in expected_tail if "(pending approval)" in r)
    assert f"{commit.removesuffix(' (pending approval)')} (success)" in records
    assert_each_state_once(records, final.entries, after=tail.entries[-1].entry_index - 1)
    assert records[-1].startswith("[system] ")


def _pending_approval(http: httpx.Client, process_id: str) -> dict[str, Any] | None:
    listed = http.get("/api/approvals", params={"execution_process_id": process_id})
    pending = [a for a in listed.json()["data"] if a["status"] == "pending"]
    return pending[0] if pending else None


# --- run ----------------------------------------------------------------------------------


def test_run_prints_the_output_and_exits_with_the_childs_code(server: LiveServer) -> None:
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(7)"
    result = run_cli(server.url, "run", "--", sys.executable, "-c", code)
    assert result.returncode == 7
    assert result.stdout == "out\n"
    assert result.stderr.splitlines()[-1] == "err"
    quiet = run_cli(server.url, "run", "-q", "--", sys.executable, "-c", "print('fine')")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "fine\n", "")


def test_run_follows_setup_main_and_cleanup_in_turn(server: LiveServer, tmp_path: Path) -> None:
    result = run_cli(
        server.url,
        "run",
        "-q",
        "--cwd",
        str(tmp_path),
        "--setup",
        "echo setup > marker; echo set up",
        "--cleanup",
        "echo cleaned; rm marker",
        "--",
        sys.executable,
        "-c",
        "import sys\nprint(open('marker').read().strip())\nsys.exit(3)",
    )
    # Cleanup runs after a failed main process; the exit code is still the main process's.
    assert (result.returncode, result.stdout) == (3, "set up\nsetup\ncleaned\n")
    assert not (tmp_path / "marker").exists()


def test_run_ends_the_chain_when_setup_fails(server: LiveServer) -> None:
    result = run_cli(
        server.url,
        "run",
        "--setup",
        "echo broken >&2; exit 4",
        "--cleanup",
        "echo cleaned",
        "--",
        sys.executable,
        "-c",
        "print('never')",
    )
    assert (result.returncode, result.stdout) == (4, "")
    assert "broken" in result.stderr.splitlines()
    assert "setup script failed (exit code 4)" in result.stderr


def test_run_demo_agent_prints_the_conversation(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--pace 0 --no-approval --seed 7")
    server = live_server()
    result = run_cli(
        server.url, "run", "-q", "--executor", "demo", "--prompt", "fix", "--normalized"
    )
    assert result.returncode == 0, result.stderr
    records = split_records(result.stdout)
    assert records[0].startswith("[system] ")
    assert any(r.startswith("[assistant] ") for r in records)
    assert any(r.startswith("[tool Bash] ") and r.endswith("(success)") for r in records)
    assert not any(UPDATE_MARK in r for r in records)  # streamed text is printed once, whole
    assert records[-1].startswith("[system] Finished")


def test_ctrl_c_stops_the_process_and_exits_130(server: LiveServer) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(120)"
    # Ctrl-C at a terminal reaches a foreground program whose SIGINT is the default. A test
    # run started in the background by a shell without job control (`(make test &)`) ignores
    # SIGINT, and so would the CLI it starts, as POSIX wants: caught here instead, the CLI
    # starts with the default (exec resets a caught signal, not an ignored one).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = start_cli(
            server.url, "run", "--cleanup", "echo cleaned", "--", sys.executable, "-c", code
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert read_lines(proc, 1) == ["started\n"]
    proc.send_signal(signal.SIGINT)
    out, err = finish(proc, timeout=20)  # within the test's 30 s: a hang shows the threads
    assert proc.returncode == 130, err
    assert out == ""  # the cleanup does not run after a stop
    assert "stopping process" in err
    listed = httpx.get(f"{server.url}/api/sessions").json()["data"]
    assert [(p["run_reason"], p["status"]) for p in listed[0]["processes"]] == [
        ("script", "killed")
    ]


def test_run_uses_the_host_and_port_settings_without_a_server_url(server: LiveServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    result = run_cli(None, "run", "-q", "--", sys.executable, "-c", "print(1)", EXECLOG_PORT=port)
    assert (result.returncode, result.stdout) == (0, "1\n")


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("follow", [[], ["--follow"]])
def test_unknown_process_is_exit_1_with_the_servers_message(
    server: LiveServer, follow: list[str]
) -> None:
    unknown = str(uuid.uuid4())
    result = run_cli(server.url, "logs", unknown, *follow)
    assert result.returncode == 1
    assert result.stderr == f"Error: execution process {unknown} not found\n"


def test_malformed_id_is_a_usage_error(server: LiveServer) -> None:
    result = run_cli(server.url, "logs", "not-a-uuid", "--normalized")
    assert result.returncode == 2
    assert result.stderr == "Error: malformed execution process id 'not-a-uuid': expected a UUID\n"


def test_bad_run_request_is_a_usage_error(server: LiveServer) -> None:
    result = run_cli(server.url, "run", "--executor", "demo")
    assert result.returncode == 2
    assert "prompt" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.timeout(120)  # seconds alone; up to ~50 s measured on a loaded machine
def test_unreachable_server_is_exit_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (
        ["logs", str(uuid.uuid4()), "-f"],
        ["run", "--", "true"],
        ["sessions"],
        ["show", str(uuid.uuid4())],
        ["approve", str(uuid.uuid4())],
        ["stop", str(uuid.uuid4())],
    ):
        result = run_cli(url, *args)
        assert result.returncode == 1
        assert result.stderr.startswith(f"Error: cannot reach execlog server at {url}: ")
        assert "`execlog serve`" in result.stderr  # what to do about it
        assert "Traceback" not in result.stderr


def test_token_from_the_environment_reaches_http_and_websocket(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(auth_token=TOKEN)
    with ExeclogClient(server.url, TOKEN) as client:
        pid = run_script(client, "print('hi')")
        wait_for_end(client, pid)
    refused = run_cli(server.url, "logs", pid)
    assert refused.returncode == 1
    assert refused.stderr == "Error: missing or wrong token (EXECLOG_AUTH_TOKEN)\n"
    allowed = run_cli(server.url, "logs", pid, "-f", EXECLOG_AUTH_TOKEN=TOKEN)
    assert (allowed.returncode, allowed.stdout) == (0, "hi\n")
    by_option = run_cli(server.url, "logs", pid, "--tail", "1", "--token", TOKEN)
    assert by_option.stdout == "hi\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "{id}"], "Error: session {id} not found\n"),
        (["approve", "{id}"], "Error: approval {id} not found\n"),
        (["deny", "{id}", "--reason", "no"], "Error: approval {id} not found\n"),
        (["stop", "{id}"], "Error: no session or execution process {id}\n"),
        (["follow-up", "{id}", "--prompt", "p"], "Error: session {id} not found\n"),
    ],
)
def test_unknown_ids_are_named(server: LiveServer, args: list[str], message: str) -> None:
    unknown = str(uuid.uuid4())
    result = run_cli(server.url, *[a.format(id=unknown) for a in args])
    assert (result.returncode, result.stderr) == (1, message.format(id=unknown))


def test_a_refused_token_is_named_by_every_command(live_server: Callable[..., LiveServer]) -> None:
    server = live_server(auth_token="s3cret-s3cret-s3cret")
    for args in (["sessions"], ["run", "--", "true"], ["show", str(uuid.uuid4())]):
        result = run_cli(server.url, *args, EXECLOG_AUTH_TOKEN="wrong-wrong-wrong-wrong")
        assert (result.returncode, result.stderr) == (
            1,
            "Error: missing or wrong token (EXECLOG_AUTH_TOKEN)\n",
        )


def test_tail_must_be_a_count(server: LiveServer) -> None:
    result = run_cli(server.url, "logs", str(uuid.uuid4()), "--tail", "-2")
    assert result.returncode == 2 and "--tail" in result.stderr


def test_shell_completion_is_clicks_own() -> None:
    # The installed console script: click derives _EXECLOG_COMPLETE from its name.
    execlog = [str(Path(sys.executable).parent / "execlog")]
    script = subprocess.run(
        execlog,
        env=cli_env(None, _EXECLOG_COMPLETE="bash_source"),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )
    assert script.returncode == 0 and "_execlog_completion" in script.stdout
    words = subprocess.run(
        execlog,
        env=cli_env(
            None, COMP_WORDS="execlog se", COMP_CWORD="1", _EXECLOG_COMPLETE="bash_complete"
        ),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )
    assert words.stdout.split() == ["plain,serve", "plain,sessions"]
