"""Tail pages over HTTP: GET .../raw-logs/v2?limit=200 (newest page, and older pages by random
cursor) of an ended process holding 1M raw entries, from a real ``execlog serve`` on loopback
(client-observed) and in-process (the app through httpx.ASGITransport, and the history service).

Target (issue "HTTP/WS"): p99 < 5 ms server-side. Compared with the full parse of the same
history from legacy JSONL, and with the Prefect figures quoted in the team brief.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import httpx

from bench.ingest import make_line
from bench.report import percentiles_ms
from bench.serverproc import run_server
from bench.tail_page import load_entries
from execlog.app import create_app
from execlog.config import load_settings
from execlog.protocol import encode_history_page, encode_legacy_stream_line, now_ms
from execlog.storage.database import create_database_engine
from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore, StdoutMessage
from execlog.storage.migrate import run_migrations
from execlog.storage.processes import ProcessRecord, ProcessRepository, SessionRecord

__all__ = ["NAME", "run"]

NAME: Final = "http_tail"
ENTRIES: Final = 1_000_000
QUICK_ENTRIES: Final = 100_000
REQUESTS: Final = 1000
QUICK_REQUESTS: Final = 200
WARMUP: Final = 50
PAGE: Final = 200
LEGACY_LINES_PER_ROW: Final = 2000
TARGET_P99_MS: Final = 5.0
# Published figures quoted in the team brief (not measured here): Prefect 3.8 on SQLite, a tail
# page of 200 at 860k lines, and an older page by offset.
PREFECT_LINES: Final = 860_000
PREFECT_TAIL_P50_MS: Final = 14.0
PREFECT_OLDER_MS: Final = 60.0
PREFECT_OLDER_P99_MS: Final = 320.0

Timer = Callable[[int | None], Awaitable[None]]


def create_ended_process(database: Path, entries: int) -> str:
    """A session with one completed `script` process holding ``entries`` raw entries."""
    engine = create_database_engine(f"sqlite:///{database}")
    try:
        run_migrations(engine)
        repository = ProcessRepository(engine)
        now = now_ms()
        session = SessionRecord(str(uuid.uuid4()), "script", None, now)
        repository.insert_session(session)
        process_id = str(uuid.uuid4())
        argv = ["python", "-c", "print('bench')"]
        record = ProcessRecord(
            process_id,
            session.id,
            "script",
            "completed",
            0,
            now,
            now,
            None,
            {"executor": "script", "argv": argv},
        )
        repository.insert_process(record, prompt=None)
        load_entries(EntryStore(engine), process_id, entries)
    finally:
        engine.dispose()
    return process_id


def page_cursors(rng: random.Random, entries: int, requests: int) -> list[int | None]:
    """Newest pages and random older pages, interleaved so both see the same background."""
    cursors: list[int | None] = []
    for _ in range(requests):
        cursors.append(None)
        cursors.append(rng.randrange(PAGE, entries + 1))
    return cursors


def split_samples(cursors: list[int | None], samples: list[int]) -> dict[str, Any]:
    return {
        "newest_page": percentiles_ms(
            [s for c, s in zip(cursors, samples, strict=True) if c is None]
        ),
        "older_page": percentiles_ms(
            [s for c, s in zip(cursors, samples, strict=True) if c is not None]
        ),
    }


def check_page(body: bytes | str, cursor: int | None, entries: int) -> None:
    import json

    data = json.loads(body)
    data = data.get("data", data)
    indexes = [item["entry_index"] for item in data["entries"]]
    upper = entries if cursor is None else cursor
    if indexes != list(range(upper - PAGE, upper)):
        raise AssertionError(f"wrong page for cursor {cursor}: {indexes[:1]}..{indexes[-1:]}")


def measure_http(url: str, path: str, cursors: list[int | None], entries: int) -> list[int]:
    """Client-observed: request sent to body read, one keep-alive connection."""
    samples = []
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for cursor in cursors[: 2 * WARMUP] + cursors:
            params = {"limit": PAGE} if cursor is None else {"limit": PAGE, "cursor": cursor}
            started = time.perf_counter_ns()
            response = client.get(path, params=params)
            elapsed = time.perf_counter_ns() - started
            if response.status_code != 200:
                raise AssertionError(f"GET {path}: {response.status_code} {response.text[:200]}")
            check_page(response.content, cursor, entries)
            samples.append(elapsed)
    return samples[2 * WARMUP :]


async def measure_in_process(
    database: Path, process_id: str, path: str, cursors: list[int | None], entries: int
) -> dict[str, list[int]]:
    """The same requests through the ASGI app in this process (routing, validation, history
    service, encoding; no sockets), and through HistoryService + encode_history_page alone."""
    settings = load_settings(database_url=f"sqlite:///{database}")
    app = create_app(settings)
    services = app.state.services
    asgi: list[int] = []
    service: list[int] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for cursor in cursors[: 2 * WARMUP] + cursors:
            params = {"limit": PAGE} if cursor is None else {"limit": PAGE, "cursor": cursor}
            started = time.perf_counter_ns()
            response = await client.get(path, params=params)
            asgi.append(time.perf_counter_ns() - started)
            if response.status_code != 200:
                raise AssertionError(f"ASGI GET {path}: {response.status_code}")
            check_page(response.content, cursor, entries)
    for cursor in cursors[: 2 * WARMUP] + cursors:
        started = time.perf_counter_ns()
        page = await services.history.fetch_page(process_id, "raw", PAGE, cursor)
        body = encode_history_page(page)
        service.append(time.perf_counter_ns() - started)
        check_page(body, cursor, entries)
    services.engine.dispose()
    return {"asgi": asgi[2 * WARMUP :], "service": service[2 * WARMUP :]}


def time_legacy_parse(directory: Path, entries: int) -> dict[str, float | int]:
    """The same history as legacy JSONL ({"Stdout": ...} lines, one writer group per row),
    parsed in full: what serving any page costs a server without entry rows."""
    engine = create_database_engine(f"sqlite:///{directory / 'legacy.db'}")
    try:
        run_migrations(engine)
        legacy = LegacyLogStore(engine)
        process_id = str(uuid.uuid4())
        for start in range(0, entries, LEGACY_LINES_PER_ROW):
            stop = min(entries, start + LEGACY_LINES_PER_ROW)
            legacy.append_lines_now(
                process_id,
                [encode_legacy_stream_line("stdout", make_line(i)) for i in range(start, stop)],
            )
        reader = legacy.read_messages(process_id)
        started = time.perf_counter()
        lines = sum(1 for message in reader if isinstance(message, StdoutMessage))
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    if lines != entries or reader.malformed_lines:
        raise AssertionError(f"legacy parse read {lines} lines of {entries}")
    return {"seconds": elapsed, "bytes": reader.bytes_read, "lines": lines}


def run(quick: bool) -> dict[str, object]:
    entries = QUICK_ENTRIES if quick else ENTRIES
    requests = QUICK_REQUESTS if quick else REQUESTS
    cursors = page_cursors(random.Random(20240607), entries, requests)
    results: dict[str, object] = {"entries": entries, "page": PAGE, "requests_per_kind": requests}
    with tempfile.TemporaryDirectory(prefix="execlog-bench-") as directory:
        root = Path(directory)
        database = root / "execlog.db"
        started = time.perf_counter()
        process_id = create_ended_process(database, entries)
        results["load_seconds"] = round(time.perf_counter() - started, 2)
        path = f"/api/execution-processes/{process_id}/raw-logs/v2"
        with run_server(root, {"EXECLOG_LOG_PERSISTENCE": "dual"}) as server:
            http = measure_http(server.url, path, cursors, entries)
        in_process = asyncio.run(measure_in_process(database, process_id, path, cursors, entries))
        results["client_over_loopback_http"] = split_samples(cursors, http)
        results["server_side_asgi_in_process"] = split_samples(cursors, in_process["asgi"])
        results["server_side_history_service"] = split_samples(cursors, in_process["service"])
        legacy = time_legacy_parse(root, entries)
    results["legacy_full_parse"] = legacy
    server_side = results["server_side_asgi_in_process"]
    client = results["client_over_loopback_http"]
    assert isinstance(server_side, dict) and isinstance(client, dict)
    server_p99 = max(server_side["newest_page"]["p99_ms"], server_side["older_page"]["p99_ms"])
    results["legacy_parse_to_client_newest_p50"] = round(
        float(legacy["seconds"]) * 1000 / client["newest_page"]["p50_ms"]
    )
    results["prefect_from_brief"] = {
        "source": "team brief: published Prefect 3.8 figures on SQLite, not measured here",
        "lines": PREFECT_LINES,
        "tail_page_p50_ms": PREFECT_TAIL_P50_MS,
        "older_page_by_offset_ms": PREFECT_OLDER_MS,
        "older_page_by_offset_p99_ms": PREFECT_OLDER_P99_MS,
    }
    # Our client-observed figures (HTTP on loopback), the side comparable with published ones.
    results["prefect_ratio"] = {
        "tail_p50": round(PREFECT_TAIL_P50_MS / client["newest_page"]["p50_ms"], 1),
        "older_60ms_vs_our_older_p99": round(PREFECT_OLDER_MS / client["older_page"]["p99_ms"], 1),
        "older_320ms_vs_our_older_p99": round(
            PREFECT_OLDER_P99_MS / client["older_page"]["p99_ms"], 1
        ),
    }
    results["target_p99_ms_server_side"] = TARGET_P99_MS
    results["meets_target"] = server_p99 < TARGET_P99_MS
    return results
