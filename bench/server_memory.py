"""Live pipeline under load: a real ``execlog serve`` runs 20 demo-agent sessions at once, each
printing as fast as it can; the server's RSS is sampled every 100 ms until all have completed.

Targets (issue "Live pipeline"): peak RSS <= baseline + 20 x 2 x EXECLOG_LOG_HISTORY_MAX_BYTES
+ 150 MB, and >= 200k raw lines/s end to end (first POST to last completion, all committed).

The memory budget run (issue 9): agents printing mixed line sizes (100 B to 1 MiB) while
WebSocket subscribers follow them, some stalled and some slow; peak RSS against the budget
formula of docs/performance.md (target < 1 GB and within the formula). Beside it, in the same
run, ingest of 1 KB lines through the writer in MB/s against a plain sqlite3 ``executemany`` of
the same rows (target >= 100 MB/s and >= 0.5x).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.report import rss_bytes
from bench.serverproc import ServerProcess, read_cpu_seconds, run_server
from execlog.config import Settings
from execlog.protocol import encode_raw_entry
from execlog.storage.database import SQLITE_PAGE_SIZE

__all__ = ["NAME", "BudgetRun", "LoadRun", "run", "run_budget", "run_load"]

NAME: Final = "server_memory"
SESSIONS: Final = 20
# Per session. 100 MB each is the figure; on the 2-vCPU machine of the recorded run
# 20 x 100 MB takes far longer than the ~5 minutes a benchmark may take, so the default is the
# largest size that fits (see docs/performance.md); --quick is a smoke test.
BYTES_EACH: Final = 50_000_000
QUICK_BYTES_EACH: Final = 1_000_000
LINE_BYTES: Final = 200
SAMPLE_SECONDS: Final = 0.1
RUN_TIMEOUT: Final = 900.0
STATUS_POLL_SECONDS: Final = 0.5
MB: Final = 1_000_000
HEADROOM_BYTES: Final = 150 * MB
TARGET_LINES_PER_S: Final = 200_000

# The memory budget run at the scale: 50 agents x 200 MB (10 GB) with 100 subscribers (5
# stalled, 5 slow). The byte mix is dominated by its 1 MiB lines (90 % of the bytes), which the
# pipeline moves at ~40 MB/s here, so the run takes about four minutes; --quick is a smoke test.
BUDGET_AGENTS: Final = 50
BUDGET_BYTES_EACH: Final = 200_000_000
BUDGET_SUBSCRIBERS: Final = 100  # of which BUDGET_STALLED stalled and BUDGET_SLOW slow
BUDGET_STALLED: Final = 5
BUDGET_SLOW: Final = 5
QUICK_BUDGET_AGENTS: Final = 2
QUICK_BUDGET_BYTES_EACH: Final = 2_000_000
MIXED_LINE_BYTES: Final = (100, 1_000, 10_000, 100_000, 1_048_576)
# docs/performance.md: budget = H x P x 2 + W x 1.25 + S x Q + C.
SUBSCRIBER_QUEUE_BYTES: Final = 4 << 20
FIXED_BYTES: Final = 48 * MB
TARGET_BUDGET_PEAK: Final = 1_000 * MB
INGEST_LINE_BYTES: Final = 1_000
INGEST_ROWS: Final = 200_000
QUICK_INGEST_ROWS: Final = 20_000
TARGET_INGEST_MB_PER_S: Final = 100.0

# A child printing lines of mixed sizes, cycling through MIXED_LINE_BYTES, up to a total.
MIXED_PRINTER: Final = """
import sys
total = int(sys.argv[1])
sizes = [int(size) for size in sys.argv[2:]]
lines = [("y" * (size - 1) + "\\n").encode() for size in sizes]
out = sys.stdout.buffer
written = 0
n = 0
while written < total:
    line = lines[n % len(lines)]
    out.write(line)
    written += len(line)
    n += 1
out.flush()
"""

# The comparison row's child: the same volume of plain lines, no stream-json, no normalizer.
PRINTER: Final = """
import sys
total, size = int(sys.argv[1]), int(sys.argv[2])
body = "x" * (size - 12)
block = "".join(f"{n:010d} {body}\\n" for n in range(1000)).encode()
out = sys.stdout.buffer
written = 0
while written < total:
    out.write(block)
    written += len(block)
