"""The README's pictures, taken from a real run of the demo agent: the conversation and the raw
viewer. Saved to docs/images/ when EXECLOG_UPDATE_SCREENSHOTS=1 (`make screenshots`), else to a
temporary directory, so that an ordinary test run leaves the committed files alone."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import sync_api

expect = sync_api.expect
pytestmark = pytest.mark.timeout(120)

IMAGES = Path(__file__).resolve().parents[2] / "docs/images"


def test_readme_screenshots(
    ui_server: Callable[..., Any], open_page: Callable[..., Any], tmp_path: Path
) -> None:
    target = IMAGES if os.environ.get("EXECLOG_UPDATE_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    server, api = ui_server(demo_args="--pace 0 --turns 2")
    session = api.start(executor="demo", prompt="Fix the empty-input bug in the parser")
    page = open_page(width=1280, height=800)
    page.goto(f"{server.url}/sessions/{session['id']}")
    # The demo stops at its approval request: the picture shows the pending tool call.
    expect(page.get_by_role("button", name="Approve")).to_be_visible(timeout=30_000)
    page.get_by_role("feed", name="Conversation").get_by_role("article").last.wait_for()
    # Markdown's code loads after the first paint (entries show as plain text until then).
    page.wait_for_function("() => document.querySelector('.plain-text') === null")
    page.screenshot(path=str(target / "conversation.png"))

    page.get_by_role("button", name="Approve").click()
    process_id = session["processes"][0]["id"]
    api.wait_until_ended(process_id)
    page.goto(f"{server.url}/processes/{process_id}")
    expect(page.get_by_role("log", name="Raw log").get_by_role("link").last).to_be_visible()
    page.screenshot(path=str(target / "raw-log.png"))

    for name in ("conversation.png", "raw-log.png"):
        image = (target / name).read_bytes()
        assert image.startswith(b"\x89PNG") and len(image) > 20_000
