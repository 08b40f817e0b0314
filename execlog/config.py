"""The one settings registry: every ``EXECLOG_*`` variable with its default, help and validation.

Values come from the environment and are validated once at start-up; a bad value raises
``ConfigError`` naming the variable and the value (CONTRACT.md, "Configuration").
"""

from __future__ import annotations

import ipaddress
import shlex
from enum import StrEnum
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from execlog.errors import ConfigError
from execlog.live.msg_store import DEFAULT_QUEUE_BYTES
from execlog.protocol import LIMIT_MAX, LIMIT_MIN

__all__ = [
    "BackfillMode",
    "LogPersistence",
    "MIN_TOKEN_LENGTH",
    "Settings",
    "data_directory",
    "default_database_url",
    "is_loopback_host",
    "load_settings",
    "render_settings_table",
]


# EXECLOG_AUTH_TOKEN's lower bound (execlog.auth generates 43 characters).
MIN_TOKEN_LENGTH = 16


class LogPersistence(StrEnum):
    DUAL = "dual"
    ENTRIES = "entries"
    LEGACY_JSONL = "legacy_jsonl"


class BackfillMode(StrEnum):
    STARTUP = "startup"
    BACKGROUND = "background"
    OFF = "off"


def data_directory() -> Path:
    """The user data directory (``$XDG_DATA_HOME/execlog``): the default database, the token."""
    return Path(platformdirs.user_data_dir("execlog", appauthor=False))


def default_database_url() -> str:
    """The embedded SQLite file in the user data directory."""
    return f"sqlite:///{data_directory() / 'execlog.db'}"


