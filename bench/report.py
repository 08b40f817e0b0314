"""Shared helpers of the benchmarks: percentiles of timings, memory readings, machine info and
the JSON result files under bench/results/."""

from __future__ import annotations

import json
import os
import platform
import resource
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_DIR",
    "describe_machine",
    "peak_rss_bytes",
    "percentiles_ms",
    "rss_bytes",
    "write_result",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentiles_ms(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50/p90/p99/max/mean of durations in nanoseconds, as milliseconds (nearest rank)."""
    if not samples_ns:
        raise ValueError("no samples")
    ordered = sorted(samples_ns)

    def rank(fraction: float) -> float:
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[index] / 1e6

    return {
        "p50_ms": rank(0.50),
        "p90_ms": rank(0.90),
        "p99_ms": rank(0.99),
        "max_ms": ordered[-1] / 1e6,
        "mean_ms": sum(ordered) / len(ordered) / 1e6,
        "samples": len(ordered),
    }


def rss_bytes(pid: int | str = "self") -> int:
    """VmRSS of a process (this one by default; threads included, children not), from
    /proc/<pid>/status; 0 once it is gone or where there is no /proc."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports kilobytes


def describe_machine() -> dict[str, Any]:
    """What the figures depend on: CPU, memory, Python and SQLite versions."""
    import sqlalchemy

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_total(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
    }


def write_result(
    name: str, results: dict[str, object], *, quick: bool, directory: Path = RESULTS_DIR
) -> Path:
    """Write ``<directory>/<name>.json`` with the results, the machine and a UTC timestamp."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": describe_machine(),
        "results": results,
    }
    path = directory / f"{name}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
