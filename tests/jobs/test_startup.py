"""The backfill at start-up: the contract's console lines verbatim (CONTRACT.md, "Start-up"),
``background`` and ``off`` modes, and an error in one process that does not stop the run."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, update

from execlog.config import BackfillMode, Settings
from execlog.storage.database import create_database_engine
from execlog.storage.entries import EntryStore
from execlog.storage.migrate import run_migrations
from execlog.storage.tables import execution_processes
from tests.helpers import wait_until

from .legacy_data import seed_process, stdout

ELAPSED = r"elapsed_ms=\d+"


def backfill_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "execlog.backfill"]


def open_database(settings: Settings) -> Engine:
    engine = create_database_engine(settings.database_url)
    run_migrations(engine)
    return engine


def seed_many(engine: Engine, count: int, lines_each: int = 1) -> tuple[list[str], int]:
    """``count`` JSONL-only processes; returns their ids and the JSONL's total bytes."""
    ids = []
    total = 0
    for number in range(count):
        rows = [stdout(f"process {number} line {i}\n") for i in range(lines_each)]
        ids.append(seed_process(engine, rows, completed_at=1_700_000_000_000 + number))
        total += sum(len(row.encode()) for row in rows)
    return ids, total


async def test_startup_prints_start_and_complete_lines_before_serving(
    make_settings: Callable[..., Settings],
    app_client: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = open_database(make_settings())
    ids, total = seed_many(engine, 2, lines_each=3)
    caplog.set_level(logging.INFO, logger="execlog.backfill")

    await app_client(backfill_mode="startup", legacy_jsonl_retention_days=0)

    lines = backfill_lines(caplog)
    assert (
        lines[0] == f"log-history backfill starting: processes=2, total_bytes={total}, mode=startup"
    )
    assert re.fullmatch(
        f"log-history backfill complete: processes=2, entries=6, bytes={total}, {ELAPSED}",
        lines[1],
    )
    assert len(lines) == 2
    # Done before the first request: the entries are already stored.
    assert all(EntryStore(engine).fetch_stats(pid, "raw").count == 3 for pid in ids)
    engine.dispose()


async def test_progress_every_25_processes_and_errors_do_not_stop_the_run(
    make_settings: Callable[..., Settings],
    app_client: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = open_database(make_settings())
    ids, total = seed_many(engine, 30)
    broken = ids[3]
    with engine.begin() as connection:
        connection.execute(
            update(execution_processes)
            .where(execution_processes.c.id == broken)
            .values(executor_action="{not json")
        )
    caplog.set_level(logging.INFO, logger="execlog.backfill")

    await app_client(backfill_mode="startup", legacy_jsonl_retention_days=0)

    lines = backfill_lines(caplog)
    assert lines[0] == (
        f"log-history backfill starting: processes=30, total_bytes={total}, mode=startup"
    )
    assert re.fullmatch(
        f"log-history backfill error: execution_id={broken}, error=JSONDecodeError: .+", lines[1]
    )
    first_25 = sum(len(stdout(f"process {n} line 0\n").encode()) for n in range(25))
    assert re.fullmatch(
        f"log-history backfill progress: processed=25, entries=24, bytes={first_25}, {ELAPSED}",
        lines[2],
    )
    assert re.fullmatch(
        f"log-history backfill complete: processes=29, entries=29, bytes={total}, {ELAPSED}",
        lines[3],
    )
    assert len(lines) == 4
    assert EntryStore(engine).fetch_stats(ids[-1], "raw").count == 1
    assert EntryStore(engine).fetch_stats(broken, "raw").count == 0
    engine.dispose()


async def test_background_mode_serves_at_once_and_backfills_in_a_task(
    make_settings: Callable[..., Settings],
    app_client: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = open_database(make_settings())
    ids, total = seed_many(engine, 3)
    first_bytes = len(stdout("process 0 line 0\n").encode())
    caplog.set_level(logging.INFO, logger="execlog.backfill")

    _app, client = await app_client(backfill_mode="background", legacy_jsonl_retention_days=0)
    # Requests are served meanwhile (and get on-demand backfill).
    page = await client.get(f"/api/execution-processes/{ids[0]}/raw-logs/v2")
    assert [e["entry"]["content"] for e in page.json()["data"]["entries"]] == ["process 0 line 0"]

    await wait_until(
        lambda: any(" complete: " in line for line in backfill_lines(caplog)),
        timeout=30,
        message=f"no complete line: {backfill_lines(caplog)}",
    )
    lines = backfill_lines(caplog)
    # The read of ids[0] and the background pass's listing race (two threads): when the read's
    # backfill recorded ids[0] first, the pass rightly lists only the other two. Either way the
    # starting line names what the pass found, and the complete line counts the same processes.
    listed = re.fullmatch(
        r"log-history backfill starting: processes=(\d+), total_bytes=(\d+), mode=background",
        lines[0],
    )
    assert listed is not None, lines
    assert (int(listed[1]), int(listed[2])) in {(3, total), (2, total - first_bytes)}
    assert lines[1].startswith(f"log-history backfill complete: processes={listed[1]}, "), lines
    assert len(lines) == 2
    assert all(EntryStore(engine).fetch_stats(pid, "raw").count == 1 for pid in ids)
    engine.dispose()


async def test_off_mode_skips_the_start_up_pass_but_reads_still_backfill(
    make_settings: Callable[..., Settings],
    app_client: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = open_database(make_settings())
    ids, _total = seed_many(engine, 2)
    caplog.set_level(logging.INFO, logger="execlog.backfill")

    _app, client = await app_client(backfill_mode="off", legacy_jsonl_retention_days=0)

    assert backfill_lines(caplog) == []
    assert EntryStore(engine).fetch_stats(ids[1], "raw").count == 0
    page = await client.get(f"/api/execution-processes/{ids[1]}/raw-logs/v2")
    assert [e["entry"]["content"] for e in page.json()["data"]["entries"]] == ["process 1 line 0"]
    assert EntryStore(engine).fetch_stats(ids[0], "raw").count == 0  # only what was read
    engine.dispose()


async def test_progress_also_every_64_mib(engine: Engine) -> None:
    """The byte rule of the progress line, with the threshold scaled down (64 MiB of JSONL
    would make a slow test): whichever of 25 processes or the byte threshold comes first."""
    from execlog.jobs.backfill import PROGRESS_EVERY_BYTES, LegacyBackfiller

    assert PROGRESS_EVERY_BYTES == 64 * 1024 * 1024
    ids, total = seed_many(engine, 4)
    first_two = sum(len(stdout(f"process {n} line 0\n").encode()) for n in range(2))
    lines: list[str] = []
    backfiller = LegacyBackfiller.create(engine, max_line_bytes=1_048_576)
    await backfiller.run_pending(BackfillMode.STARTUP, lines.append, progress_every_bytes=first_two)

    assert re.fullmatch(
        f"log-history backfill progress: processed=2, entries=2, bytes={first_two}, {ELAPSED}",
        lines[1],
    )
    assert lines[2].startswith("log-history backfill complete: processes=4, entries=4, ")
    assert len(lines) == 3  # the second threshold falls on the last process: no progress line
