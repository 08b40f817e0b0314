"""`execlog backfill` and `execlog cleanup-legacy` as real subprocesses on a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from execlog.protocol import now_ms
from execlog.storage.database import create_database_engine
from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.migrate import run_migrations

from .legacy_data import DAY_MS, seed_process, stdout

TIMEOUT_SECONDS = 60


def run_cli(database: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "EXECLOG_DATABASE_URL": f"sqlite:///{database}", **env}
    return subprocess.run(
        [sys.executable, "-m", "execlog", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=TIMEOUT_SECONDS,
    )


@pytest.mark.timeout(120)  # seconds alone; up to ~50 s measured on a loaded machine
def test_backfill_command_prints_the_console_lines(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    engine = create_database_engine(f"sqlite:///{database}")
    run_migrations(engine)
    rows = [stdout("one\n"), stdout("two\n")]
    pid = seed_process(engine, rows)
    total = sum(len(r.encode()) for r in rows)

    result = run_cli(database, "backfill")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The same blocking pass as start-up: the contract's starting line names mode=startup.
    assert lines[0] == (
        f"log-history backfill starting: processes=1, total_bytes={total}, mode=startup"
    )
    assert lines[1].startswith(
        f"log-history backfill complete: processes=1, entries=2, bytes={total}, elapsed_ms="
    )
    assert EntryStore(engine).fetch_stats(pid, "raw").count == 2

    again = run_cli(database, "backfill", "--process", pid)
    assert again.returncode == 0, again.stderr
    assert f"processes=1, total_bytes={total}" in again.stdout
    assert "entries=0" in again.stdout  # complete already: nothing rewritten

    unknown = run_cli(database, "backfill", "--process", "not-a-uuid")
    assert unknown.returncode == 2 and "'--process'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    engine.dispose()


@pytest.mark.timeout(120)  # seconds alone; up to ~50 s measured on a loaded machine
def test_cleanup_legacy_command_dry_run_then_delete(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    engine = create_database_engine(f"sqlite:///{database}")
    run_migrations(engine)
    pid = seed_process(engine, [stdout("one\n")], completed_at=now_ms() - 30 * DAY_MS)
    assert run_cli(database, "backfill").returncode == 0

    dry = run_cli(database, "cleanup-legacy", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete: execution_id={pid}, rows=1, bytes=" in dry.stdout
    assert LegacyLogStore(engine).has_rows(pid)

    done = run_cli(database, "cleanup-legacy")
    assert done.returncode == 0, done.stderr
    assert f"deleted: execution_id={pid}, rows=1" in done.stdout
    assert not LegacyLogStore(engine).has_rows(pid)

    off = run_cli(database, "cleanup-legacy", EXECLOG_LEGACY_JSONL_RETENTION_DAYS="0")
    assert off.returncode == 0 and "EXECLOG_LEGACY_JSONL_RETENTION_DAYS=0" in off.stdout
    engine.dispose()
