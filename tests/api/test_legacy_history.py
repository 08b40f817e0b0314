"""A process whose history exists only as legacy JSONL is served by the v2 pages and streams
through the on-demand backfill (CONTRACT.md, "Log history": no silent empty fallback)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from execlog.config import Settings
from execlog.storage.database import create_database_engine
from execlog.storage.migrate import run_migrations
from tests.api.helpers import walk_history
from tests.api.test_logs_ws import read_stream, stream_url
from tests.conftest import LiveServer
from tests.jobs.legacy_data import patch, seed_process, stderr, stdout

HELLO = {"timestamp": None, "entry_type": {"type": "assistant_message"}, "content": "hi"}
ROWS = [
    (stdout("first li"), 5000),
    (stdout("ne\nsecond é"), 5000),  # tied time: row id decides
    ('{"Stdout": "\\ud83d"}', 6000),  # an emoji cut between two pipe chunks
    ('{"Stdout": "\\ude00 end\\nno newline at the end"}', 7000),
    ("{this line is not json", 7000),
    (stderr("oops\n"), 8000),
    (
        patch(
            "add",
            0,
            {
                "type": "NORMALIZED_ENTRY",
                "content": {
                    "timestamp": None,
                    "entry_type": {"type": "assistant_message"},
                    "content": "hi",
                },
            },
        ),
        9000,
    ),
]
EXPECTED_RAW = [
    {"type": "STDOUT", "content": "first line"},
    {"type": "STDOUT", "content": "second é\U0001f600 end"},
    {"type": "STDERR", "content": "oops"},
    # A final line without a newline is an entry too, once the stream has ended.
    {"type": "STDOUT", "content": "no newline at the end"},
]


def seed(settings: Settings) -> tuple[str, str]:
    engine = create_database_engine(settings.database_url)
    run_migrations(engine)
    ids = (seed_process(engine, ROWS), seed_process(engine, ROWS))
    engine.dispose()
    return ids


async def test_jsonl_only_process_is_served_by_pages_and_streams(
    make_settings: Callable[..., Settings], live_server: Callable[..., LiveServer]
) -> None:
    paged, streamed = seed(make_settings())
    server = live_server(backfill_mode="off", legacy_jsonl_retention_days=0)

    async with httpx.AsyncClient(base_url=server.url) as client:
        entries = await walk_history(client, paged, "raw", limit=3)
        assert [e["entry"] for e in entries] == EXPECTED_RAW
        assert [e["entry_index"] for e in entries] == [0, 1, 2, 3]
        tail = (await client.get(f"/api/execution-processes/{paged}/raw-logs/v2")).json()["data"]
        assert tail["history_truncated"] is False and tail["has_more"] is False
        conversation = await walk_history(client, paged, "normalized", limit=20)
        assert [e["entry"]["content"]["content"] for e in conversation] == ["hi"]

    # The stream of the other process (never read before) backfills it too.
    result = await read_stream(stream_url(server, streamed, after=-1), max_frames=10)
    assert [f["entry"] for f in result.entry_frames] == EXPECTED_RAW
    assert result.frames[-1] == {"type": "finished"} and result.close_code == 1000
    assert json.dumps(result.indexes()) == "[0, 1, 2, 3]"
