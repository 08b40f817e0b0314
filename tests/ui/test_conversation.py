"""The conversation view in Chromium against a real server and the demo agent: tail first,
"Load earlier history" without moving the reader's entry, approvals replaced in place."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.ui.conftest import Api, run_axe, sync_api

expect = sync_api.expect
pytestmark = pytest.mark.timeout(120)

# Several scripted rounds: well over one page (20) of normalized entries.
MANY_ENTRIES = "--pace 0 --turns 6 --no-approval"


def _entry_indexes(page: Any) -> list[int]:
    """The indexes in the labels of the feed's articles, read in one synchronous pass inside the
    page: handles resolved first and read later could be detached by the virtualized feed's
    next render (a scroll) in between."""
    labels = page.get_by_role("feed", name="Conversation").evaluate(
        "feed => Array.from(feed.querySelectorAll('article[aria-labelledby]'), article => "
        "document.getElementById(article.getAttribute('aria-labelledby')).textContent)"
    )
    return [int(re.search(r"#(\d+)$", label).group(1)) for label in labels]  # type: ignore[union-attr]


def _finished_session(
    ui_server: Callable[..., Any], demo_args: str
) -> tuple[Any, Api, dict[str, Any]]:
    server, api = ui_server(demo_args=demo_args)
    session = api.start(executor="demo", prompt="Fix the parser")
    api.wait_until_ended(session["processes"][0]["id"])
    return server, api, session


def test_the_tail_is_shown_first(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    server, api, session = _finished_session(ui_server, MANY_ENTRIES)
    process_id = session["processes"][0]["id"]
    newest = api.tail(process_id, "normalized")["entries"][-1]["entry_index"]
    assert newest > 40

    page = open_page()
    page.goto(f"{server.url}/sessions/{session['id']}")
    feed = page.get_by_role("feed", name="Conversation")
    expect(feed.get_by_text(f"#{newest}", exact=False).first).to_be_visible()
    indexes = _entry_indexes(page)
    assert max(indexes) == newest
    assert min(indexes) >= newest - 19, "only the newest page is loaded at first"
    expect(page.get_by_role("button", name="Load earlier history")).to_be_enabled()
    assert run_axe(page) == []


def test_load_earlier_keeps_the_first_visible_entry_in_place(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    server, _api, session = _finished_session(ui_server, MANY_ENTRIES)
    page = open_page()
    page.goto(f"{server.url}/sessions/{session['id']}")
    feed = page.get_by_role("feed", name="Conversation")
    load = page.get_by_role("button", name="Load earlier history")
    expect(load).to_be_enabled()
    expect(feed.get_by_role("article").first).to_be_visible()
    before_indexes = _entry_indexes(page)

    def first_visible() -> tuple[str, float]:
        box = feed.bounding_box()
        for article in feed.get_by_role("article").all():
            top = article.bounding_box()
            if top is not None and top["y"] >= box["y"]:
                return article.get_attribute("aria-labelledby") or "", top["y"]
        raise AssertionError("no entry visible")

    label_id, top = first_visible()
    label = page.locator(f"[id='{label_id}']").text_content()
    load.focus()
    with page.expect_response(lambda r: "normalized-logs/v2?" in r.url and "cursor=" in r.url):
        page.keyboard.press("Enter")  # keyboard reachable
    expect(load).to_be_enabled()
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    same = page.get_by_role("article", name=label or "")
    after = same.bounding_box()
    assert after is not None
    assert abs(after["y"] - top) <= 2, (label, top, after["y"])
    # The older entries were prepended above it: scrolling up reaches them. Bounded in time,
    # not in wheel turns (on a loaded machine a turn may land before the list has re-rendered),
    # and the pointer is put back over the feed each turn, where the wheel scrolls it.
    deadline = time.monotonic() + 20
    while min(_entry_indexes(page)) >= min(before_indexes):
        assert time.monotonic() < deadline, (before_indexes, _entry_indexes(page))
        feed.hover()
        page.mouse.wheel(0, -1600)
        page.wait_for_timeout(50)


def test_approving_a_pending_tool_call_replaces_it_in_place(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    server, api = ui_server(demo_args="--pace 0")
    session = api.start(executor="demo", prompt="Commit the fix")
    page = open_page()
    page.goto(f"{server.url}/sessions/{session['id']}")
    approve = page.get_by_role("button", name="Approve")
    expect(approve).to_be_visible(timeout=30_000)
    pending = page.get_by_role("article").filter(has=approve)
    name = pending.get_attribute("aria-labelledby")
    label = page.locator(f"[id='{name}']").text_content() or ""
    assert run_axe(page) == []
    approve.click()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0, timeout=30_000)
    decided = page.get_by_role("article", name=label, exact=True)
    expect(decided).to_have_count(1)
    expect(decided).not_to_contain_text("pending approval")
    api.wait_until_ended(session["processes"][0]["id"])


def test_sessions_list_updates_live_and_works_at_phone_width(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    server, api = ui_server(demo_args="--pace 0 --no-approval")
    page = open_page(width=390, height=844)
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    api.start(executor="demo", prompt="A session started elsewhere")
    expect(page.get_by_role("link", name=re.compile("Session|A session started"))).to_have_count(
        1, timeout=15_000
    )
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, "no horizontal scrolling of the page at phone width"
    assert run_axe(page) == []


def test_a_token_link_signs_in_and_leaves_the_address_bar(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    token = "t" * 24
    server, _api = ui_server(auth_token=token)
    page = open_page()
    page.goto(f"{server.url}/?token={token}")
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    assert "token" not in page.url
    page.reload()  # the cookie carries on
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()


def test_conversation_and_raw_log_at_phone_width(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    server, _api, session = _finished_session(ui_server, "--pace 0 --no-approval")
    page = open_page(width=390, height=844)
    for path in (f"/sessions/{session['id']}", f"/processes/{session['processes'][0]['id']}"):
        page.goto(server.url + path)
        expect(
            page.get_by_role("feed", name="Conversation").or_(
                page.get_by_role("log", name="Raw log")
            )
        ).to_be_visible()
        expect(page.get_by_role("article").last.or_(_first_line_link(page))).to_be_visible()
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"{path}: the page scrolls sideways at phone width ({width} px)"
        assert run_axe(page) == []


def _first_line_link(page: Any) -> Any:
    return page.get_by_role("log", name="Raw log").get_by_role("link").first
