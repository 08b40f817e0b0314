"""Browser fixtures: Debian's Chromium driven by Playwright (``executable_path``; never
``playwright install``) against a real ``execlog serve`` (``live_server``) running the demo
agent, with the built web UI (``make test`` builds it first)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from execlog.api.webui import DEFAULT_STATIC_DIR
from tests.conftest import LiveServer

CHROMIUM = Path(os.environ.get("EXECLOG_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE_SCRIPT = Path(__file__).resolve().parents[2] / "frontend/node_modules/axe-core/axe.min.js"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
    if not (DEFAULT_STATIC_DIR / "index.html").is_file():
        return "the web UI is not built: run `make test` (it runs the Vite build first)"
    return None


# Per module, not per session: Playwright's sync API keeps its own event loop in this thread
# while it runs, which pytest-asyncio's tests in other modules must not meet.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium: Any) -> Iterator[Callable[..., Any]]:
    """Factory: a fresh page (own cookies) of the given viewport; page errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def factory(width: int = 1280, height: int = 800) -> Any:
        context = chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield factory
    for context in contexts:
        context.close()
    assert errors == [], f"errors in the page: {errors}"


class Api:
    """Plain HTTP calls to the server under test (setting up what the browser then shows)."""

    def __init__(self, server: LiveServer, token: str | None = None) -> None:
        self.url = server.url
        self.headers = {"Content-Type": "application/json"}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=self.headers
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["data"]

    def start(self, **body: Any) -> dict[str, Any]:
        session: dict[str, Any] = self.call("POST", "/api/sessions", body)
        return session

    def process(self, process_id: str) -> dict[str, Any]:
        process: dict[str, Any] = self.call("GET", f"/api/execution-processes/{process_id}")
        return process

    def wait_until_ended(self, process_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.process(process_id)
            if process["status"] != "running":
                return process
            time.sleep(0.1)
        raise AssertionError(f"process {process_id} still running after {timeout}s")

    def tail(self, process_id: str, channel: str, limit: int = 1) -> dict[str, Any]:
        page: dict[str, Any] = self.call(
            "GET", f"/api/execution-processes/{process_id}/{channel}-logs/v2?limit={limit}"
        )
        return page


@pytest.fixture
def ui_server(live_server: Callable[..., LiveServer]) -> Callable[..., tuple[LiveServer, Api]]:
    """Factory: a live server (settings overrides, e.g. ``demo_args``) and its API."""

    def start(**overrides: Any) -> tuple[LiveServer, Api]:
        server = live_server(**overrides)
        return server, Api(server, overrides.get("auth_token"))

    return start


def run_axe(page: Any) -> list[dict[str, Any]]:
    """axe-core (from frontend/node_modules) in the page: its serious and critical violations."""
    page.add_script_tag(path=str(AXE_SCRIPT))
    result = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result
        if v["impact"] in ("serious", "critical")
    ]
