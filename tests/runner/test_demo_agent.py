"""The demo agent run as a real child: valid stream-json that the Claude normalizer turns into a
complete conversation, deterministic per seed, resumable, and bulk output on demand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from execlog.runner.demo_agent import main, session_id_for_seed
from execlog.runner.normalizers.claude import ClaudeNormalizer

from .normalizers import Conversation, assert_entry_shape


def run_demo(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLOG_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "execlog.runner.demo_agent",
            "-p",
            "fix the parser",
            "--output-format",
            "stream-json",
            "--verbose",
            *args,
        ],  # fmt: skip
        capture_output=True,
        env={**base_env, **(env or {})},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def conversation_of(stdout: bytes) -> Conversation:
    conversation = Conversation()
    normalizer = ClaudeNormalizer()
    lines = stdout.decode().splitlines()
    for line in lines:
        json.loads(line)  # every line is one JSON document
    conversation.feed_lines(normalizer, lines)
    conversation.apply(normalizer.finish())
    return conversation


def test_output_is_a_complete_conversation() -> None:
    done = run_demo("--pace", "0", "--no-approval", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    conversation = conversation_of(done.stdout)
    for entry in conversation.entries:
        assert_entry_shape(entry)
    assert conversation.session_ids == [session_id_for_seed(3)]
    calls = conversation.tool_calls()
    names = [call["entry_type"]["tool_name"] for call in calls]
    assert sorted(set(names)) == ["Bash", "Edit", "Grep", "Read", "TodoWrite"]
    assert all(call["entry_type"]["status"] == {"status": "success"} for call in calls)
    types = conversation.types()
    assert types["thinking"] == 1
    assert types["assistant_message"] == 2
    assert types["system_message"] == 2  # init and the result line
    # Streamed blocks were replaced by their final lines, not duplicated.
    assert conversation.replacements > len(calls)
    assert len(conversation.summaries) == 1
    assert conversation.summaries[0].startswith("Done:")
    commit = next(
        c for c in calls if "git commit" in c["entry_type"]["action_type"].get("command", "")
    )
    assert "1 file changed" in commit["entry_type"]["action_type"]["result"]["output"]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = run_demo("--pace", "0", "--seed", "11", "--turns", "2")
    second = run_demo("--pace", "0", "--seed", "11", "--turns", "2")
    other = run_demo("--pace", "0", "--seed", "12", "--turns", "2")
    assert first.stdout == second.stdout
    assert first.stdout != other.stdout


def test_resume_keeps_the_session_and_says_so() -> None:
    done = run_demo("--pace", "0", "--resume", "5c1b2c43-0000-4000-8000-000000000001")
    assert done.returncode == 0
    conversation = conversation_of(done.stdout)
    assert conversation.session_ids == ["5c1b2c43-0000-4000-8000-000000000001"]
    first_text = conversation.by_type("assistant_message")[0]["content"]
    assert first_text.startswith("Resuming session 5c1b2c43-0000-4000-8000-000000000001.")


def test_standalone_approval_proceeds_and_says_so() -> None:
    done = run_demo("--pace", "0")
    assert done.returncode == 0
    conversation = conversation_of(done.stdout)
    commit = next(
        c
        for c in conversation.tool_calls()
        if "git commit" in c["entry_type"]["action_type"].get("command", "")
    )
    assert commit["entry_type"]["status"] == {"status": "success"}
    assert "approved automatically" in commit["entry_type"]["action_type"]["result"]["output"]


def test_unreachable_server_fails_the_call_and_the_exit_code(tmp_path: Path) -> None:
    done = run_demo(
        "--pace", "0",
        env={"EXECLOG_SERVER_URL": "http://127.0.0.1:9", "EXECLOG_PROCESS_ID": "p-1"},
    )  # fmt: skip
    assert done.returncode == 1
    conversation = conversation_of(done.stdout)
    commit = next(
        c
        for c in conversation.tool_calls()
        if "git commit" in c["entry_type"]["action_type"].get("command", "")
    )
    assert commit["entry_type"]["status"] == {"status": "failed"}
    assert "approval server unreachable" in commit["entry_type"]["action_type"]["result"]["output"]
    assert conversation.by_type("error_message")  # the result line reports the failure


def test_bulk_bytes_adds_about_that_much_output() -> None:
    small = run_demo("--pace", "0", "--no-approval")
    bulk = run_demo(
        "--pace", "0", "--no-approval", "--bulk-bytes", "2000000", "--line-bytes", "500"
    )
    assert bulk.returncode == 0
    extra = len(bulk.stdout) - len(small.stdout)
    assert 2_000_000 <= extra <= 2_000_000 + 3 * 600
    conversation = conversation_of(bulk.stdout)
    assert all(c["entry_type"]["status"]["status"] == "success" for c in conversation.tool_calls())
    long_lines = [line for line in bulk.stdout.splitlines() if len(line) > 400]
    assert all(len(line) <= 600 for line in long_lines)
    # Most of the bulk is in lines of about --line-bytes (the rest: short tool_use lines).
    assert len(long_lines) * 500 > 0.6 * 2_000_000


def test_turns_repeat_the_work() -> None:
    done = run_demo("--pace", "0", "--no-approval", "--turns", "3")
    conversation = conversation_of(done.stdout)
    assert len(conversation.by_type("thinking")) == 3
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["type"] == "result" and result["num_turns"] == 3


def test_usage_errors_return_exit_code_two(capsys: object) -> None:
    assert main(["--output-format", "stream-json"]) == 2  # no prompt
    assert main(["-p", "x", "--turns", "0"]) == 2