class Settings(BaseSettings):
    """Every ``EXECLOG_*`` variable; each field description is its documentation."""

    model_config = SettingsConfigDict(
        env_prefix="EXECLOG_", extra="ignore", frozen=True, validate_default=True
    )

    host: str = Field("127.0.0.1", description="Address the server listens on.")
    port: int = Field(
        8787, ge=0, le=65535, description="Port the server listens on; `0` picks a free port."
    )
    database_url: str = Field(
        default_factory=default_database_url,
        description=(
            "SQLAlchemy URL: `sqlite:///relative.db`, `sqlite:////abs/path.db` or "
            "`postgresql://…`. Default: `execlog.db` in the user data directory."
        ),
    )
    log_history_max_bytes: int = Field(
        8_388_608, ge=1, description="In-memory history per process and channel, in bytes."
    )
    log_history_max_entries: int = Field(
        5000, ge=1, description="In-memory history per process and channel, in entries."
    )
    ws_queue_capacity: int = Field(
        1024, ge=1, description="Events queued per WebSocket stream before it resyncs."
    )
    subscriber_queue_bytes: int = Field(
        DEFAULT_QUEUE_BYTES,
        ge=65_536,
        description=(
            "Payload bytes a WebSocket stream may fall behind before it resyncs (with "
            "`EXECLOG_WS_QUEUE_CAPACITY`, whichever comes first); at least 64 KiB."
        ),
    )
    raw_page_size: int = Field(
        200, ge=LIMIT_MIN, le=LIMIT_MAX, description="Default `limit` of raw history pages."
    )
    normalized_page_size: int = Field(
        20,
        ge=LIMIT_MIN,
        le=LIMIT_MAX,
        description="Default `limit` of normalized history pages.",
    )
    log_persistence: LogPersistence = Field(
        LogPersistence.DUAL,
        description="`dual` (entry rows + legacy JSONL), `entries` or `legacy_jsonl`.",
    )
    backfill_mode: BackfillMode = Field(
        BackfillMode.STARTUP,
        description=(
            "Backfill of legacy JSONL at start-up: `startup` (blocking), `background`, `off`."
        ),
    )
    legacy_jsonl_retention_days: int = Field(
        14,
        ge=0,
        description=(
            "JSONL of completed, backfilled processes older than this many days is deleted; "
            "`0` disables."
        ),
    )
    max_line_bytes: int = Field(
        1_048_576, ge=64, description="Longer output lines are split into several entries."
    )
    auth_token: str | None = Field(
        None,
        description=(
            "Every request needs the token (Authorization: Bearer, `token` query parameter or "
            "`execlog_token` cookie). Unset: generated at first start into the user data "
            "directory (mode 0600), printed inside the UI's URL, read from there by the CLI. "
            "At least 16 characters; `execlog serve --no-auth` (loopback only) turns auth off."
        ),
    )
    allowed_origins: str = Field(
        "",
        description=(
            "Comma-separated extra origins (e.g. `http://localhost:5173`) allowed for "
            "WebSockets and state-changing requests, besides the server's own."
        ),
    )
    claude_command: str = Field(
        "claude", description="How Claude Code is started (split like a shell line)."
    )
    codex_command: str = Field(
        "codex", description="How Codex is started (split like a shell line)."
    )
    demo_args: str = Field(
        "",
        description=(
            "Extra options for the `demo` agent (split like a shell line), for load and UI "
            "demos, e.g. `--pace 0 --bulk-bytes 100000000 --line-bytes 200 --no-approval`."
        ),
    )
    writer_batch_rows: int = Field(
        2000, ge=1, description="The batched writer commits after this many rows (or 50 ms)."
    )
    writer_queue_rows: int = Field(
        20_000, ge=1, description="Rows queued for the writer before producers wait."
    )
    db_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description=(
            "Every wait on the database has this deadline: a request that needs an unavailable "
            "database answers 503 after it. On PostgreSQL it is also each statement's "
            "`statement_timeout`, except in the legacy backfill and cleanup, whose long scans "
            "and deletes it bounds only while they wait on a lock (`lock_timeout`)."
        ),
    )
    writer_queue_bytes: int = Field(
        33_554_432,
        ge=65_536,
        description=(
            "Bytes queued for the database writer before producers wait; a commit group holds "
            "at most a quarter of it."
        ),
    )
    approval_timeout_seconds: float = Field(
        600.0, gt=0, description="A tool call waiting for approval longer than this is `timed_out`."
    )
    lease_heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        description=(
            "How often a server renews its lease in the database; a lease lasts three "
            "heartbeats, after which another server may claim its running processes."
        ),
    )
    stop_grace_seconds: float = Field(
        5.0,
        gt=0,
        description="After SIGTERM, a stopped process group gets SIGKILL after this long.",
    )
    ui_raw_buffer_lines: int = Field(
        5000,
        ge=1,
        le=1_000_000,
        description=(
            "Lines the web UI's raw log viewer holds before it trims the oldest (the page reads "
            "it from `GET /api/config`)."
        ),
    )
    raw_search_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description=(
            "Time budget of one raw-log search request; a search that runs out of it answers "
            "with what it found so far and `truncated: true`."
        ),
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("auth_token")
    @classmethod
    def _check_auth_token(cls, value: str | None) -> str | None:
        # Empty is a bad value, not "unset": it once turned the Host check off while the
        # middleware accepted an empty cookie as the token (issue 10).
        if value is not None and len(value) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters")
        return value

    @field_validator("claude_command", "codex_command")
    @classmethod
    def _check_command(cls, value: str) -> str:
        if not shlex.split(value):
            raise ValueError("must name a command")
        return value

    @field_validator("demo_args")
    @classmethod
    def _check_demo_args(cls, value: str) -> str:
        shlex.split(value)  # its ValueError (an unclosed quote) becomes a ConfigError
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for origin in _split_origins(value):
            if "://" not in origin or origin.endswith("/"):
                raise ValueError(f"origin {origin!r} must look like scheme://host[:port]")
        return value

    @property
    def extra_origins(self) -> frozenset[str]:
        return frozenset(_split_origins(self.allowed_origins))

    @property
    def claude_argv(self) -> list[str]:
        return shlex.split(self.claude_command)

    @property
    def codex_argv(self) -> list[str]:
        return shlex.split(self.codex_command)

    @property
    def demo_argv(self) -> list[str]:
        return shlex.split(self.demo_args)

    def page_size(self, channel: str) -> int:
        return self.raw_page_size if channel == "raw" else self.normalized_page_size

    def check_listen_address(self) -> None:
        """Refuse a non-loopback host without a token: this server starts processes."""
        if self.auth_token is None and not is_loopback_host(self.host):
            raise ConfigError(
                f"EXECLOG_HOST={self.host!r}: without a token (--no-auth) the server listens on "
                "loopback only; without --no-auth it uses EXECLOG_AUTH_TOKEN or the generated one"
            )


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_origins(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the environment; a bad value raises ConfigError naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            value = error.get("input")
            if field == "auth_token" and isinstance(value, str) and value:
                value = _Redacted(len(value))  # a refused token may still be someone's secret
            messages.append(
                f"EXECLOG_{field.upper()}={value!r}: {error['msg']}"
                if not isinstance(value, dict)
                else f"EXECLOG_{field.upper()}: {error['msg']}"
            )
        raise ConfigError("invalid configuration: " + "; ".join(messages)) from None


class _Redacted:
    def __init__(self, length: int) -> None:
        self._length = length

    def __repr__(self) -> str:
        return f"<{self._length} characters, not shown>"


def render_settings_table() -> str:
    """The Markdown table of every setting (docs/configuration.md is generated from this)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        if name == "database_url":
            default = "SQLite file `execlog.db` in the user data dir"
        elif name == "auth_token":
            default = "generated"
        elif field.default is None:
            default = "unset"
        elif field.default == "":
            default = "empty"
        else:
            value = field.default
            default = f"`{value.value if isinstance(value, StrEnum) else value}`"
        lines.append(f"| `EXECLOG_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(lines) + "\n"
