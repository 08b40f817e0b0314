"""Raw viewer navigation in Chromium against a real server: permalinks (``around=N``),
server-side search, and the downloads."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import Api, sync_api
from tests.ui.test_raw_viewer import BUFFER, _line_links, _rendered_indexes

expect = sync_api.expect
pytestmark = pytest.mark.timeout(120)


def _finished_bulk(ui_server: Callable[..., Any]) -> tuple[Any, Api, str]:
    server, api = ui_server(
        demo_args="--pace 0 --no-approval --bulk-bytes 600000 --line-bytes 200",
        ui_raw_buffer_lines=BUFFER,
    )
    process_id = api.start(executor="demo", prompt="Bulk")["processes"][0]["id"]
    api.wait_until_ended(process_id)
    return server, api, process_id


def test_a_permalink_opens_at_its_line(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    server, api, process_id = _finished_bulk(ui_server)
    newest = api.tail(process_id, "raw")["entries"][-1]["entry_index"]
    line = newest // 3
    assert newest - line > BUFFER, "the line is far outside the tail"
    page = open_page()
    page.goto(f"{server.url}/processes/{process_id}?line={line}")
    link = page.get_by_role("log", name="Raw log").get_by_role(
        "link", name=f"Line {line}", exact=True
    )
    expect(link).to_be_in_viewport()
    expect(page.locator("[aria-current=true]")).to_contain_text(str(line))


def _search_script_output(
    ui_server: Callable[..., Any], open_page: Callable[..., Any], script: str, text: str
) -> Any:
    """Runs ``script`` to its end, opens its raw log at the tail (line 0 not rendered) and
    searches it for ``text``; returns the page."""
    server, api = ui_server()
    process_id = api.start(executor="script", command=[sys.executable, "-c", script])["processes"][
        0
    ]["id"]
    api.wait_until_ended(process_id)
    page = open_page()
    page.goto(f"{server.url}/processes/{process_id}")
    expect(_line_links(page).last).to_be_visible()
    assert 0 not in _rendered_indexes(page)
    page.get_by_role("searchbox", name="Search text").fill(text)
    page.get_by_role("button", name="Search", exact=True).click()
    return page


def test_search_finds_a_line_printed_100k_lines_earlier(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    script = (
        "import sys\nprint('needle-in-the-haystack')\n"
        "sys.stdout.writelines(f'{i}\\n' for i in range(100000))"
    )
    page = _search_script_output(ui_server, open_page, script, "needle-in-the-haystack")
    line = page.get_by_role("log", name="Raw log").get_by_role("link", name="Line 0", exact=True)
    expect(line).to_be_in_viewport(timeout=15_000)
    expect(page.get_by_role("status").filter(has_text="Match 1 of 1")).to_be_visible()


def test_a_truncated_search_goes_on_further_back(
    ui_server: Callable[..., Any], open_page: Callable[..., Any]
) -> None:
    # More hits than one search page holds (the UI asks for 1,000): the server stops early.
    script = "import sys\nsys.stdout.writelines(f'hit {i}\\n' for i in range(1500))"
    page = _search_script_output(ui_server, open_page, script, "hit")
    expect(page.get_by_role("status").filter(has_text="Match 1 of 1000+")).to_be_visible()
    page.get_by_role("button", name="Search further back").click()
    expect(
        page.get_by_role("status").filter(has_text="Match 1001 of 1500 (line 499)")
    ).to_be_visible()
    line = page.get_by_role("log", name="Raw log").get_by_role("link", name="Line 499", exact=True)
    expect(line).to_be_in_viewport()
    expect(page.get_by_role("button", name="Search further back")).to_have_count(0)


def test_the_download_equals_the_stored_log(
    ui_server: Callable[..., Any], open_page: Callable[..., Any], tmp_path: Path
) -> None:
    server, api, process_id = _finished_bulk(ui_server)
    stored: list[dict[str, Any]] = []
    cursor: int | None = None
    for _ in range(1000):  # bounded: pages of 1000 back to the start
        query = "" if cursor is None else f"&cursor={cursor}"
        page_data = api.call(
            "GET", f"/api/execution-processes/{process_id}/raw-logs/v2?limit=1000{query}"
        )
        stored = page_data["entries"] + stored
        cursor = page_data["next_cursor"]
        if not page_data["has_more"]:
            break
    page = open_page()
    page.goto(f"{server.url}/processes/{process_id}")
    with page.expect_download() as text_download:
        page.get_by_role("link", name="text", exact=True).click()
    text = Path(text_download.value.path()).read_text()
    assert text == "".join(e["entry"]["content"] + "\n" for e in stored)
    with page.expect_download() as ndjson_download:
        page.get_by_role("link", name="NDJSON", exact=True).click()
    lines = Path(ndjson_download.value.path()).read_text().splitlines()
    assert [json.loads(line) for line in lines] == stored
