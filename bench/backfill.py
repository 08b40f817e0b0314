"""Backfill throughput (issue 11): legacy JSONL → entry rows, for one process with a large log
and for many small processes, beside ``json.loads`` of the same rows in a plain loop, same run.

The data is what a legacy log really holds: pipe chunks of agent output. The agent output is
the recorded Claude Code stream-json session in tests/fixtures/agents (48 lines: median 678 B,
mean 1.5 KB, 90th percentile 2.3 KB, largest 15 KB), replayed in a loop. An agent writes each
line with one ``write``; a reader of at most ``PIPE_READ_BYTES`` per read gets it as one chunk,
a longer line as several (cut between characters). Each chunk is one row holding one
``{"Stdout": "<chunk>"}`` line, as vibe-kanban's one-row-per-chunk era stored them. Targets are
judged on this data.

Beside it, honestly: one process whose log is small lines (a 115-byte build-log line, rows of
64 KiB as execlog's own ``dual`` mode writes them): per byte the worst case, since every cost
per line (decode, split, one entry row) is paid 13x as often.

The plain loop reads the same rows from the same SQLite file with ``sqlite3`` and decodes every
line with ``json.loads``: the floor of any backfill. The backfill also splits lines, encodes
payloads, writes entry rows and records its ledger.

Targets: >= 50 MB/s of JSONL, >= 0.5x the plain loop, RSS growth < 200 MB.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from bench.report import rss_bytes
from execlog.config import BackfillMode
from execlog.jobs.backfill import LegacyBackfiller
from execlog.protocol import encode_json, encode_legacy_stream_line
from execlog.storage.database import create_database_engine
from execlog.storage.migrate import run_migrations

__all__ = ["NAME", "run"]

NAME: Final = "backfill"
BIG_LOG_BYTES: Final = 1_000_000_000
QUICK_BIG_LOG_BYTES: Final = 8_000_000
SMALL_LINES_LOG_BYTES: Final = 1_000_000_000
QUICK_SMALL_LINES_LOG_BYTES: Final = 4_000_000
SMALL_PROCESSES: Final = 10_000
QUICK_SMALL_PROCESSES: Final = 300
SMALL_PROCESS_CHUNKS: Final = 20  # pipe chunks (rows) per small process: ~30 KB of agent output
ROW_BYTES: Final = 64 * 1024  # small lines: one row per writer group, as execlog's dual mode
PIPE_READ_BYTES: Final = 8192
AGENT_OUTPUT: Final = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "fixtures"
    / "agents"
    / "claude-code-build-session.jsonl"
)
TARGET_MB_PER_S: Final = 50.0
TARGET_RATIO: Final = 0.5
TARGET_RSS_GROWTH_BYTES: Final = 200 * 1024 * 1024
_STARTED_AT: Final = 1_700_000_000_000


def make_line(index: int) -> str:
    """A build-log line of about 120 bytes (its legacy JSONL line is about 135)."""
    return (
        f"{index:09d} 2025-08-01T10:00:00.000Z INFO compiler: built module "
        f"pkg/{index % 977:03d}/component.rs in {index % 89} ms (cache miss, 4 workers)"
    )


def agent_chunks() -> Iterator[str]:
    """Pipe chunks of the recorded agent output, endlessly: each line (with its newline) in one
    chunk, a line longer than ``PIPE_READ_BYTES`` in several."""
    lines = AGENT_OUTPUT.read_text().splitlines(keepends=True)
    while True:
        for line in lines:
            for start in range(0, len(line), PIPE_READ_BYTES):
                yield line[start : start + PIPE_READ_BYTES]


def stdout_row(chunk: str) -> str:
    """The JSONL line of one pipe chunk: ``{"Stdout": "<chunk>"}``."""
    return '{"Stdout":' + encode_json(chunk) + "}"


def iter_agent_rows(total_bytes: int, chunks: Iterator[str]) -> Iterator[str]:
    """One ``{"Stdout": "<chunk>"}`` row per pipe chunk, until ``total_bytes`` of JSONL."""
    written = 0
    while written < total_bytes:
        row = stdout_row(next(chunks))
        written += len(row.encode())
        yield row


def describe_agent_output() -> dict[str, object]:
    """The line and chunk sizes of the data (docs/performance.md quotes them)."""
    lines = sorted(len(line.encode()) for line in AGENT_OUTPUT.read_text().splitlines(True))
    return {
        "source": str(AGENT_OUTPUT.relative_to(AGENT_OUTPUT.parents[3])),
        "lines": len(lines),
        "line_bytes_median": lines[len(lines) // 2],
        "line_bytes_mean": round(sum(lines) / len(lines)),
        "line_bytes_p90": lines[int(len(lines) * 0.9)],
        "line_bytes_max": lines[-1],
        "pipe_read_bytes": PIPE_READ_BYTES,
        "chunks_per_replay": sum(-(-size // PIPE_READ_BYTES) for size in lines),
    }


def iter_rows(total_bytes: int, first_index: int = 0) -> Iterator[str]:
    """JSONL rows of about ``ROW_BYTES``, ``{"Stdout": "line\\n"}`` each line, until
    ``total_bytes`` of text."""
    written = 0
    index = first_index
    while written < total_bytes:
        lines = []
        size = 0
        while size < ROW_BYTES:
            line = encode_legacy_stream_line("stdout", make_line(index))
            lines.append(line)
            size += len(line) + 1
            index += 1
        text = "\n".join(lines)
        written += len(text)
        yield text


def insert_process(db: sqlite3.Connection, process_id: str, session_id: str) -> None:
    db.execute(
        "INSERT INTO sessions (id, executor, created_at) VALUES (?, 'script', ?)",
        (session_id, _STARTED_AT),
    )
    db.execute(
        "INSERT INTO execution_processes (id, session_id, run_reason, executor_action, status, "
        "exit_code, started_at, completed_at) VALUES (?, ?, 'script', ?, 'completed', 0, ?, ?)",
        (process_id, session_id, '{"executor": "script", "argv": []}', _STARTED_AT, _STARTED_AT),
    )


def insert_rows(db: sqlite3.Connection, process_id: str, rows: Iterator[str]) -> int:
    total = 0
    batch = []
    for number, text in enumerate(rows):
        total += len(text)
        batch.append((process_id, text, len(text), _STARTED_AT + number))
        if len(batch) >= 256:
            db.executemany(
                "INSERT INTO execution_process_logs (execution_id, logs, byte_size, inserted_at) "
                "VALUES (?, ?, ?, ?)",
                batch,
            )
            batch = []
    if batch:
        db.executemany(
            "INSERT INTO execution_process_logs (execution_id, logs, byte_size, inserted_at) "
            "VALUES (?, ?, ?, ?)",
            batch,
        )
    return total


def plain_loop(path: Path) -> tuple[float, int]:
    """Seconds and lines of reading every row with sqlite3 and json.loads of each line."""
    db = sqlite3.connect(path)
    started = time.perf_counter()
    lines = 0
    loads = json.loads
    for (logs,) in db.execute("SELECT logs FROM execution_process_logs ORDER BY id"):
        for line in logs.split("\n"):
            loads(line)
            lines += 1
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed, lines


class RssSampler:
    """The peak RSS of this process while a block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> RssSampler:
        gc.collect()
        self.baseline = self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def measure(path: Path, backfill: Callable[[LegacyBackfiller], Any]) -> dict[str, Any]:
    """Backfill with ``backfill``, then the plain loop over the same rows; the figures."""
    engine = create_database_engine(f"sqlite:///{path}")
    backfiller = LegacyBackfiller.create(engine, max_line_bytes=1_048_576)
    db = sqlite3.connect(path)
    total_bytes = db.execute("SELECT sum(byte_size) FROM execution_process_logs").fetchone()[0]
    db.close()
    with RssSampler() as rss:
        started = time.perf_counter()
        backfill(backfiller)
        backfill_seconds = time.perf_counter() - started
    engine.dispose()
    db = sqlite3.connect(path)
    entries = db.execute("SELECT count(*) FROM execution_process_log_entries").fetchone()[0]
    db.close()
    plain_seconds, lines = plain_loop(path)
    megabytes = total_bytes / 1e6
    return {
        "jsonl_bytes": total_bytes,
        "jsonl_lines": lines,
        "entries_written": entries,
        "backfill_seconds": round(backfill_seconds, 3),
        "backfill_mb_per_s": round(megabytes / backfill_seconds, 1),
        "plain_json_loads_seconds": round(plain_seconds, 3),
        "plain_json_loads_mb_per_s": round(megabytes / plain_seconds, 1),
        "ratio_to_plain_loop": round(plain_seconds / backfill_seconds, 3),
        "rss_baseline_bytes": rss.baseline,
        "rss_peak_bytes": rss.peak,
        "rss_growth_bytes": rss.peak - rss.baseline,
    }


