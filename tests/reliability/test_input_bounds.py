"""Numbers out of range and oversized values (issue 9, item 5): ``limit``, ``cursor`` and
``after`` take whole numbers below 2^63; anything else is a 400 or close 4400, never a 500 or a
1006; an error message quotes at most 200 characters of a bad value."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from execlog.protocol import INDEX_MAX, QUOTED_VALUE_MAX_CHARS
from tests.api.helpers import create_session, script_body, wait_for_process_end
from tests.api.test_logs_ws import http_client, read_stream, stream_url
from tests.conftest import LiveServer

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

TOO_BIG = [str(INDEX_MAX + 1), "9" * 30, "1" * 5000, "-" + "9" * 5000]


async def test_out_of_range_numbers_are_refused_with_short_messages(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    async with http_client(server) as client:
        session = await create_session(client, script_body("for i in range(5): print(i)"))
        pid = session["processes"][0]["id"]
        await wait_for_process_end(client, pid)
        url = f"/api/execution-processes/{pid}/raw-logs/v2"
        for name in ("cursor", "around"):
            ok = await client.get(url, params={name: str(INDEX_MAX)})
            assert ok.status_code == 200 and len(ok.json()["data"]["entries"]) == 5, ok.text
        for value in TOO_BIG:
            for name in ("cursor", "limit", "around"):
                response = await client.get(url, params={name: value})
                assert response.status_code == 400, (name, value[:30], response.text[:300])
                message = response.json()["message"]
                assert name in message
                assert len(message) < QUOTED_VALUE_MAX_CHARS + 200, len(message)
        for value in (str(INDEX_MAX), "0000000000000000000000000000012"):
            result = await read_stream(stream_url(server, pid, after=value), max_frames=10)
            assert result.close_code == 1000, (value, result)
        for value in TOO_BIG:
            result = await read_stream(stream_url(server, pid, after=value), max_frames=0)
            assert result.close_code == 4400, (value[:30], result)
            assert result.close_reason is not None and "after" in result.close_reason
        # A 50 MB unknown field: 400, and the message quotes 200 characters of it.
        huge = "z" * 50_000_000
        response = await client.post(
            "/api/sessions", json={**script_body("print(1)"), "surprise": huge}
        )
        assert response.status_code == 400
        assert len(response.text) < 2_000, len(response.text)
        assert "surprise" in response.json()["message"]
