"""UI benchmark: a session of 100k normalized entries (issue 12 targets: the first entry painted
< 300 ms after navigation; a "Load earlier history" round trip < 100 ms).

The demo agent writes the entries (``--bulk-bytes``: one text message or one tool call per
step). Time to first entry: from navigation start to the animation frame after the first
conversation entry is in the DOM, in a fresh browser each time (cold cache).
Round trip: from the click to the frame after the older entries are in the DOM."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

import httpx

from bench.serverproc import run_server
from bench.ui_browser import CdpPage, browser_page

NAME: Final = "ui_conversation"
ENTRIES: Final = 100_000
QUICK_ENTRIES: Final = 5_000
BYTES_PER_ENTRY: Final = 405  # measured: --line-bytes 200 gives about this much per entry
LOADS: Final = 10
OPENS: Final = 5

# Resolves with the page time of the frame after the first entry appeared.
FIRST_ENTRY_PAINTED: Final = """
window.__firstEntry = new Promise((resolve) => {
  const seen = () => document.querySelector('[role=feed] article');
  const done = () => requestAnimationFrame(() => resolve(performance.now()));
  const observer = new MutationObserver(() => { if (seen()) { observer.disconnect(); done(); } });
  observer.observe(document, { childList: true, subtree: true });
  setTimeout(() => resolve(-1), 10000);
});
"""

# From the click until the button is enabled again (a MutationObserver sees it go disabled and
# back, however fast), then the next frame. The older entries land above the reader's entry,
# outside the viewport, so the rendered rows need not change.
LOAD_EARLIER_ROUND_TRIP: Final = """
async () => {
  const button = [...document.querySelectorAll('button')]
    .find((b) => b.textContent.includes('Load earlier history'));
  const started = performance.now();
  const done = new Promise((resolve, reject) => {
    let wasBusy = false;
    const observer = new MutationObserver(() => {
      if (button.disabled) wasBusy = true;
      else if (wasBusy) { observer.disconnect(); resolve(); }
    });
    observer.observe(button, { attributes: true, attributeFilter: ['disabled'] });
    setTimeout(() => reject(new Error('no round trip within 10 s')), 10000);
  });
  button.click();
  await done;
  await new Promise((resolve) => requestAnimationFrame(resolve));
  return performance.now() - started;
}
"""


def run(quick: bool) -> dict[str, object]:
    entries = QUICK_ENTRIES if quick else ENTRIES
    demo_args = f"--pace 0 --no-approval --line-bytes 200 --bulk-bytes {entries * BYTES_PER_ENTRY}"
    with tempfile.TemporaryDirectory(prefix="execlog-ui-bench-") as tmp:
        env = {"EXECLOG_DEMO_ARGS": demo_args}
        with (
            run_server(Path(tmp), env) as server,
            httpx.Client(base_url=server.url, timeout=30) as api,
        ):
            created = api.post("/api/sessions", json={"executor": "demo", "prompt": "bench"})
            session = created.json()["data"]
            process_id = session["processes"][0]["id"]
            _wait_until_ended(api, process_id)
            tail = api.get(f"/api/execution-processes/{process_id}/normalized-logs/v2?limit=1")
            stored = tail.json()["data"]["entries"][-1]["entry_index"] + 1
            firsts = [_time_to_first_entry(server.url, session["id"]) for _ in range(OPENS)]
            round_trips = _load_earlier_round_trips(server.url, session["id"])
    return {
        "normalized_entries": stored,
        "first_entry_painted_ms_median": round(statistics.median(firsts), 1),
        "first_entry_painted_ms_max": round(max(firsts), 1),
        "load_earlier_round_trip_ms_median": round(statistics.median(round_trips), 1),
        "load_earlier_round_trip_ms_max": round(max(round_trips), 1),
        "load_earlier_samples": len(round_trips),
        "targets": {"first_entry_painted_ms": 300, "load_earlier_round_trip_ms": 100},
    }


def _wait_until_ended(api: httpx.Client, process_id: str) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if api.get(f"/api/execution-processes/{process_id}").json()["data"]["status"] != "running":
            return
        time.sleep(0.2)
    raise RuntimeError("the demo agent did not finish within 600 s")


def _time_to_first_entry(url: str, session_id: str) -> float:
    with browser_page() as page:
        page.add_init_script(FIRST_ENTRY_PAINTED)
        page.goto(f"{url}/sessions/{session_id}")
        value: float = page.evaluate("() => window.__firstEntry")
        if value < 0:
            raise RuntimeError("no conversation entry appeared within 10 s")
        return value


def _load_earlier_round_trips(url: str, session_id: str) -> list[float]:
    with browser_page() as page:
        page.goto(f"{url}/sessions/{session_id}")
        page.wait_for_role("button", "Load earlier history")
        samples: list[float] = []
        for _ in range(LOADS):
            samples.append(_one_round_trip(page))
        return samples


def _one_round_trip(page: CdpPage) -> float:
    value: float = page.evaluate(LOAD_EARLIER_ROUND_TRIP)
    return value