def one_big_process(directory: Path, rows: Iterator[str]) -> dict[str, Any]:
    path = directory / "big.db"
    engine = create_database_engine(f"sqlite:///{path}")
    run_migrations(engine)
    engine.dispose()
    process_id = str(uuid.uuid4())
    db = sqlite3.connect(path)
    with db:
        insert_process(db, process_id, str(uuid.uuid4()))
        insert_rows(db, process_id, rows)
    db.close()
    figures = measure(path, lambda b: asyncio.run(b.backfill_process(process_id)))
    path.unlink()
    return figures


def many_small_processes(directory: Path, count: int) -> dict[str, Any]:
    path = directory / "small.db"
    engine = create_database_engine(f"sqlite:///{path}")
    run_migrations(engine)
    engine.dispose()
    db = sqlite3.connect(path)
    chunks = agent_chunks()
    with db:
        for _number in range(count):
            process_id = str(uuid.uuid4())
            insert_process(db, process_id, str(uuid.uuid4()))
            rows = [stdout_row(next(chunks)) for _ in range(SMALL_PROCESS_CHUNKS)]
            insert_rows(db, process_id, iter(rows))
    db.close()
    mode = BackfillMode.STARTUP
    figures = measure(path, lambda b: asyncio.run(b.run_pending(mode, lambda _line: None)))
    path.unlink()
    figures["processes"] = count
    figures["processes_per_s"] = round(count / figures["backfill_seconds"], 1)
    return figures


