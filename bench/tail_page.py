"""Tail-page latency: the newest 200 entries, and older pages by cursor, of one process holding
1k, 100k and 1M stored entries; against the full parse of the same history from legacy JSONL.

Targets (issue "Storage foundation"): p99 < 5 ms at 1M entries, p99(1M) / p99(1k) <= 1.5.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bench.ingest import make_payload
from bench.report import peak_rss_bytes, percentiles_ms
from execlog.protocol import encode_legacy_patch_line
from execlog.storage.database import create_database_engine
from execlog.storage.entries import EntryRow, EntryStore
from execlog.storage.legacy import JsonPatchMessage, LegacyLogStore
from execlog.storage.migrate import run_migrations

__all__ = ["NAME", "run"]

NAME: Final = "tail_page"
SIZES: Final = (1_000, 100_000, 1_000_000)
QUICK_SIZES: Final = (1_000, 10_000, 100_000)
REQUESTS: Final = 1000
QUICK_REQUESTS: Final = 200
PAGE: Final = 200
WARMUP: Final = 50
LOAD_CHUNK: Final = 50_000
# Legacy rows hold one writer group of lines, as LogWriter writes them in dual mode.
LEGACY_LINES_PER_ROW: Final = 2000
TARGET_P99_MS: Final = 5.0
TARGET_RATIO: Final = 1.5


def load_entries(store: EntryStore, process_id: str, count: int) -> None:
    for start in range(0, count, LOAD_CHUNK):
        stop = min(count, start + LOAD_CHUNK)
        store.upsert_entries_now(
            [
                EntryRow(process_id, "raw", index, make_payload(index))
                for index in range(start, stop)
            ]
        )


def load_legacy(legacy: LegacyLogStore, process_id: str, count: int) -> None:
    for start in range(0, count, LEGACY_LINES_PER_ROW):
        stop = min(count, start + LEGACY_LINES_PER_ROW)
        legacy.append_lines_now(
            process_id,
            [
                encode_legacy_patch_line("add", index, make_payload(index))
                for index in range(start, stop)
            ],
        )


def time_requests(
    store: EntryStore, requests: Sequence[tuple[str, int | None]]
) -> dict[str, list[int]]:
    """Durations in ns by process id. Requests of all sizes are interleaved, so a moment of
    background load lands on every size alike instead of skewing one size's tail."""
    samples: dict[str, list[int]] = {}
    for process_id, cursor in requests:
        started = time.perf_counter_ns()
        page = store.fetch_tail_page(process_id, "raw", PAGE, cursor)
        elapsed = time.perf_counter_ns() - started
        samples.setdefault(process_id, []).append(elapsed)
        if len(page) != PAGE:
            raise AssertionError(f"short page at cursor {cursor}: {len(page)}")
    return samples


def time_legacy_parse(legacy: LegacyLogStore, process_id: str, count: int) -> dict[str, float]:
    reader = legacy.read_messages(process_id)
    started = time.perf_counter()
    entries = sum(len(m.operations) for m in reader if isinstance(m, JsonPatchMessage))
    elapsed = time.perf_counter() - started
    if entries != count or reader.malformed_lines:
        raise AssertionError(f"legacy parse read {entries} entries of {count}")
    return {"seconds": elapsed, "bytes": reader.bytes_read, "entries": entries}


def run(quick: bool) -> dict[str, object]:
    sizes = QUICK_SIZES if quick else SIZES
    requests = QUICK_REQUESTS if quick else REQUESTS
    rng = random.Random(20240601)
    results: dict[str, object] = {"page": PAGE, "requests": requests, "sizes": list(sizes)}
    with tempfile.TemporaryDirectory(prefix="execlog-bench-") as directory:
        engine = create_database_engine(f"sqlite:///{Path(directory) / 'tail.db'}")
        run_migrations(engine)
        store = EntryStore(engine)
        legacy = LegacyLogStore(engine)
        # One process per size in the same file: each page is served among all the others.
        processes = {size: str(uuid.uuid4()) for size in sizes}
        started = time.perf_counter()
        for size, process_id in processes.items():
            load_entries(store, process_id, size)
        results["load_seconds"] = round(time.perf_counter() - started, 2)

        time_requests(store, [(pid, None) for pid in processes.values()] * WARMUP)
        tails = time_requests(store, [(pid, None) for pid in processes.values()] * requests)
        olders = time_requests(
            store,
            [
                (processes[size], rng.randrange(PAGE, size + 1))
                for _ in range(requests)
                for size in sizes
            ],
        )
        by_size = {
            str(size): {
                "tail": percentiles_ms(tails[process_id]),
                "cursor": percentiles_ms(olders[process_id]),
            }
            for size, process_id in processes.items()
        }
        results["by_size"] = by_size

        largest_id = processes[sizes[-1]]
        load_legacy(legacy, largest_id, sizes[-1])
        parse = time_legacy_parse(legacy, largest_id, sizes[-1])
        engine.dispose()

    small = by_size[str(sizes[0])]["tail"]
    large = by_size[str(sizes[-1])]["tail"]
    ratio = large["p99_ms"] / small["p99_ms"]
    results["tail_p99_ratio_largest_to_smallest"] = round(ratio, 3)
    results["legacy_full_parse"] = parse
    # How many tail pages fit in the time a legacy-only server needs to show the same process.
    results["legacy_parse_to_tail_p50_ratio"] = round(parse["seconds"] * 1000 / large["p50_ms"])
    results["targets"] = {"p99_ms_at_largest": TARGET_P99_MS, "p99_ratio": TARGET_RATIO}
    results["meets_targets"] = large["p99_ms"] < TARGET_P99_MS and ratio <= TARGET_RATIO
    results["peak_rss_bytes"] = peak_rss_bytes()
    return results
