"""Benchmarks, run with ``python -m bench [name ...] [--quick]``; not collected by pytest.

Each module in ``BENCHMARKS`` exposes ``NAME: str`` and ``run(quick: bool) -> dict[str, object]``;
``__main__`` runs the selected ones and writes ``bench/results/<NAME>.json``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BENCHMARKS"]

# Module paths, in the order `python -m bench` runs them. Add a module here to register it.
BENCHMARKS: Final[list[str]] = [
    "bench.ingest",
    "bench.tail_page",
    "bench.server_memory",
    "bench.fanout",
    "bench.slow_subscriber",
    "bench.http_tail",
    "bench.backfill",
    "bench.raw_search",
    "bench.ui_raw_viewer",
    "bench.ui_conversation",
]
