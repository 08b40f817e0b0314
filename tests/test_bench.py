"""Benchmarks keep working: each one (but fan-out, a minute even in quick mode) runs in quick
mode against real parts and writes a result with its figures. Not a performance test: the
figures are checked for shape and sanity, not for targets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOKED = (
    "ingest",
    "tail_page",
    "server_memory",
    "http_tail",
    "backfill",
    "raw_search",
    "slow_subscriber",
)


def run_quick_benchmarks(
    names: Sequence[str], output_dir: Path, *, timeout: float
) -> dict[str, dict[str, Any]]:
    """``python -m bench NAMES --quick`` in a process of its own; each one's result document,
    checked to be a quick run of that benchmark."""
    result = subprocess.run(
        [sys.executable, "-m", "bench", *names, "--quick", "--output-dir", str(output_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = {name: json.loads((output_dir / f"{name}.json").read_text()) for name in names}
    for name, document in figures.items():
        assert document["name"] == name and document["quick"] is True
    return figures


@pytest.mark.bench
@pytest.mark.timeout(300)
def test_quick_benchmarks_run_and_write_their_results(tmp_path: Path) -> None:
    figures = run_quick_benchmarks(SMOKED, tmp_path, timeout=280)
    ingest = figures["ingest"]["results"]
    assert ingest["ratio_entries"] > 0 and ingest["sqlite_executemany_rows_per_s"] > 0
    memory = figures["server_memory"]["results"]
    for row in ("demo_dual", "script_dual", "script_entries"):
        assert memory[row]["raw_lines_per_s"] > 0
        assert memory[row]["peak_rss_bytes"] >= memory[row]["baseline_rss_bytes"]
    assert figures["http_tail"]["results"]["entries"] > 0
    backfill = figures["backfill"]["results"]
    for row in ("one_process", "small_processes", "one_process_small_lines"):
        assert backfill[row]["entries_written"] > 0
        assert backfill[row]["ratio_to_plain_loop"] > 0
    # One line per JSONL line there; agent output's pipe chunks cut some lines in two.
    small_lines = backfill["one_process_small_lines"]
    assert small_lines["entries_written"] == small_lines["jsonl_lines"]
    assert backfill["agent_output"]["line_bytes_median"] > 500
    slow = figures["slow_subscriber"]["results"]
    assert slow["frames_per_entry"] < 1.1 and slow["producer_slowdown"] > 0
    search = figures["raw_search"]["results"]["queries"]
    assert search["item 12345 in"]["hits"] == 1 and search["no such text"]["hits"] == 0
    assert search["processed"]["hits"] == 1000 and search["processed"]["windows"] == 1
