"""UI benchmark: 1M raw lines streamed at full speed into an open raw viewer (issue 12 targets:
JS heap < 50 MB, DOM nodes < 1,000 at the end, no frame over 50 ms after the first second).

A script process waits for a go-file, so the viewer is open and following before the first
line; then it prints as fast as the server takes them. The page's JS heap is sampled every
second (peak) and read after a forced collection at the end; it counts the page and its
workers (the log stream is read in a worker)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import httpx

from bench.serverproc import run_server
from bench.ui_browser import CdpPage, browser_page, frame_summary, page_metrics

NAME: Final = "ui_raw_viewer"
LINES: Final = 1_000_000
QUICK_LINES: Final = 50_000
PRODUCER: Final = """
import os, sys, time
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.02)
n = int(sys.argv[2])
w = sys.stdout.write
for start in range(0, n, 1000):
    w("".join(f"line {i} of the benchmark, with some text to make it look like a log\\n"
              for i in range(start, min(n, start + 1000))))
"""
# The newest line number in the viewer's DOM (each line's permalink shows its index).
LAST_LINE_SHOWN: Final = (
    "() => Math.max(-1, ...[...document.querySelectorAll('[role=log] a')]"
    ".map(a => Number(a.textContent)))"
)


def run(quick: bool) -> dict[str, object]:
    lines = QUICK_LINES if quick else LINES
    with tempfile.TemporaryDirectory(prefix="execlog-ui-bench-") as tmp:
        directory = Path(tmp)
        go = directory / "go"
        with run_server(directory) as server, httpx.Client(base_url=server.url, timeout=30) as api:
            command = [sys.executable, "-c", PRODUCER, str(go), str(lines)]
            session = api.post("/api/sessions", json={"executor": "script", "command": command})
            process_id = session.json()["data"]["processes"][0]["id"]
            with browser_page() as page:
                page.goto(f"{server.url}/processes/{process_id}")
                page.wait_for_role("log", "Raw log")
                return _measure(page, api, process_id, go, lines)


def _measure(
    page: CdpPage, api: httpx.Client, process_id: str, go: Path, lines: int
) -> dict[str, object]:
    started_page_ms: float = page.evaluate("() => performance.now()")
    go.touch()
    started = time.monotonic()
    peak_heap = 0.0
    last = lines - 1
    deadline = started + 600
    sampled = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() - sampled >= 1.0:  # the heap once a second, the last line more often
            sampled = time.monotonic()
            heap = page_metrics(page, collect_garbage=False)["js_heap_used_bytes"]
            peak_heap = max(peak_heap, heap)
        if page.evaluate(LAST_LINE_SHOWN) >= last:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("the viewer did not reach the last line within 600 s")
    streamed_s = time.monotonic() - started
    status = api.get(f"/api/execution-processes/{process_id}").json()["data"]["status"]
    end = page_metrics(page)
    frames = frame_summary(page, started_page_ms + 1000)

    return {
        "lines": lines,
        "process_status_at_end": status,
        "seconds_until_last_line_shown": round(streamed_s, 2),
        "lines_per_s": round(lines / streamed_s),
        "js_heap_end_mb": round(end["js_heap_used_bytes"] / 2**20, 2),
        "js_heap_workers_end_mb": round(end["js_heap_workers_bytes"] / 2**20, 2),
        "js_heap_peak_sampled_mb": round(peak_heap / 2**20, 2),
        "dom_nodes_end": int(end["dom_nodes"]),
        **frames,
        "targets": {"js_heap_mb": 50, "dom_nodes": 1000, "frames_over_50ms": 0},
    }
