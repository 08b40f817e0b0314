"""A real ``execlog serve`` subprocess for the end-to-end benchmarks: started on a free loopback
port (``EXECLOG_PORT=0``, URL parsed from its first line), ready once the API answers, stopped
with SIGINT like Ctrl-C. Its output goes to a log file, so a chatty server never blocks on a pipe.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import httpx

from bench.report import rss_bytes

__all__ = ["ServerProcess", "ServerStartError", "read_cpu_seconds", "run_server"]

URL_PATTERN: Final = re.compile(r"execlog listening on (http://127\.0\.0\.1:\d+)")
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 30.0
_POLL: Final = 0.02


class ServerStartError(RuntimeError):
    """The server exited or stayed silent before it could serve; the message holds its log."""


class ServerProcess:
    """A started server: its URL, pid and log file. Stop with ``stop()`` (SIGINT, then wait)."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGINT (uvicorn's graceful shutdown: running processes stopped, writer flushed), then
        wait; SIGKILL only if it does not end within ``timeout``. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def read_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (its children not included)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def run_server(
    directory: Path, env: Mapping[str, str] | None = None, *, database_url: str | None = None
) -> Iterator[ServerProcess]:
    """Start ``execlog serve`` on a SQLite file in ``directory`` (or ``database_url``), with
    ``env`` added to this process's environment; yield it once the API answers; stop it."""
    environment = dict(os.environ)
    environment.update(
        {
            "EXECLOG_HOST": "127.0.0.1",
            "EXECLOG_PORT": "0",
            "EXECLOG_DATABASE_URL": database_url or f"sqlite:///{directory / 'execlog.db'}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    environment.pop("EXECLOG_AUTH_TOKEN", None)
    environment.update(env or {})
    log_path = directory / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            # Loopback benchmarks: no token to thread through every client.
            [sys.executable, "-m", "execlog", "serve", "--no-auth"],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server: ServerProcess | None = None
    try:
        server = ServerProcess(process, _wait_for_url(process, log_path), log_path)
        _wait_until_ready(server)
        yield server
    finally:
        if server is not None:
            server.stop()
        elif process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT)


def _wait_for_url(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = URL_PATTERN.search(log_path.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            break
        time.sleep(_POLL)
    raise ServerStartError(f"server printed no URL; its log:\n{_tail(log_path)}")


def _wait_until_ready(server: ServerProcess) -> None:
    """The URL is printed before migrations run: wait until a request is answered."""
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(base_url=server.url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                break
            try:
                if client.get("/api/sessions").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(_POLL)
    raise ServerStartError(f"server did not become ready; its log:\n{_tail(server.log_path)}")


def _tail(path: Path, size: int = 4000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-size:]
