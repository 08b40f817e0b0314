"""The web UI's benchmarks keep working (tests/test_bench.py does the same for the others): each
runs in quick mode against a real server and the real Chromium, and writes a result with its
figures. Not a performance test: the figures are checked for shape and sanity, not targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_bench import run_quick_benchmarks

from .conftest import _skip_reason

UI_BENCHMARKS = ("ui_raw_viewer", "ui_conversation")


@pytest.mark.bench
@pytest.mark.timeout(180)
def test_quick_ui_benchmarks_run_and_write_their_results(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    figures = run_quick_benchmarks(UI_BENCHMARKS, tmp_path, timeout=170)
    viewer = figures["ui_raw_viewer"]["results"]
    assert viewer["process_status_at_end"] == "completed"
    assert viewer["lines_per_s"] > 0 and viewer["frames"] > 0
    assert 0 < viewer["dom_nodes_end"] < 5_000  # the viewer stays windowed
    conversation = figures["ui_conversation"]["results"]
    assert conversation["normalized_entries"] > 1_000
    assert conversation["first_entry_painted_ms_median"] > 0
    assert conversation["load_earlier_samples"] > 0
