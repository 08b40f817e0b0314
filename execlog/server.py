"""Serve the app with uvicorn on a socket we bind ourselves, so ``EXECLOG_PORT=0`` works and
the URL is known before the app starts (children need it for approval hooks)."""

from __future__ import annotations

import gc
import logging
import re
import socket
from pathlib import Path

import uvicorn

from execlog.api.webui import DEFAULT_STATIC_DIR
from execlog.app import create_app
from execlog.config import Settings

__all__ = [
    "TokenRedactingFilter",
    "bind_socket",
    "build_server",
    "server_url",
    "tune_garbage_collector",
]

# Young-generation collections every 50k allocations instead of 700: the pipeline allocates
# several short-lived objects per output line and creates almost no cycles.
GC_THRESHOLDS = (50_000, 20, 100)

WS_PING_INTERVAL_SECONDS = 20.0


class TokenRedactingFilter(logging.Filter):
    """uvicorn logs request paths with their query string: never let ``?token=`` reach a log."""

    _TOKEN = re.compile(r"(?<=[?&]token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._TOKEN.sub("***", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self._TOKEN.sub("***", record.msg)
        return True


def _install_token_redaction() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactingFilter) for f in logger.filters):
            logger.addFilter(TokenRedactingFilter())


def tune_garbage_collector() -> None:
    """For a serving process: fewer young collections, and the objects of start-up (modules,
    the app) frozen out of every full collection. Worth 20-30 % lines/s through the pipeline
    (docs/performance.md, server_memory)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    # Not inheritable (Python's default): a child holding it kept the port after a crash and
    # could accept() the server's connections (issue 10).
    return sock


def server_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def build_server(
    settings: Settings,
    sock: socket.socket,
    *,
    log_level: str = "info",
    static_dir: Path = DEFAULT_STATIC_DIR,
) -> uvicorn.Server:
    _install_token_redaction()
    app = create_app(settings, server_url=server_url(sock), static_dir=static_dir)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        ws_ping_interval=WS_PING_INTERVAL_SECONDS,
        ws_ping_timeout=WS_PING_INTERVAL_SECONDS,
        # Frames are small JSON; compressing each one per subscriber cost ~30% of server time
        # in the fan-out benchmark (docs/performance.md).
        ws_per_message_deflate=False,
        # Open event streams and approval long-polls would otherwise hold a Ctrl-C for 10 s.
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    return uvicorn.Server(config)
