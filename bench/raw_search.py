"""Raw log search: the database scan of ``GET …/raw-logs/v2/search`` over one process of 1M raw
entries on SQLite, window by window as the endpoint does it (``SEARCH_WINDOW_ENTRIES`` indexes
per query), for queries with and without the JSON-text prefilter.

No target in the issues; the figures say how much of a log one request covers within
``EXECLOG_RAW_SEARCH_SECONDS`` (docs/performance.md, "Raw log search and download").
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Final

from bench.report import peak_rss_bytes
from execlog.api.raw_search import SEARCH_WINDOW_ENTRIES
from execlog.protocol import encode_raw_entry
from execlog.storage.database import create_database_engine
from execlog.storage.entries import ContentQuery, EntryRow, EntryStore
from execlog.storage.migrate import run_migrations

__all__ = ["NAME", "run"]

NAME: Final = "raw_search"
SIZE: Final = 1_000_000
QUICK_SIZE: Final = 60_000
LOAD_CHUNK: Final = 50_000
LIMIT: Final = 1000
# (query, what it exercises)
QUERIES: Final = (
    ("item 12345 in", "one hit, prefilter"),
    ("no such text", "no hit, prefilter"),
    ('"quoted"', "no hit, no prefilter (a quote may be escaped)"),
    ("processed", "a hit on every line: stops at the limit"),
)


def make_line(index: int) -> str:
    return (
        f"2026-12-02T01:00:00Z INFO worker {index % 97} processed item {index} in {index % 1000} ms"
    )


def scan(store: EntryStore, process_id: str, size: int, text: str) -> dict[str, object]:
    """Windows from the newest down, as the endpoint walks them, until the limit or the end."""
    query = ContentQuery.of(text)
    hits: list[int] = []
    windows = 0
    started = time.perf_counter()
    high = size
    while high > 0 and len(hits) < LIMIT:
        low = max(0, high - SEARCH_WINDOW_ENTRIES)
        hits += store.search_raw(process_id, query, low, high, LIMIT - len(hits))
        windows += 1
        high = low
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "windows": windows,
        "ms_per_window": round(seconds * 1000 / windows, 1),
        "entries_scanned": size - high,
        "hits": len(hits),
    }


def run(quick: bool) -> dict[str, object]:
    size = QUICK_SIZE if quick else SIZE
    results: dict[str, object] = {"entries": size, "window": SEARCH_WINDOW_ENTRIES}
    with tempfile.TemporaryDirectory(prefix="execlog-bench-") as directory:
        engine = create_database_engine(f"sqlite:///{Path(directory) / 'search.db'}")
        run_migrations(engine)
        store = EntryStore(engine)
        process_id = str(uuid.uuid4())
        started = time.perf_counter()
        for start in range(0, size, LOAD_CHUNK):
            store.upsert_entries_now(
                [
                    EntryRow(process_id, "raw", i, encode_raw_entry("stdout", make_line(i)))
                    for i in range(start, min(size, start + LOAD_CHUNK))
                ]
            )
        results["load_seconds"] = round(time.perf_counter() - started, 2)
        scan(store, process_id, size, "warm-up")  # the file's pages into the OS cache
        results["queries"] = {
            text: {"case": case, **scan(store, process_id, size, text)} for text, case in QUERIES
        }
        engine.dispose()
    results["peak_rss_bytes"] = peak_rss_bytes()
    return results