def verdict(figures: dict[str, Any]) -> dict[str, bool]:
    return {
        "mb_per_s_ok": figures["backfill_mb_per_s"] >= TARGET_MB_PER_S,
        "ratio_ok": figures["ratio_to_plain_loop"] >= TARGET_RATIO,
        "rss_ok": figures["rss_growth_bytes"] < TARGET_RSS_GROWTH_BYTES,
    }


def run(quick: bool) -> dict[str, object]:
    log_bytes = QUICK_BIG_LOG_BYTES if quick else BIG_LOG_BYTES
    small_lines_bytes = QUICK_SMALL_LINES_LOG_BYTES if quick else SMALL_LINES_LOG_BYTES
    count = QUICK_SMALL_PROCESSES if quick else SMALL_PROCESSES
    with tempfile.TemporaryDirectory(prefix="execlog-bench-backfill-") as tmp:
        big = one_big_process(Path(tmp), iter_agent_rows(log_bytes, agent_chunks()))
        big["targets"] = verdict(big)
        small = many_small_processes(Path(tmp), count)
        small["targets"] = verdict(small)
        small_lines = one_big_process(Path(tmp), iter_rows(small_lines_bytes))
        small_lines["targets"] = verdict(small_lines)
    return {
        "agent_output": describe_agent_output(),
        "one_process": big,
        "small_processes": small,
        "one_process_small_lines": {
            "line_bytes": len(make_line(0)),
            "row_bytes": ROW_BYTES,
            **small_lines,
        },
    }
