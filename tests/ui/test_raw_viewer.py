"""The raw log viewer in Chromium against a real server: the bounded buffer and its notice,
a DOM that holds only what the viewport needs, follow mode (pausing without moving)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.ui.conftest import run_axe, sync_api

expect = sync_api.expect
pytestmark = pytest.mark.timeout(120)

BUFFER = 300
LINE = re.compile(r"^Line (\d+)$")
# Live output at a bounded rate: the viewer sees the lines arrive (about 20 s of it).
STREAMING = "--pace 0 --no-approval --bulk-bytes 4000000 --line-bytes 200 --rate 400"


# Resolves once the log's scroll position is unchanged over ten animation frames.
SCROLL_SETTLED = """
() => new Promise((resolve) => {
  const log = document.querySelector('[role=log]');
  let last = log.scrollTop, still = 0;
  const check = () => {
    still = log.scrollTop === last ? still + 1 : 0;
    last = log.scrollTop;
    if (still >= 10) resolve(true); else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})
"""


def _line_links(page: Any) -> Any:
    return page.get_by_role("log", name="Raw log").get_by_role("link", name=LINE)


def _rendered_indexes(page: Any) -> list[int]:
    names = _line_links(page).evaluate_all("nodes => nodes.map(n => n.getAttribute('aria-label'))")
    return [int(name.split()[1]) for name in names]


def _first_visible_line(page: Any) -> tuple[int, float]:
    top = page.get_by_role("log", name="Raw log").bounding_box()["y"]
    for link in _line_links(page).all():
        box = link.bounding_box()
        if box is not None and box["y"] >= top - 0.5:
            return int((link.get_attribute("aria-label") or "").split()[1]), box["y"]
    raise AssertionError("no line visible")


def _open_streaming_viewer(ui_server: Callable[..., Any], open_page: Callable[..., Any]) -> Any:
    """A demo run printing lines at a steady rate, its raw viewer open (buffer of BUFFER)."""
    server, api = ui_server(demo_args=STREAMING, ui_raw_buffer_lines=BUFFER)
    process_id = api.start(executor="demo", prompt="Bulk")["processes"][0]["id"]
    page = open_page()
    page.goto(f"{server.url}/processes/{process_id}")
    return page


def test_buffer_is_bounded_with_a_notice_and_a_small_dom(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    page = _open_streaming_viewer(ui_server, open_page)
    log = page.get_by_role("log", name="Raw log")
    expect(log).to_be_visible()
    notice = page.get_by_role("status").filter(has_text="earlier lines not shown")
    expect(notice).to_be_visible(timeout=30_000)
    page.wait_for_function(
        "n => Number((document.body.innerText.match(/([\\d,]+) earlier lines not shown/)"
        " || ['', '0'])[1].replace(/,/g, '')) > n",
        arg=2 * BUFFER,
        timeout=30_000,
    )
    rows = _line_links(page).count()
    viewport_rows = log.bounding_box()["height"] / 20
    assert 0 < rows <= viewport_rows + 25, (rows, viewport_rows)
    assert page.evaluate("() => document.getElementsByTagName('*').length") < 1000
    assert run_axe(page) == []


def test_follow_pauses_on_scroll_up_and_jump_to_latest_resumes(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    page = _open_streaming_viewer(ui_server, open_page)
    log = page.get_by_role("log", name="Raw log")
    page.wait_for_function(
        "() => document.querySelectorAll('[role=log] a').length > 20", timeout=30_000
    )
    expect(page.get_by_role("button", name="Jump to latest")).to_have_count(0)
    log.hover()
    page.mouse.wheel(0, -600)
    jump = page.get_by_role("button", name="Jump to latest")
    expect(jump).to_be_visible()
    # The wheel scroll ends on its own time: wait until the view stands still.
    page.wait_for_function(SCROLL_SETTLED, timeout=15_000)
    index, y = _first_visible_line(page)
    new_lines = page.get_by_role("status").filter(has_text=re.compile(r"new lines|Paused"))

    def counted() -> int:
        match = re.search(r"([\d,]+) new lines", new_lines.text_content() or "")
        return int(match.group(1).replace(",", "")) if match else 0

    start = counted()
    page.wait_for_function(
        "n => Number(((document.body.innerText.match(/([\\d,]+) new lines/) || ['', '0'])[1])"
        ".replace(/,/g, '')) > n",
        arg=start + 100,
        timeout=30_000,
    )
    # Paused: the line the reader looks at has not moved, although lines kept arriving.
    assert _first_visible_line(page) == (index, y)
    newest_seen = index + counted()
    jump.click()
    expect(jump).to_have_count(0)
    page.wait_for_function(
        "n => Math.max(...[...document.querySelectorAll('[role=log] a')]"
        ".map(a => Number(a.textContent))) >= n",
        arg=newest_seen,
        timeout=15_000,
    )


def test_the_raw_viewer_works_from_the_keyboard(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    page = _open_streaming_viewer(ui_server, open_page)
    page.wait_for_function(
        "() => document.querySelectorAll('[role=log] a').length > 20", timeout=30_000
    )
    # Tab reaches the search box and the log itself (bounded walk through the page).
    reached: set[str] = set()
    for _ in range(30):
        page.keyboard.press("Tab")
        reached.add(
            page.evaluate(
                "() => { const e = document.activeElement;"
                " return (e.getAttribute('role') || e.tagName) + ':' +"
                " (e.getAttribute('aria-label') || e.id || e.textContent || '').trim() }"
            )
        )
        if "log:Raw log" in reached and "INPUT:raw-search" in reached:
            break
    assert {"log:Raw log", "INPUT:raw-search"} <= reached, reached
    page.get_by_role("log", name="Raw log").focus()
    page.keyboard.press("PageUp")  # scrolling up from the keyboard pauses following
    jump = page.get_by_role("button", name="Jump to latest")
    expect(jump).to_be_visible()
    jump.focus()
    page.keyboard.press("Enter")
    expect(jump).to_have_count(0)


def test_live_lines_arrive_on_the_cookie_alone(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    # The streams are opened by the page's stream worker: its WebSocket handshakes must carry
    # the cookie that the token link left (no token in any URL after sign-in).
    token = "k" * 24
    server, api = ui_server(demo_args=STREAMING, ui_raw_buffer_lines=BUFFER, auth_token=token)
    process_id = api.start(executor="demo", prompt="Bulk")["processes"][0]["id"]
    page = open_page()
    page.goto(f"{server.url}/?token={token}")
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    page.goto(f"{server.url}/processes/{process_id}")
    newest = (
        "() => Math.max(-1, ...[...document.querySelectorAll('[role=log] a')]"
        ".map(a => Number(a.textContent)))"
    )
    page.wait_for_function(f"() => ({newest})() >= 0", timeout=30_000)
    first = page.evaluate(newest)
    page.wait_for_function(f"n => ({newest})() > n + 50", arg=first, timeout=30_000)
