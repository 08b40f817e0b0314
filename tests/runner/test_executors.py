"""Executors: the argv of each executor (first turn and follow-up) and its normalizer."""

from __future__ import annotations

import sys

import pytest

from execlog.config import Settings, load_settings
from execlog.errors import ConfigError, InvalidRequestError
from execlog.runner.executors import EXECUTORS, build_argv, create_normalizer
from execlog.runner.normalizers.claude import ClaudeNormalizer
from execlog.runner.normalizers.codex import CodexNormalizer


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("EXECLOG_DEMO_ARGS", raising=False)
    return load_settings(claude_command="npx -y @anthropic/claude", codex_command="codex")


def test_script_runs_its_command(settings: Settings) -> None:
    argv = build_argv(
        "script", settings, prompt=None, command=("echo", "hi"), resume_session_id=None
    )
    assert argv == ["echo", "hi"]


@pytest.mark.parametrize("command", [None, [], [""]])
def test_script_needs_a_command(settings: Settings, command: list[str] | None) -> None:
    with pytest.raises(InvalidRequestError, match="needs a non-empty command"):
        build_argv("script", settings, prompt=None, command=command, resume_session_id=None)


def test_claude_code_first_turn_and_follow_up(settings: Settings) -> None:
    first = build_argv(
        "claude-code", settings, prompt="fix it", command=None, resume_session_id=None
    )
    assert first == [
        "npx", "-y", "@anthropic/claude", "-p", "fix it",
        "--output-format", "stream-json", "--verbose",
    ]  # fmt: skip
    follow = build_argv(
        "claude-code", settings, prompt="more", command=None, resume_session_id="s-1"
    )
    assert follow[-2:] == ["--resume", "s-1"]
    assert follow[3:5] == ["-p", "more"]


def test_codex_first_turn_and_follow_up(settings: Settings) -> None:
    assert build_argv("codex", settings, prompt="go", command=None, resume_session_id=None) == [
        "codex", "exec", "--json", "go",
    ]  # fmt: skip
    assert build_argv("codex", settings, prompt="go on", command=None, resume_session_id="t-1") == [
        "codex", "exec", "--json", "resume", "t-1", "go on",
    ]  # fmt: skip


def test_demo_runs_the_builtin_agent_with_extra_args(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = build_argv("demo", settings, prompt="hello", command=None, resume_session_id="s-9")
    assert argv == [
        sys.executable, "-m", "execlog.runner.demo_agent", "-p", "hello",
        "--output-format", "stream-json", "--verbose", "--resume", "s-9",
    ]  # fmt: skip
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--seed 7 --pace 0 --bulk-bytes '1000'")
    reloaded = load_settings()
    argv = build_argv("demo", reloaded, prompt="hello", command=None, resume_session_id=None)
    assert argv[-6:] == ["--seed", "7", "--pace", "0", "--bulk-bytes", "1000"]


def test_bad_demo_args_stop_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--seed 'unclosed")
    with pytest.raises(ConfigError, match="EXECLOG_DEMO_ARGS"):
        load_settings()


@pytest.mark.parametrize("executor", ["claude-code", "codex", "demo"])
def test_coding_agents_need_a_prompt(settings: Settings, executor: str) -> None:
    with pytest.raises(InvalidRequestError, match="needs a prompt"):
        build_argv(executor, settings, prompt=None, command=None, resume_session_id=None)


def test_unknown_executor_is_named(settings: Settings) -> None:
    with pytest.raises(InvalidRequestError, match="unknown executor 'gemini'"):
        build_argv("gemini", settings, prompt="x", command=None, resume_session_id=None)
    with pytest.raises(InvalidRequestError, match="gemini"):
        create_normalizer("gemini")


def test_normalizer_per_executor() -> None:
    assert EXECUTORS == ("script", "claude-code", "codex", "demo")
    assert create_normalizer("script") is None
    assert isinstance(create_normalizer("claude-code"), ClaudeNormalizer)
    assert isinstance(create_normalizer("demo"), ClaudeNormalizer)
    assert isinstance(create_normalizer("codex"), CodexNormalizer)
    assert create_normalizer("codex") is not create_normalizer("codex")  # one per process
