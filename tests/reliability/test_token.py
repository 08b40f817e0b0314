"""A token by default (issue 10) on a real ``execlog serve``: bad tokens stop start-up, the
generated one guards every request, and the CLI finds it without being told."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from execlog.auth import token_path
from tests.reliability.serve import serving

TIMEOUT_SECONDS = 60


def serve_refused(tmp_path: Path, token: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLOG_")}
    env.update(
        EXECLOG_AUTH_TOKEN=token,
        EXECLOG_PORT="0",
        EXECLOG_DATABASE_URL=f"sqlite:///{tmp_path / 'execlog.db'}",
    )
    return subprocess.run(
        [sys.executable, "-m", "execlog", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )


@pytest.mark.parametrize("token", ["", "fifteen-chars!!"])
def test_an_empty_or_short_token_stops_start_up(tmp_path: Path, token: str) -> None:
    result = serve_refused(tmp_path, token)
    assert result.returncode != 0
    assert "listening" not in result.stdout
    assert "EXECLOG_AUTH_TOKEN" in result.stderr and "at least 16 characters" in result.stderr
    if token:
        assert token not in result.stderr  # a refused token may still be someone's secret
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(120)
def test_generated_token_guards_requests_and_the_cli_finds_it(
    tmp_path: Path, user_data_dir: Path
) -> None:
    with serving(tmp_path) as server:
        assert server.token is not None
        path = token_path()
        assert path.parent == user_data_dir
        assert path.read_text().strip() == server.token
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        refused = httpx.post(f"{server.url}/api/sessions", json={"executor": "demo"}, timeout=30)
        assert refused.status_code == 401
        assert httpx.get(f"{server.url}/api/sessions", timeout=30).status_code == 401

        env = {k: v for k, v in os.environ.items() if k != "EXECLOG_AUTH_TOKEN"}
        env["EXECLOG_SERVER_URL"] = server.url
        result = subprocess.run(
            [sys.executable, "-m", "execlog", "run", "-q", "--", sys.executable, "-c", "print(42)"],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
        assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr
