"""Live fan-out: one `script` process prints lines at a fixed rate (each carrying its wall-clock
send time) into a real ``execlog serve``; 100 WebSocket subscribers in this process read the raw
channel. Reports delivered events/s, append-to-client latency and resyncs.

Target (issue "HTTP/WS"): p99 < 10 ms at 10k events/s with 100 subscribers.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec
import websockets

from bench.report import percentiles_ms
from bench.serverproc import ServerProcess, read_cpu_seconds, run_server

__all__ = ["NAME", "Row", "run", "run_row"]

NAME: Final = "fanout"
SUBSCRIBERS: Final = 100
SECONDS: Final = 10.0
QUICK_SECONDS: Final = 3.0
TARGET_P99_MS: Final = 10.0
TARGET_RATE: Final = 10_000
# Time a subscriber may lag behind the producer's end before it gives up (bounded runs).
DRAIN_GRACE_SECONDS: Final = 60.0
CONNECT_TIMEOUT: Final = 30.0

# The producer: waits for the go file (all subscribers connected), then prints `rate` lines per
# second for `seconds`, in 1 ms ticks paced by perf_counter_ns, each line stamped with
# time.time_ns() when its batch is written. Its start wait is bounded too.
PRODUCER: Final = """
import os, sys, time
rate, seconds, go = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 120
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.005)
total = int(rate * seconds)
batch = max(1, int(rate / 1000))
out = sys.stdout
start = time.perf_counter_ns()
sent = 0
while sent < total:
    due = start + int(sent * 1e9 / rate)
    wait = due - time.perf_counter_ns()
    if wait > 0:
        time.sleep(wait / 1e9)
    stamp = time.time_ns()
    count = min(batch, total - sent)
    out.write("".join(f"{sent + i} {stamp} fanout-bench payload line\\n" for i in range(count)))
    out.flush()
    sent += count
