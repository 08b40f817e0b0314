"""Live pipeline under load: a real ``execlog serve`` runs 20 demo-agent sessions at once, each
printing as fast as it can; the server's RSS is sampled every 100 ms until all have completed.

Targets (issue "Live pipeline"): peak RSS <= baseline + 20 x 2 x EXECLOG_LOG_HISTORY_MAX_BYTES
+ 150 MB, and >= 200k raw lines/s end to end (first POST to last completion, all committed).
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

from bench.report import rss_bytes
from bench.serverproc import ServerProcess, read_cpu_seconds, run_server
from execlog.config import Settings

__all__ = ["NAME", "LoadRun", "run", "run_load"]

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
    }
