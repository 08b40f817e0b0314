"""A real ``execlog serve`` subprocess for the reliability tests: started on a SQLite file (or
a given database URL) and a port (0 picks one), with the token it prints; killed with SIGKILL
like a crash, or terminated."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from execlog.protocol import now_ms
from execlog.runner.descendants import read_proc_stat

START_TIMEOUT_SECONDS = 60.0


@dataclass
class ServeProcess:
    popen: subprocess.Popen[str]
    url: str
    token: str | None
    log: Path
    lines: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.token is None else {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=30, **kwargs)

    def kill9(self) -> None:
        """A crash: no shutdown, no flush; the child processes are left behind."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.popen.stdout is not None:
            self.popen.stdout.close()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(30)
        self._close_pipe()


def start_serve(
    directory: Path,
    *,
    port: int = 0,
    database_url: str | None = None,
    args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    name: str = "server",
) -> ServeProcess:
    """Start ``execlog serve`` and wait until its API answers."""
    environment = {k: v for k, v in os.environ.items() if k != "EXECLOG_AUTH_TOKEN"}
    environment.update(
        {
            "EXECLOG_PORT": str(port),
            "EXECLOG_DATABASE_URL": database_url or f"sqlite:///{directory / 'execlog.db'}",
            "EXECLOG_STOP_GRACE_SECONDS": "1",
            # A crashed server's lease expires 0.6 s after its last heartbeat.
            "EXECLOG_LEASE_HEARTBEAT_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    environment.update(env or {})
    log = directory / f"{name}.log"
    with open(log, "a", encoding="utf-8") as stderr:
        popen = subprocess.Popen(
            [sys.executable, "-m", "execlog", "serve", *args],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert popen.stdout is not None
    url, token = _read_urls(popen, popen.stdout, log)
    server = ServeProcess(popen, url, token, log)
    _wait_until_answering(server)
    return server


@contextmanager
def serving(directory: Path, **kwargs: Any) -> Iterator[ServeProcess]:
    server = start_serve(directory, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def _read_urls(popen: subprocess.Popen[str], stdout: IO[str], log: Path) -> tuple[str, str | None]:
    url: str | None = None
    for line in stdout:
        if line.startswith("execlog listening on "):
            url = line.split()[-1]
        elif line.startswith("web UI: ") and url is not None:
            ui = line.split()[-1]
            token = ui.split("?token=", 1)[1] if "?token=" in ui else None
            return url, token
    popen.wait(30)
    stdout.close()
    raise AssertionError(f"execlog serve exited ({popen.returncode}): {log.read_text()}")


def _wait_until_answering(server: ServeProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            response = httpx.get(f"{server.url}/api/sessions", headers=server.headers, timeout=5)
            assert response.status_code == 200, response.text
            return
        except httpx.TransportError:
            assert server.popen.poll() is None, server.log.read_text()
            assert time.monotonic() < deadline, "execlog serve never answered"
            time.sleep(0.05)


def wait_until_leases_expired(
    database: Path, *, alive: ServeProcess | None = None, timeout: float = 30.0
) -> None:
    """Until no lease but ``alive``'s is live in the SQLite file (a crashed server's expires
    three heartbeats after its last), so the next server may claim its processes."""
    deadline = time.monotonic() + timeout
    while True:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            rows = connection.execute("SELECT pid, expires_at FROM server_leases").fetchall()
        spared = None if alive is None else alive.popen.pid
        if all(pid == spared or expires < now_ms() for pid, expires in rows):
            return
        assert time.monotonic() < deadline, f"leases never expired: {rows}"
        time.sleep(0.05)


def process_running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, left for a parent to collect, does not)."""
    stat = read_proc_stat(pid)
    return stat is not None and stat.alive


def wait_until_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while process_running(pid):
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.02)


def kill_if_running(pid: int) -> None:
    """Test clean-up for a process a failing test may have left behind."""
    if process_running(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
