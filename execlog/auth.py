"""The API token when ``EXECLOG_AUTH_TOKEN`` is unset, as Jupyter does it: generated at the
server's first start into the user data directory (file mode 0600), printed once inside the UI's
URL, and read from there by the CLI (docs/security.md).

This module owns the token file: its path, its generation and ``read_saved_token()``.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Final

from execlog.config import MIN_TOKEN_LENGTH, data_directory
from execlog.errors import ConfigError

__all__ = [
    "MIN_TOKEN_LENGTH",
    "load_or_create_token",
    "read_saved_token",
    "token_path",
]

_TOKEN_BYTES: Final = 32  # 43 URL-safe characters


def token_path() -> Path:
    return data_directory() / "token"


def read_saved_token() -> str | None:
    """The saved token, or None when there is none yet (or it is unusable: too short)."""
    path = token_path()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the API token at {path}: {exc.strerror}") from None
    return text if len(text) >= MIN_TOKEN_LENGTH else None


def load_or_create_token() -> str:
    """The saved token; at the first start a new one, written readable by this user only."""
    path = token_path()
    saved = read_saved_token()
    if saved is not None:
        _refuse_shared_file(path)
        return saved
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".token.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(token + "\n")
            file.flush()
            os.fsync(file.fileno())
        # rename over a missing or unusable file; two first starts at once both end up with
        # the token of whichever renamed last, so read it back rather than trust ours.
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the API token to {path}: {exc.strerror}; set EXECLOG_AUTH_TOKEN "
            "or run `execlog serve --no-auth`"
        ) from None
    return read_saved_token() or token


def _refuse_shared_file(path: Path) -> None:
    """A token others can read is no token: say so rather than serve with it."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the API token file {path} is readable by other users "
            f"(mode {stat.S_IMODE(mode):o}): run `chmod 600 {path}`"
        )
