"""Ingest throughput: N raw entries of ~80 bytes for one process through LogWriter (entries and
dual mode) against a plain sqlite3 executemany of the same rows in one transaction, same run.

Target (issue "Storage foundation", item 6): the writer in entries mode reaches >= 0.5x the
rows/s of the plain executemany. With ``EXECLOG_BENCH_POSTGRES_URL`` (or
``EXECLOG_TEST_POSTGRES_URL``) set, the writer also runs on PostgreSQL (a schema of its own) in
the same run; target (issue 9, item 8): >= 0.5x the SQLite writer's rows/s.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, create_engine, text

from bench.report import peak_rss_bytes
from execlog.config import LogPersistence
from execlog.protocol import encode_raw_entry, now_ms
from execlog.storage.database import (
    SQLITE_PAGE_SIZE,
    create_database_engine,
    normalize_database_url,
)
from execlog.storage.entries import EntryStats, EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.migrate import run_migrations
from execlog.storage.writer import EntryWrite, LogWriter

__all__ = ["NAME", "make_line", "make_payload", "run"]

NAME: Final = "ingest"
ROWS: Final = 1_000_000
QUICK_ROWS: Final = 50_000
TARGET_RATIO: Final = 0.5


def make_line(index: int) -> str:
    """An output line whose raw payload is about 80 bytes."""
    return f"{index:08d} INFO build step compiled module ok in 12ms"


def make_payload(index: int) -> str:
    return encode_raw_entry("stdout", make_line(index))


def create_schema(path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{path}")
    try:
        run_migrations(engine)
    finally:
        engine.dispose()


def measure_plain_executemany(path: Path, process_id: str, payloads: list[str]) -> float:
    """Rows/s of the floor: one executemany of every row in one transaction. Fair: the file was
    made by ``create_schema`` (the service's engine: same schema and page size) and the
    connection has the service's pragmas."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    if page_size != SQLITE_PAGE_SIZE:
        raise AssertionError(f"plain loop on {page_size}-byte pages, the service uses more")
    started = time.perf_counter()
    stamp = now_ms()
    with connection:
        connection.executemany(
            "INSERT INTO execution_process_log_entries (execution_process_id, channel, "
            "entry_index, entry_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (process_id, "raw", index, payload, stamp, stamp)
                for index, payload in enumerate(payloads)
            ],
        )
    elapsed = time.perf_counter() - started
    connection.close()
    return len(payloads) / elapsed


async def measure_writer(
    engine: Engine, process_id: str, payloads: list[str], mode: LogPersistence
) -> dict[str, float | int]:
    """Rows/s from the first submit until flush() returns, as a runner would produce them."""
    writer = LogWriter(EntryStore(engine), LegacyLogStore(engine), mode)
    await writer.start()
    started = time.perf_counter()
    for index, payload in enumerate(payloads):
        await writer.submit(EntryWrite(process_id, "raw", index, payload))
        # In dual mode the writer derives each legacy line from the payload itself.
    await writer.flush()
    elapsed = time.perf_counter() - started
    await writer.close()
    stats = EntryStore(engine).fetch_stats(process_id, "raw")
    if stats != EntryStats(len(payloads), 0, len(payloads) - 1):
        raise AssertionError(f"writer lost rows: {stats}")
    return {
        "rows_per_s": len(payloads) / elapsed,
        "seconds": elapsed,
        "committed_groups": writer.committed_groups,
        "producer_waits": writer.producer_waits,
    }


def run(quick: bool) -> dict[str, object]:
    rows = QUICK_ROWS if quick else ROWS
    process_id = str(uuid.uuid4())
    payloads = [make_payload(index) for index in range(rows)]
    results: dict[str, object] = {
        "rows": rows,
        "payload_bytes_avg": sum(map(len, payloads)) / rows,
    }
    # The prebuilt inputs (millions of strings) are the harness's, not the service's: frozen, the
    # collector skips them, as it would in a server that never holds a whole log in memory.
    gc.collect()
    gc.freeze()
    try:
        results.update(measure_all(process_id, payloads))
    finally:
        gc.unfreeze()
    results["peak_rss_bytes"] = peak_rss_bytes()
    return results


def measure_sqlite_writer(
    path: Path, process_id: str, payloads: list[str], mode: str
) -> dict[str, float | int]:
    engine = create_database_engine(f"sqlite:///{path}")
    try:
        return asyncio.run(measure_writer(engine, process_id, payloads, LogPersistence(mode)))
    finally:
        engine.dispose()


def measure_postgres_writer(
    process_id: str, payloads: list[str]
) -> dict[str, float | int | bool] | None:
    """The writer in entries mode on PostgreSQL, in a schema created and dropped here."""
    url = os.environ.get("EXECLOG_BENCH_POSTGRES_URL") or os.environ.get(
        "EXECLOG_TEST_POSTGRES_URL"
    )
    if not url:
        return None
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_database_url(url))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(
        normalize_database_url(url), connect_args={"options": f"-csearch_path={schema}"}
    )
    try:
        run_migrations(engine)
        result: dict[str, float | int | bool] = dict(
            asyncio.run(measure_writer(engine, process_id, payloads, LogPersistence.ENTRIES))
        )
        return result
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def measure_sqlite_side_by_side(
    process_id: str, payloads: list[str]
) -> tuple[float, dict[str, float | int], dict[str, float | int]]:
    """The same rows through a plain executemany (rows/s), the writer in ``entries`` mode and
    in ``dual`` mode, each on a fresh file of the service's schema, one after the other."""
    with tempfile.TemporaryDirectory(prefix="execlog-bench-") as directory:
        paths = {name: Path(directory) / f"{name}.db" for name in ("plain", "entries", "dual")}
        for path in paths.values():
            create_schema(path)
        plain = measure_plain_executemany(paths["plain"], process_id, payloads)
        entries = measure_sqlite_writer(paths["entries"], process_id, payloads, "entries")
        dual = measure_sqlite_writer(paths["dual"], process_id, payloads, "dual")
    return plain, entries, dual


def measure_all(process_id: str, payloads: list[str]) -> dict[str, object]:
    plain, entries, dual = measure_sqlite_side_by_side(process_id, payloads)
    postgres = measure_postgres_writer(process_id, payloads)
    if postgres is not None:
        ratio = float(postgres["rows_per_s"]) / float(entries["rows_per_s"])
        postgres["ratio_to_sqlite_writer"] = round(ratio, 3)
        postgres["meets_target"] = ratio >= TARGET_RATIO
    return {
        "sqlite_page_size": SQLITE_PAGE_SIZE,
        "postgres_writer_entries": postgres if postgres is not None else "not run (no URL)",
        "sqlite_executemany_rows_per_s": round(plain),
        "writer_entries": entries,
        "writer_dual": dual,
        "ratio_entries": round(float(entries["rows_per_s"]) / plain, 3),
        "ratio_dual": round(float(dual["rows_per_s"]) / plain, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": float(entries["rows_per_s"]) / plain >= TARGET_RATIO,
    }
