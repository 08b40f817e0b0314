"""Chromium for the web UI benchmarks: Debian's ``/usr/bin/chromium``, headless, driven over the
DevTools protocol (CDP) by a client that uses only the Page, Runtime, Target and Performance
domains. Readings: JS heap of the page and of its workers (``Runtime.getHeapUsage``) and DOM
nodes (``Performance.getMetrics``) after a forced collection, and frame times from a
``requestAnimationFrame`` recorder installed before the page's own scripts run.

Why not Playwright here (the browser tests use it): Playwright turns on the Network domain in
every page and worker, so DevTools reports each WebSocket message to the driver. At full speed
(thousands of one-line frames a second) that instrumentation cost the browser more CPU than the
page itself (measured: 50k frames took 9.6 s with it and 3.3 s without, on a page that only
counted them), which no user pays."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.request import urlopen

from websockets.sync.client import ClientConnection, connect

__all__ = [
    "CHROMIUM",
    "FRAME_RECORDER",
    "CdpPage",
    "browser_page",
    "frame_summary",
    "page_metrics",
]

CHROMIUM: Final = Path("/usr/bin/chromium")
# The scheduling-related flags automation tools (Playwright among them) start Chromium with, so
# that a headless page is painted and timed like a visible one.
AUTOMATION_FLAGS: Final = (
    "--disable-background-networking",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-ipc-flooding-protection",
    "--disable-hang-monitor",
    "--disable-field-trial-config",
    "--disable-features=PaintHolding,OptimizationHints,MediaRouter",
    "--disable-extensions",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--disable-sync",
    "--disable-breakpad",
    "--allow-pre-commit-input",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
    "--mute-audio",
    "--password-store=basic",
    "--use-mock-keychain",
    "--metrics-recording-only",
)
START_TIMEOUT: Final = 30.0
CALL_TIMEOUT: Final = 120.0

# Every animation frame's timestamp, from navigation on; `window.__frames` is read at the end.
FRAME_RECORDER: Final = """
window.__frames = [];
(function record(t) { window.__frames.push(t); requestAnimationFrame(record); })(0);
"""


class CdpError(RuntimeError):
    """A CDP call failed, or a script threw, or a wait ran out of time."""


class CdpPage:
    """One page target over one CDP connection (flat sessions for its workers)."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self.worker_sessions: list[str] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._connection.send(json.dumps(message))
        deadline = time.monotonic() + CALL_TIMEOUT
        while True:
            reply = json.loads(self._connection.recv(timeout=max(0.0, deadline - time.monotonic())))
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._note(reply)

    def _note(self, event: dict[str, Any]) -> None:
        if event.get("method") == "Target.attachedToTarget":
            info = event["params"]
            if info["targetInfo"]["type"] in ("worker", "shared_worker"):
                self.worker_sessions.append(info["sessionId"])
        elif event.get("method") == "Target.detachedFromTarget":
            gone = event["params"]["sessionId"]
            self.worker_sessions = [s for s in self.worker_sessions if s != gone]
        elif event.get("method") == "Page.loadEventFired":
            self._events.append(event)

    def add_init_script(self, source: str) -> None:
        self.send("Page.addScriptToEvaluateOnNewDocument", {"source": source})

    def goto(self, url: str) -> None:
        """Navigates and returns after the load event."""
        self._events.clear()
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + CALL_TIMEOUT
        while not self._events:
            if time.monotonic() > deadline:
                raise CdpError(f"{url} did not load")
            self._note(json.loads(self._connection.recv(timeout=deadline - time.monotonic())))

    def evaluate(self, script: str) -> Any:
        """The value of an expression, or of calling a function written as ``() => …``; a
        returned promise is awaited."""
        expression = f"({script})()" if re.match(r"\s*(async\s*)?\(", script) else script
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 30.0) -> None:
        """Waits until a JS expression is truthy (polled each 20 ms)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(condition):
            if time.monotonic() > deadline:
                raise CdpError(f"timed out waiting for {condition}")
            time.sleep(0.02)

    def wait_for_role(self, role: str, name: str, timeout: float = 30.0) -> None:
        """Waits for an element with this role and accessible name (aria-label or text)."""
        found = (
            f"[...document.querySelectorAll('[role={role}], {role}')].some((e) => "
            f"(e.getAttribute('aria-label') ?? e.textContent).trim() === {json.dumps(name)})"
        )
        self.wait_for(found, timeout)


@contextmanager
def browser_page(width: int = 1280, height: int = 800) -> Iterator[CdpPage]:
    """A page in a fresh headless Chromium with the frame recorder installed; its workers are
    attached (for their heap)."""
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    # Chromium's helpers may still write to the profile for a moment after it was killed.
    with tempfile.TemporaryDirectory(
        prefix="execlog-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--no-first-run",
                *AUTOMATION_FLAGS,
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            port = _debugging_port(process)
            with urlopen(f"http://127.0.0.1:{port}/json", timeout=START_TIMEOUT) as answer:
                targets = json.load(answer)
            target = next(t for t in targets if t["type"] == "page")
            with connect(target["webSocketDebuggerUrl"], max_size=None) as connection:
                page = CdpPage(connection)
                page.send("Page.enable")
                page.send(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                )
                page.send(
                    "Target.setAutoAttach",
                    {"autoAttach": True, "waitForDebuggerOnStart": False, "flatten": True},
                )
                page.add_init_script(FRAME_RECORDER)
                yield page
        finally:
            process.kill()
            process.wait()


def _debugging_port(process: subprocess.Popen[bytes]) -> int:
    assert process.stderr is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        found = re.search(rb"DevTools listening on ws://[^:]+:(\d+)/", line)
        if found:
            return int(found.group(1))
    raise SystemExit("chromium did not start its DevTools endpoint")


def page_metrics(page: CdpPage, *, collect_garbage: bool = True) -> dict[str, float]:
    """JS heap in use (bytes: the page plus its workers) and DOM nodes."""
    if collect_garbage:
        page.send("HeapProfiler.collectGarbage")
        for session in page.worker_sessions:
            page.send("HeapProfiler.collectGarbage", session=session)
    page.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in page.send("Performance.getMetrics")["metrics"]}
    workers = sum(
        page.send("Runtime.getHeapUsage", session=session)["usedSize"]
        for session in page.worker_sessions
    )
    return {
        "js_heap_used_bytes": metrics["JSHeapUsedSize"] + workers,
        "js_heap_workers_bytes": workers,
        "dom_nodes": metrics["Nodes"],
    }


def frame_summary(page: CdpPage, since_ms: float) -> dict[str, float]:
    """Frames recorded after ``since_ms`` (page time): how many, the longest, and how many took
    over 50 ms."""
    frames: list[float] = page.evaluate("() => window.__frames")
    gaps = [b - a for a, b in zip(frames, frames[1:], strict=False) if a >= since_ms]
    return {
        "frames": len(gaps),
        "longest_frame_ms": round(max(gaps, default=0.0), 1),
        "frames_over_50ms": sum(1 for gap in gaps if gap > 50),
    }