out.flush()
"""


@dataclass(slots=True)
class LoadRun:
    """One load: ``sessions`` processes of ``executor`` printing ``bytes_each`` bytes."""

    executor: str
    persistence: str
    sessions: int
    bytes_each: int
    line_bytes: int = LINE_BYTES
    env: dict[str, str] = field(default_factory=dict)


class RssSampler:
    """Samples one pid's VmRSS in a thread every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self.samples: list[tuple[float, int]] = []
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - started, rss_bytes(self._pid)))
            self._stop.wait(self._interval)

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


def measure_baseline(server: ServerProcess) -> int:
    """RSS after start-up, before any session: the highest of a few readings a moment apart."""
    readings = []
    for _ in range(5):
        readings.append(server.rss_bytes())
        time.sleep(SAMPLE_SECONDS)
    return max(readings)


def session_body(load: LoadRun) -> dict[str, Any]:
    if load.executor == "demo":
        return {"executor": "demo", "prompt": "Fix the empty-input bug, then print the logs."}
    printer = [sys.executable, "-c", PRINTER, str(load.bytes_each), str(load.line_bytes)]
    return {"executor": "script", "command": printer}


async def start_and_wait(server: ServerProcess, load: LoadRun) -> dict[str, Any]:
    """POST every session, then poll until each one's process has left ``running``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        started_wall = time.time()
        started = time.monotonic()
        responses = await asyncio.gather(
            *(client.post("/api/sessions", json=session_body(load)) for _ in range(load.sessions))
        )
        session_ids = []
        for response in responses:
            if response.status_code != 201:
                raise RuntimeError(f"POST /api/sessions: {response.status_code} {response.text}")
            session_ids.append(response.json()["data"]["id"])
        deadline = started + RUN_TIMEOUT
        processes: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            for session_id in session_ids:
                if session_id in processes:
                    continue
                data = (await client.get(f"/api/sessions/{session_id}")).json()["data"]
                if all(p["status"] != "running" for p in data["processes"]):
                    processes[session_id] = data["processes"][-1]
            if len(processes) == len(session_ids):
                break
            await asyncio.sleep(STATUS_POLL_SECONDS)
        timed_out = len(processes) < len(session_ids)
        if timed_out:  # bounded: stop what still runs, and say so in the results
            for session_id in session_ids:
                data = (await client.get(f"/api/sessions/{session_id}")).json()["data"]
                for process in data["processes"]:
                    if process["status"] == "running":
                        await client.post(f"/api/execution-processes/{process['id']}/stop")
    completions = [
        datetime.fromisoformat(p["completed_at"].replace("Z", "+00:00")).timestamp()
        for p in processes.values()
        if p["completed_at"]
    ]
    return {
        "timed_out": timed_out,
        "statuses": sorted({p["status"] for p in processes.values()}),
        # completed_at is stamped after the process's last entry is committed (CONTRACT.md).
        "wall_seconds": (max(completions) if completions else time.time()) - started_wall,
    }


def count_entries(database: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT channel, count(*) FROM execution_process_log_entries GROUP BY channel"
        ).fetchall()
        legacy_rows, legacy_bytes = connection.execute(
            "SELECT count(*), coalesce(sum(byte_size), 0) FROM execution_process_logs"
        ).fetchone()
    finally:
        connection.close()
    counts = {str(channel): int(count) for channel, count in rows}
    counts["legacy_rows"] = int(legacy_rows)
    counts["legacy_bytes"] = int(legacy_bytes)
    return counts


def run_load(load: LoadRun) -> dict[str, Any]:
    """Start a server, measure its baseline, run the load while sampling RSS, count the rows."""
    env = {"EXECLOG_LOG_PERSISTENCE": load.persistence, **load.env}
    if load.executor == "demo":
        env["EXECLOG_DEMO_ARGS"] = (
            f"--pace 0 --no-approval --bulk-bytes {load.bytes_each} --line-bytes {load.line_bytes}"
        )
    with tempfile.TemporaryDirectory(prefix="execlog-bench-") as directory:
        database = Path(directory) / "execlog.db"
        with run_server(Path(directory), env) as server:
            baseline = measure_baseline(server)
            cpu_before = read_cpu_seconds(server.pid)
            with RssSampler(server.pid) as sampler:
                outcome = asyncio.run(start_and_wait(server, load))
            cpu_seconds = read_cpu_seconds(server.pid) - cpu_before
            rss_after = server.rss_bytes()
        counts = count_entries(database)
    default_max_bytes = Settings.model_fields["log_history_max_bytes"].default
    max_bytes = int(load.env.get("EXECLOG_LOG_HISTORY_MAX_BYTES", default_max_bytes))
    history_budget = load.sessions * 2 * max_bytes
    limit = baseline + history_budget + HEADROOM_BYTES
    wall = float(outcome["wall_seconds"])
    raw = counts.get("raw", 0)
    return {
        "executor": load.executor,
        "persistence": load.persistence,
        "sessions": load.sessions,
        "bytes_each": load.bytes_each,
        "line_bytes": load.line_bytes,
        **outcome,
        "entries": counts,
        "raw_lines_per_s": round(raw / wall),
        "output_mb_per_s": round(load.sessions * load.bytes_each / wall / MB, 2),
        "server_cpu_seconds": round(cpu_seconds, 1),
        "server_cpu_share": round(cpu_seconds / wall, 2),
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": sampler.peak,
        "rss_after_bytes": rss_after,
        "history_budget_bytes": history_budget,
        "peak_rss_limit_bytes": limit,
        "rss_samples": len(sampler.samples),
        "meets_memory_target": sampler.peak <= limit,
    }


def run(quick: bool) -> dict[str, object]:
    bytes_each = QUICK_BYTES_EACH if quick else BYTES_EACH
    main = run_load(LoadRun("demo", "dual", SESSIONS, bytes_each))
    # The same bytes as plain lines through the `script` executor: raw channel only, no
    # normalizer, so the difference is what normalizing costs; once more without legacy JSONL.
    plain = run_load(LoadRun("script", "dual", SESSIONS, bytes_each))
    plain_entries = run_load(LoadRun("script", "entries", SESSIONS, bytes_each))
    if quick:
        budget_load = BudgetRun(QUICK_BUDGET_AGENTS, QUICK_BUDGET_BYTES_EACH, 4, 1, 1)
    else:
        budget_load = BudgetRun(
            BUDGET_AGENTS, BUDGET_BYTES_EACH, BUDGET_SUBSCRIBERS, BUDGET_STALLED, BUDGET_SLOW
        )
    budget = run_budget(budget_load)
    ingest = measure_kilobyte_ingest(QUICK_INGEST_ROWS if quick else INGEST_ROWS)
    return {
        "demo_dual": main,
        "script_dual": plain,
        "script_entries": plain_entries,
        "targets": {
            "peak_rss": "baseline + sessions x 2 x EXECLOG_LOG_HISTORY_MAX_BYTES + 150 MB",
            "raw_lines_per_s": TARGET_LINES_PER_S,
        },
        "meets_memory_target": bool(main["meets_memory_target"]),
        "meets_throughput_target": int(main["raw_lines_per_s"]) >= TARGET_LINES_PER_S,
        "memory_budget": budget,
        "kilobyte_ingest": ingest,
    }


# --- the memory budget run (issue 9) ---------------------------------------------------------


@dataclass(slots=True)
class BudgetRun:
    agents: int
    bytes_each: int
    subscribers: int
    stalled: int
    slow: int


async def follow(url: str, kind: str, frames: list[int]) -> None:
    """One subscriber: ``fast`` reads everything, ``slow`` pauses every 20 frames, ``stalled``
    reads one frame and then nothing until the server closes."""
    async with connect(url, max_queue=1, open_timeout=30, close_timeout=5) as ws:
        count = 0
        async for _ in _frames(ws):
            count += 1
            if kind == "stalled":
                await asyncio.sleep(RUN_TIMEOUT)  # cancelled when the load ends
            if kind == "slow" and count % 20 == 0:
                await asyncio.sleep(0.01)
        frames.append(count)


async def _frames(ws: ClientConnection) -> Any:
    try:
        async for message in ws:
            yield message
    except Exception:  # the server closing a stalled reader ends it
        return


async def run_budget_load(server: ServerProcess, load: BudgetRun) -> dict[str, Any]:
    command = [sys.executable, "-c", MIXED_PRINTER, str(load.bytes_each)] + [
        str(size) for size in MIXED_LINE_BYTES
    ]
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        gate_body = {"executor": "script", "command": command}
        started_wall = time.time()
        responses = await asyncio.gather(
            *(client.post("/api/sessions", json=gate_body) for _ in range(load.agents))
        )
        process_ids = [r.json()["data"]["processes"][0]["id"] for r in responses]
        ws_base = "ws" + server.url[len("http") :]
        kinds = ["stalled"] * load.stalled + ["slow"] * load.slow
        kinds += ["fast"] * (load.subscribers - len(kinds))
        frames: list[int] = []
        followers = {
            asyncio.create_task(
                follow(
                    f"{ws_base}/api/execution-processes/{process_ids[n % len(process_ids)]}"
                    "/raw-logs/v2/ws",
                    kind,
                    frames,
                )
            ): kind
            for n, kind in enumerate(kinds)
        }
        deadline = time.monotonic() + RUN_TIMEOUT
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline and len(statuses) < len(process_ids):
            for pid in process_ids:
                if pid not in statuses:
                    data = (await client.get(f"/api/execution-processes/{pid}")).json()["data"]
                    if data["status"] != "running":
                        statuses[pid] = data["status"]
            await asyncio.sleep(STATUS_POLL_SECONDS)
        wall = time.time() - started_wall
        # The readers that read finish with their streams; a stalled one never would.
        await asyncio.wait([t for t, kind in followers.items() if kind != "stalled"], timeout=30)
        for task in followers:
            task.cancel()
        health = (await client.get("/api/health")).json()["data"]
    return {
        "timed_out": len(statuses) < len(process_ids),
        "statuses": sorted(set(statuses.values())),
        "wall_seconds": round(wall, 1),
        "subscribers_done": len(frames),
        "health_after": health,
    }


def run_budget(load: BudgetRun) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="execlog-bench-") as directory:
        with run_server(Path(directory), {}) as server:
            baseline = measure_baseline(server)
            with RssSampler(server.pid) as sampler:
                outcome = asyncio.run(run_budget_load(server, load))
            time.sleep(3.0)  # the writer idles and trims
            rss_after = server.rss_bytes()
    history = int(Settings.model_fields["log_history_max_bytes"].default)
    writer = int(Settings.model_fields["writer_queue_bytes"].default)
    budget = (
        history * load.agents * 2
        + writer * 5 // 4
        + load.subscribers * SUBSCRIBER_QUEUE_BYTES
        + FIXED_BYTES
    )
    growth = sampler.peak - baseline
    return {
        "agents": load.agents,
        "bytes_each": load.bytes_each,
        "line_bytes": list(MIXED_LINE_BYTES),
        "subscribers": load.subscribers,
        "stalled": load.stalled,
        "slow": load.slow,
        **outcome,
        "output_mb_per_s": round(load.agents * load.bytes_each / outcome["wall_seconds"] / MB, 1),
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": sampler.peak,
        "peak_growth_bytes": growth,
        "rss_after_bytes": rss_after,
        "budget_formula": "H x P x 2 + W x 1.25 + S x Q + C",
        "budget_bytes": budget,
        "within_budget": growth <= budget,
        "meets_target": sampler.peak < TARGET_BUDGET_PEAK and growth <= budget,
    }


def measure_kilobyte_ingest(rows: int) -> dict[str, Any]:
    """1 KB lines through the writer (entries and dual) against plain executemany, same rows."""
    from bench.ingest import measure_sqlite_side_by_side

    process_id = "00000000-0000-4000-8000-000000000001"
    body = "k" * (INGEST_LINE_BYTES - 30)
    lines = [f"{index:08d} {body}" for index in range(rows)]
    payloads = [encode_raw_entry("stdout", line) for line in lines]
    megabytes = sum(map(len, payloads)) / MB
    plain, entries, dual = measure_sqlite_side_by_side(process_id, payloads)
    plain_mb = plain * megabytes / rows
    entries_mb = float(entries["rows_per_s"]) * megabytes / rows
    return {
        "rows": rows,
        "sqlite_page_size": SQLITE_PAGE_SIZE,
        "payload_mb": round(megabytes, 1),
        "plain_executemany_mb_per_s": round(plain_mb, 1),
        "writer_entries_mb_per_s": round(entries_mb, 1),
        "writer_dual_mb_per_s": round(float(dual["rows_per_s"]) * megabytes / rows, 1),
        "ratio_entries": round(entries_mb / plain_mb, 3),
        "meets_target": entries_mb >= TARGET_INGEST_MB_PER_S and entries_mb >= 0.5 * plain_mb,
    }
