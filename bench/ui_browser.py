"""Chromium for the web UI benchmarks: Debian's ``/usr/bin/chromium`` driven by Playwright
(never ``playwright install``), with the readings the targets name taken over CDP: JS heap and
DOM node counts (``Performance.getMetrics``) after a forced collection, and frame times from a
``requestAnimationFrame`` recorder installed before the page's own scripts run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

__all__ = ["CHROMIUM", "FRAME_RECORDER", "browser_page", "frame_summary", "page_metrics"]

CHROMIUM: Final = Path("/usr/bin/chromium")

# Every animation frame's timestamp, from navigation on; `window.__frames` is read at the end.
FRAME_RECORDER: Final = """
window.__frames = [];
(function record(t) { window.__frames.push(t); requestAnimationFrame(record); })(0);
"""


@contextmanager
def browser_page(width: int = 1280, height: int = 800) -> Iterator[Any]:
    """A page in a fresh Chromium (headless), the frame recorder installed."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.add_init_script(FRAME_RECORDER)
            yield page
        finally:
            browser.close()


def page_metrics(page: Any, *, collect_garbage: bool = True) -> dict[str, float]:
    """``JSHeapUsedSize`` (bytes) and ``Nodes`` (DOM nodes) of the page, over CDP."""
    session = page.context.new_cdp_session(page)
    try:
        if collect_garbage:
            session.send("HeapProfiler.collectGarbage")
        session.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in session.send("Performance.getMetrics")["metrics"]}
    finally:
        session.detach()
    return {"js_heap_used_bytes": metrics["JSHeapUsedSize"], "dom_nodes": metrics["Nodes"]}


def frame_summary(page: Any, since_ms: float) -> dict[str, float]:
    """Frames recorded after ``since_ms`` (page time): how many, the longest, and how many took
    over 50 ms."""
    frames: list[float] = page.evaluate("() => window.__frames")
    gaps = [b - a for a, b in zip(frames, frames[1:], strict=False) if a >= since_ms]
    return {
        "frames": len(gaps),
        "longest_frame_ms": round(max(gaps, default=0.0), 1),
        "frames_over_50ms": sum(1 for gap in gaps if gap > 50),
    }
