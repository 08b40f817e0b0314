"""Settings: every bad value stops start-up with a message naming the variable and value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from execlog.config import LogPersistence, load_settings
from execlog.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("EXECLOG_"):
            monkeypatch.delenv(name)


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8787)
    assert settings.log_history_max_bytes == 8_388_608
    assert settings.log_history_max_entries == 5000
    assert settings.ws_queue_capacity == 1024
    assert settings.subscriber_queue_bytes == 4 << 20
    assert (settings.raw_page_size, settings.normalized_page_size) == (200, 20)
    assert settings.log_persistence is LogPersistence.DUAL
    assert settings.backfill_mode == "startup"
    assert settings.legacy_jsonl_retention_days == 14
    assert settings.max_line_bytes == 1_048_576
    assert settings.auth_token is None
    assert settings.ui_raw_buffer_lines == 5000
    assert settings.claude_argv == ["claude"] and settings.codex_argv == ["codex"]
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith(
        "execlog.db"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EXECLOG_PORT", "eighty"),
        ("EXECLOG_PORT", "70000"),
        ("EXECLOG_LOG_HISTORY_MAX_BYTES", "0"),
        ("EXECLOG_LOG_HISTORY_MAX_ENTRIES", "-5"),
        ("EXECLOG_WS_QUEUE_CAPACITY", "many"),
        ("EXECLOG_SUBSCRIBER_QUEUE_BYTES", "65535"),
        ("EXECLOG_SUBSCRIBER_QUEUE_BYTES", "4MiB"),
        ("EXECLOG_RAW_PAGE_SIZE", "1001"),
        ("EXECLOG_NORMALIZED_PAGE_SIZE", "0"),
        ("EXECLOG_LOG_PERSISTENCE", "both"),
        ("EXECLOG_BACKFILL_MODE", "later"),
        ("EXECLOG_LEGACY_JSONL_RETENTION_DAYS", "-1"),
        ("EXECLOG_MAX_LINE_BYTES", "10"),
        ("EXECLOG_DATABASE_URL", "mysql://x"),
        ("EXECLOG_CLAUDE_COMMAND", "   "),
        ("EXECLOG_CODEX_COMMAND", ""),
        ("EXECLOG_ALLOWED_ORIGINS", "evil.example"),
        ("EXECLOG_APPROVAL_TIMEOUT_SECONDS", "0"),
        ("EXECLOG_UI_RAW_BUFFER_LINES", "0"),
        ("EXECLOG_UI_RAW_BUFFER_LINES", "lots"),
    ],
)
def test_bad_value_names_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert variable in str(raised.value)
    assert repr(value) in str(raised.value)


def test_non_loopback_host_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECLOG_HOST", "0.0.0.0")
    with pytest.raises(ConfigError, match="--no-auth"):
        load_settings().check_listen_address()
    monkeypatch.setenv("EXECLOG_AUTH_TOKEN", "s3cret-token-0123456789")
    load_settings().check_listen_address()


def test_server_refuses_to_start_on_a_bad_value(tmp_path: object) -> None:
    """The real command: non-zero exit, the variable and value on stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "execlog", "serve"],
        env={"EXECLOG_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "EXECLOG_PORT='not-a-port'" in result.stderr


def test_every_setting_is_read_by_the_package() -> None:
    """A setting that nothing reads would pass its default and validation tests while the
    feature it names is missing: every field must be read outside config.py, directly or
    through a Settings property or method that is."""
    import ast
    from pathlib import Path

    import execlog
    from execlog.config import Settings

    package = Path(execlog.__file__).parent
    config_path = package / "config.py"
    elsewhere = "\n".join(path.read_text() for path in package.rglob("*.py") if path != config_path)
    # Settings members (properties, methods) and the fields each one reads.
    members: dict[str, set[str]] = {}
    tree = ast.parse(config_path.read_text())
    [settings_class] = [
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings"
    ]
    for node in settings_class.body:
        if isinstance(node, ast.FunctionDef):
            members[node.name] = {
                attribute.attr
                for attribute in ast.walk(node)
                if isinstance(attribute, ast.Attribute)
                and isinstance(attribute.value, ast.Name)
                and attribute.value.id == "self"
            }

    def is_read(name: str) -> bool:
        return f".{name}" in elsewhere

    unread = [
        field
        for field in Settings.model_fields
        if not is_read(field)
        and not any(field in fields and is_read(member) for member, fields in members.items())
    ]
    assert unread == []