"""


class _Entry(msgspec.Struct):
    content: str = ""


class _Frame(msgspec.Struct):
    type: str
    entry_index: int = -1
    entry: _Entry | None = None


_decode_frame = msgspec.json.Decoder(_Frame).decode


@dataclass(frozen=True, slots=True)
class Row:
    rate: int
    subscribers: int


@dataclass(slots=True)
class Subscriber:
    """What one WebSocket client saw. A resync re-sends entries the client already holds (as
    ``replace``): only the first receipt of an index counts as delivered and has a latency."""

    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    delivered: int = 0  # distinct entry indexes received
    newest_index: int = -1
    appends: int = 0
    replaces: int = 0
    finished: bool = False
    close_code: int | None = None
    first_stamp: int = 0
    last_stamp: int = 0
    last_received_ns: int = 0

    def receive(self, message: str | bytes, received_ns: int) -> None:
        frame = _decode_frame(message)
        if frame.type == "finished":
            self.finished = True
            return
        if frame.type == "append":
            self.appends += 1
        else:
            self.replaces += 1
        if frame.entry is None or frame.entry_index <= self.newest_index:
            return
        # Frames come in ascending index order (live, or a resync's replay): a gap would be a
        # lost entry, which the contract forbids; it shows as delivered < expected.
        self.newest_index = frame.entry_index
        self.delivered += 1
        stamp = int(frame.entry.content.split(" ", 2)[1])
        self.latencies_ns.append(received_ns - stamp)
        if not self.first_stamp:
            self.first_stamp = stamp
        self.last_stamp = stamp
        self.last_received_ns = received_ns


async def subscribe(
    url: str, subscriber: Subscriber, ready: asyncio.Event, deadline: float
) -> None:
    # No client pings: under overload both event loops are saturated, and a missed pong must
    # not end the measurement (the server keeps its own pings). A connection that drops
    # anyway is a result (its close code is recorded), not a crash.
    try:
        async with websockets.connect(
            url, open_timeout=CONNECT_TIMEOUT, max_size=None, ping_interval=None
        ) as ws:
            ready.set()
            try:
                async with asyncio.timeout_at(deadline):
                    async for message in ws:
                        subscriber.receive(message, time.time_ns())
            except TimeoutError:
                pass
            subscriber.close_code = ws.close_code
    except (websockets.exceptions.ConnectionClosedError, TimeoutError) as exc:
        ready.set()
        subscriber.close_code = getattr(getattr(exc, "rcvd", None), "code", None)


async def run_row_async(
    server: ServerProcess, row: Row, seconds: float, go: Path
) -> dict[str, Any]:
    go.unlink(missing_ok=True)
    command = [sys.executable, "-c", PRODUCER, str(row.rate), str(seconds), str(go)]
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        response = await client.post(
            "/api/sessions", json={"executor": "script", "command": command}
        )
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/sessions: {response.status_code} {response.text}")
        process_id = response.json()["data"]["processes"][0]["id"]
    ws_url = server.url.replace("http://", "ws://")
    url = f"{ws_url}/api/execution-processes/{process_id}/raw-logs/v2/ws"
    subscribers = [Subscriber() for _ in range(row.subscribers)]
    ready = [asyncio.Event() for _ in subscribers]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_TIMEOUT + seconds + DRAIN_GRACE_SECONDS
    tasks = [
        asyncio.create_task(subscribe(url, sub, event, deadline))
        for sub, event in zip(subscribers, ready, strict=True)
    ]
    async with asyncio.timeout(CONNECT_TIMEOUT):
        await asyncio.gather(*(event.wait() for event in ready))
    cpu_server = read_cpu_seconds(server.pid)
    cpu_clients = time.process_time()
    go_ns = time.time_ns()
    go.touch()
    await asyncio.gather(*tasks)
    cpu_server = read_cpu_seconds(server.pid) - cpu_server
    cpu_clients = time.process_time() - cpu_clients
    return summarize(row, seconds, subscribers, go_ns, cpu_server, cpu_clients)


def summarize(
    row: Row,
    seconds: float,
    subscribers: list[Subscriber],
    go_ns: int,
    cpu_server: float,
    cpu_clients: float,
) -> dict[str, Any]:
    expected = int(row.rate * seconds)
    delivered = sum(sub.delivered for sub in subscribers)
    frames = sum(sub.appends + sub.replaces for sub in subscribers)
    last_received = max(sub.last_received_ns for sub in subscribers)
    window = (last_received - go_ns) / 1e9
    first_stamp = min(sub.first_stamp for sub in subscribers if sub.first_stamp)
    last_stamp = max(sub.last_stamp for sub in subscribers)
    latencies = array("q")
    for sub in subscribers:
        latencies.extend(sub.latencies_ns)
    latency = percentiles_ms(latencies)
    return {
        "rate_target": row.rate,
        "subscribers": row.subscribers,
        "seconds": seconds,
        "lines_produced": expected,
        "producer_rate_achieved": round(expected / max(1e-9, (last_stamp - first_stamp) / 1e9)),
        "entries_delivered": delivered,
        "entries_expected": expected * row.subscribers,
        "frames_received": frames,
        "delivered_events_per_s": round(delivered / window),
        "delivery_window_seconds": round(window, 2),
        "latency": latency,
        "subscribers_resynced": sum(1 for sub in subscribers if sub.replaces),
        "replace_frames": sum(sub.replaces for sub in subscribers),
        "subscribers_finished": sum(1 for sub in subscribers if sub.finished),
        "close_codes": sorted({str(sub.close_code) for sub in subscribers}),
        "server_cpu_share": round(cpu_server / window, 2),
        "client_cpu_share": round(cpu_clients / window, 2),
        # The p99 bound with every entry delivered; only the 10k/s, 100-subscriber row is the
        # issue's target, the other rows apply the same bound for comparison.
        "p99_under_10ms_all_delivered": latency["p99_ms"] < TARGET_P99_MS
        and delivered == expected * row.subscribers,
    }


def run_row(server: ServerProcess, row: Row, seconds: float, directory: Path) -> dict[str, Any]:
    return asyncio.run(run_row_async(server, row, seconds, directory / "go"))


def run(quick: bool) -> dict[str, object]:
    seconds = QUICK_SECONDS if quick else SECONDS
    # 10k/s produced × 100 subscribers is 1M frames/s; 100/s × 100 is 10k events/s delivered.
    # Both readings of "10k events/s" are reported (docs/performance.md).
    rows = [
        Row(10_000, SUBSCRIBERS),
        Row(1_000, SUBSCRIBERS),
        Row(100, SUBSCRIBERS),
        Row(10_000, 10),
        Row(10_000, 1),
    ]
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="execlog-bench-") as directory:
        with run_server(Path(directory)) as server:
            for row in rows:
                key = f"{row.rate}_per_s_{row.subscribers}_subscribers"
                results[key] = run_row(server, row, seconds, Path(directory))
    main = results[f"{TARGET_RATE}_per_s_{SUBSCRIBERS}_subscribers"]
    results["target"] = {"p99_ms": TARGET_P99_MS, "rate": TARGET_RATE, "subscribers": SUBSCRIBERS}
    results["meets_target"] = bool(main["p99_under_10ms_all_delivered"])  # type: ignore[index]
    return results
