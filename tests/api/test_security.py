"""The request guard on a real server: token (header, query, cookie), Origin on WebSocket
handshakes and state-changing requests, Host against DNS rebinding, and the refusal to listen
beyond loopback without a token (CONTRACT.md, "WebSocket streams" and "Configuration")."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.api.helpers import script_body
from tests.api.test_logs_ws import StreamResult, read_until_closed, stream_url
from tests.conftest import LiveServer

pytestmark = pytest.mark.asyncio

TOKEN = "s3cret-token-0123456789"
EVIL = "http://evil.example"


def server_port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def get_sessions(server: LiveServer, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        return await client.get("/api/sessions", **kwargs)


async def post_session(server: LiveServer, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        return await client.post("/api/sessions", json=script_body("print('hi')"), **kwargs)


def assert_error_envelope(response: httpx.Response, status: int, mentions: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["data"] is None
    assert mentions in body["message"]


async def open_stream(url: str, **kwargs: Any) -> StreamResult:
    """Connect (the handshake must succeed) and read to the close; an unknown process id makes
    the server accept, then close with 4404."""
    async with connect(url, open_timeout=30, **kwargs) as ws:
        return await read_until_closed(ws, StreamResult(), max_frames=0)


async def refused_handshake_status(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=30, **kwargs):
            pass
    status: int = refused.value.response.status_code
    return status


def unknown_stream(server: LiveServer, **params: Any) -> str:
    return stream_url(server, str(uuid.uuid4()), **params)


# --- token ------------------------------------------------------------------------------------


async def test_token_is_required_over_http(live_server: Callable[..., LiveServer]) -> None:
    server = live_server(auth_token=TOKEN)
    missing = await get_sessions(server)
    assert_error_envelope(missing, 401, "token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = {"Authorization": "Bearer nope"}
    assert_error_envelope(await get_sessions(server, headers=wrong), 401, "token")
    assert_error_envelope(await get_sessions(server, params={"token": "nope"}), 401, "token")
    # A state-changing request without the token starts nothing.
    assert_error_envelope(await post_session(server), 401, "token")

    bearer = await get_sessions(server, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200 and bearer.json()["data"] == []
    assert (await get_sessions(server, params={"token": TOKEN})).status_code == 200
    cookie = await get_sessions(server, headers={"Cookie": f"execlog_token={TOKEN}"})
    assert cookie.status_code == 200


async def test_token_cookie_is_found_among_foreign_cookies(
    live_server: Callable[..., LiveServer],
) -> None:
    """Cookies are per host, not per port: a browser sends other local apps' cookies along,
    some not RFC-clean. They must not hide the token."""
    server = live_server(auth_token=TOKEN)
    for header in (
        f'theme=dark; execlog_token={TOKEN}; csrf="a,b"',
        f"expires=Thu, 01 Jan 2099 00:00:00 GMT; execlog_token={TOKEN}",
        f"odd name=1; execlog_token={TOKEN}",
        f'{{"json":1}}; execlog_token={TOKEN}',
    ):
        response = await get_sessions(server, headers={"Cookie": header})
        assert response.status_code == 200, (header, response.text)
    bad = await get_sessions(server, headers={"Cookie": "odd name=1; execlog_token=nope"})
    assert_error_envelope(bad, 401, "token")


async def test_token_is_required_on_websocket_handshakes(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(auth_token=TOKEN)
    assert await refused_handshake_status(unknown_stream(server)) == 403
    assert await refused_handshake_status(unknown_stream(server, token="nope")) == 403
    for kwargs, params in (
        ({}, {"token": TOKEN}),
        ({"additional_headers": {"Authorization": f"Bearer {TOKEN}"}}, {}),
        ({"additional_headers": {"Cookie": f"execlog_token={TOKEN}"}}, {}),
    ):
        result = await open_stream(unknown_stream(server, **params), **kwargs)
        # Accepted: past the guard, the stream itself answers (unknown process).
        assert (result.close_code, result.close_reason) == (4404, "execution_process_not_found")


# --- Origin -----------------------------------------------------------------------------------


async def test_foreign_origin_is_refused_on_websocket_handshakes(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(allowed_origins="http://localhost:5173")
    port = server_port(server)
    for origin in (EVIL, f"http://evil.example:{port}", f"http://127.0.0.1:{port + 1}", "null"):
        status = await refused_handshake_status(unknown_stream(server), origin=origin)
        assert status == 403, origin
    for origin in (f"http://127.0.0.1:{port}", "http://localhost:5173"):
        result = await open_stream(unknown_stream(server), origin=origin)
        assert result.close_code == 4404, origin
    # No Origin at all (not a browser): allowed.
    assert (await open_stream(unknown_stream(server))).close_code == 4404


async def test_foreign_origin_is_refused_on_state_changing_requests(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(allowed_origins="http://localhost:5173")
    port = server_port(server)
    for origin in (EVIL, "http://[::1", "null", "127.0.0.1", f"ftp://127.0.0.1:{port}"):
        refused = await post_session(server, headers={"Origin": origin})
        assert_error_envelope(refused, 403, "origin")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        pid = uuid.uuid4()
        for method in ("PUT", "PATCH", "DELETE"):
            response = await client.request(
                method, f"/api/sessions/{pid}", headers={"Origin": EVIL}
            )
            assert_error_envelope(response, 403, "origin")
        stop = await client.post(f"/api/execution-processes/{pid}/stop", headers={"Origin": "null"})
        assert_error_envelope(stop, 403, "origin")
    listed = await get_sessions(server)
    assert listed.status_code == 200 and listed.json()["data"] == []  # nothing was created

    for origin in (f"http://127.0.0.1:{port}", "http://localhost:5173"):
        created = await post_session(server, headers={"Origin": origin})
        assert created.status_code == 201, (origin, created.text)
    assert len((await get_sessions(server)).json()["data"]) == 2


async def test_reads_with_a_foreign_origin_are_served_without_cors_headers(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    response = await get_sessions(server, headers={"Origin": EVIL})
    assert response.status_code == 200 and response.json()["data"] == []
    # Served, but no CORS header: the foreign page's script cannot read the answer.
    assert not any(name.startswith("access-control-") for name in response.headers)


# --- Host (DNS rebinding) ---------------------------------------------------------------------


async def test_foreign_host_is_refused_without_a_token(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    port = server_port(server)
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        response = await get_sessions(server, headers={"Host": host})
        assert_error_envelope(response, 403, "host")
    # Unparsable ones are refused too, not answered with a 500.
    for host in ("[::1", f"[::1:{port}", ""):
        response = await get_sessions(server, headers={"Host": host})
        assert_error_envelope(response, 403, "host")
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
        assert (await get_sessions(server, headers={"Host": host})).status_code == 200, host

    # A WebSocket handshake naming a rebound host (and that host's own origin): refused.
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    rebound = f"ws://evil.example:{port}/api/execution-processes/{uuid.uuid4()}/raw-logs/v2/ws"
    status = await refused_handshake_status(
        rebound, sock=sock, origin=f"http://evil.example:{port}"
    )
    assert status == 403


async def test_with_a_token_the_token_guards_any_host(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(auth_token=TOKEN)
    port = server_port(server)
    host = {"Host": f"evil.example:{port}"}
    assert_error_envelope(await get_sessions(server, headers=host), 401, "token")
    authorized = await get_sessions(server, headers={**host, "Authorization": f"Bearer {TOKEN}"})
    assert authorized.status_code == 200


# --- listening beyond loopback ----------------------------------------------------------------


def clean_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLOG_")}
    env["EXECLOG_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env.update(variables)
    return env


async def test_serve_no_auth_refuses_a_public_host(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "execlog",
        "serve",
        "--no-auth",
        env=clean_env(tmp_path, EXECLOG_HOST="0.0.0.0", EXECLOG_PORT="0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode not in (0, None)
    message = stderr.decode()
    assert "--no-auth" in message and "0.0.0.0" in message
    assert b"listening" not in stdout


@pytest.mark.timeout(120)  # seconds alone; up to ~50 s measured on a loaded machine
async def test_serve_listens_on_loopback_with_the_generated_token(tmp_path: Path) -> None:
    """The URL line, then the UI's URL carrying the token; the token is required, and the
    browser trades ``?token=`` for an HttpOnly cookie."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "execlog",
        "serve",
        env=clean_env(tmp_path, EXECLOG_PORT="0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line.startswith("execlog listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        ui_line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        ui_url = ui_line.split()[-1]
        assert ui_url.startswith(f"{url}/?token=")
        token = ui_url.split("=", 1)[1]
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while True:  # the URL is printed before start-up completes
                try:
                    response = await client.get("/api/sessions")
                    break
                except httpx.ConnectError:
                    assert loop.time() < deadline, "server never answered"
                    await asyncio.sleep(0.05)
            assert_error_envelope(response, 401, "token")
            traded = await client.get("/api/sessions", params={"token": token})
            assert traded.status_code == 200
            set_cookie = traded.headers["set-cookie"]
            assert set_cookie.startswith(f"execlog_token={token};")
            assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
            # httpx kept the cookie: the next request needs nothing else.
            assert (await client.get("/api/sessions")).status_code == 200
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.communicate(), 60)


async def test_an_empty_credential_never_matches(live_server: Callable[..., LiveServer]) -> None:
    """The DNS-rebinding-shaped request of issue 10: foreign Host, matching Origin, empty
    cookie (and an empty ?token=)."""
    server = live_server(auth_token=TOKEN)
    port = server_port(server)
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    for extra, params in (
        ({"Cookie": "execlog_token="}, {}),
        ({}, {"token": ""}),
    ):
        response = await post_session(server, headers={**rebound, **extra}, params=params)
        assert_error_envelope(response, 401, "token")
