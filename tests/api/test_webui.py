"""The web UI's server side on a real server: the SPA at `/` with its deep links and cache
headers, the page shown when the build is missing, `GET /api/config`, and the browser's way in
(`?token=` traded for the HttpOnly cookie; a sign-in page instead of a JSON 401)."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from execlog.api.webui import ASSET_CACHE_CONTROL, DEFAULT_STATIC_DIR, accepts_gzip
from tests.api.helpers import get_once_listening, script_body, serve_process
from tests.api.test_security import clean_env
from tests.conftest import LiveServer

pytestmark = pytest.mark.asyncio

TOKEN = "a-token-of-sixteen-chars"
INDEX_HTML = (
    '<!doctype html><html><body><div id="root"></div>'
    '<script type="module" src="/assets/index-3f2a9c.js"></script></body></html>'
)
ASSET_JS = "console.log('execlog ui');\n"


@pytest.fixture
def ui_build(tmp_path: Path) -> Path:
    """A stand-in for the Vite build: index.html, one hashed asset, one root file."""
    build = tmp_path / "static"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_text(INDEX_HTML)
    (build / "assets" / "index-3f2a9c.js").write_text(ASSET_JS)
    (build / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.txt").write_text("not for the web")
    (build / "assets" / "escape.txt").symlink_to(tmp_path / "secret.txt")
    return build


def client_for(server: LiveServer, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=30, **kwargs)  # type: ignore[arg-type]


# --- the app and its deep links -----------------------------------------------------------------


async def test_app_is_served_at_root_and_at_deep_links(
    live_server: Callable[..., LiveServer], ui_build: Path
) -> None:
    server = live_server(static_dir=ui_build)
    some_id = uuid.uuid4()
    async with client_for(server) as client:
        for path in ("/", f"/sessions/{some_id}", f"/processes/{some_id}?line=42", "/nowhere/x"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.text == INDEX_HTML, path
            assert response.headers["content-type"].startswith("text/html"), path
            assert response.headers["cache-control"] == "no-cache", path


async def test_hashed_assets_are_cached_for_a_year(
    live_server: Callable[..., LiveServer], ui_build: Path
) -> None:
    server = live_server(static_dir=ui_build)
    async with client_for(server) as client:
        asset = await client.get("/assets/index-3f2a9c.js")
        favicon = await client.get("/favicon.svg")
        missing = await client.get("/assets/index-000000.js")
    assert asset.status_code == 200 and asset.text == ASSET_JS
    assert asset.headers["cache-control"] == ASSET_CACHE_CONTROL
    assert "javascript" in asset.headers["content-type"]
    # Files outside assets/ have no hash in their name: revalidated like index.html.
    assert favicon.status_code == 200 and favicon.headers["cache-control"] == "no-cache"
    # A missing asset is a 404, not index.html (which the browser would reject as a script).
    assert missing.status_code == 404
    assert missing.json()["success"] is False and "index-000000.js" in missing.json()["message"]


async def test_files_outside_the_build_are_never_served(
    live_server: Callable[..., LiveServer], ui_build: Path
) -> None:
    server = live_server(static_dir=ui_build)
    async with client_for(server) as client:
        through_link = await client.get("/assets/escape.txt")
        # Encoded dots survive the client's own path normalisation.
        dotted = await client.get("/assets/%2e%2e/%2e%2e/secret.txt")
    assert "not for the web" not in through_link.text and through_link.status_code == 404
    assert "not for the web" not in dotted.text


async def test_api_paths_keep_their_json_envelopes(
    live_server: Callable[..., LiveServer], ui_build: Path
) -> None:
    server = live_server(static_dir=ui_build)
    async with client_for(server) as client:
        unknown_get = await client.get("/api/no-such-thing")
        unknown_post = await client.post("/api/no-such-thing", json={})
        wrong_method = await client.delete("/api/sessions")
        unknown_process = await client.get(f"/api/execution-processes/{uuid.uuid4()}")
    for response in (unknown_get, unknown_post, unknown_process):
        assert response.status_code == 404
        body = response.json()
        assert body["success"] is False and body["data"] is None and body["message"]
    assert wrong_method.status_code == 405
    assert wrong_method.json()["success"] is False


async def test_missing_build_answers_with_a_page_that_says_how_to_build(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(static_dir=tmp_path / "no-build-here")
    async with client_for(server) as client:
        page = await client.get("/sessions/" + str(uuid.uuid4()))
        api = await client.get("/api/sessions")
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "make run" in page.text and "no-build-here" in page.text
    assert api.status_code == 200 and api.json()["success"] is True


# --- GET /api/config ------------------------------------------------------------------------------


async def test_config_hands_the_page_its_settings(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(ui_raw_buffer_lines=1234, raw_page_size=300)
    async with client_for(server) as client:
        response = await client.get("/api/config")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["raw_buffer_lines"] == 1234
    assert data["raw_page_size"] == 300 and data["normalized_page_size"] == 20
    assert data["auth_required"] is False
    assert isinstance(data["version"], str)


# --- the browser's way in -------------------------------------------------------------------------


def cookie_header(response: httpx.Response) -> str:
    [header] = response.headers.get_list("set-cookie")
    return header


async def test_token_in_the_url_is_traded_for_an_http_only_cookie(
    live_server: Callable[..., LiveServer], ui_build: Path
) -> None:
    server = live_server(static_dir=ui_build, auth_token=TOKEN)
    async with client_for(server) as browser:
        page = await browser.get(f"/processes/{uuid.uuid4()}", params={"token": TOKEN})
        assert page.status_code == 200 and page.text == INDEX_HTML
        header = cookie_header(page)
        assert header.startswith(f"execlog_token={TOKEN};")
        attributes = {part.strip().lower() for part in header.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attributes
        assert not any(a.startswith("secure") for a in attributes)  # plain http on loopback
        # The page drops ?token= from the address bar; the cookie carries on alone.
        assert browser.cookies.get("execlog_token") == TOKEN
        sessions = await browser.get("/api/sessions")
        config = await browser.get("/api/config")
        created = await browser.post("/api/sessions", json=script_body("print('via cookie')"))
        again = await browser.get("/", params={"token": TOKEN})
    assert sessions.status_code == 200
    assert config.status_code == 200 and config.json()["data"]["auth_required"] is True
    assert created.status_code == 201
    assert "set-cookie" not in again.headers  # the cookie is already valid
    ws_url = (
        server.ws_url + f"/api/execution-processes/{created.json()['data']['processes'][0]['id']}"
    )
    async with connect(
        ws_url + "/raw-logs/v2/ws?after=-1",
        additional_headers={"Cookie": f"execlog_token={TOKEN}"},
        open_timeout=30,
    ) as ws:
        first = await asyncio.wait_for(ws.recv(), 30)
    assert "via cookie" in str(first)


async def test_other_ways_in_set_no_cookie(
    live_server: Callable[..., LiveServer], ui_build: Path
) -> None:
    server = live_server(static_dir=ui_build, auth_token=TOKEN)
    async with client_for(server) as client:
        bearer = await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
        wrong = await client.get("/api/sessions", params={"token": "not-the-token-at-all"})
    assert bearer.status_code == 200 and "set-cookie" not in bearer.headers
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers


async def test_a_browser_without_a_valid_token_gets_a_sign_in_page(
    live_server: Callable[..., LiveServer], ui_build: Path
) -> None:
    server = live_server(static_dir=ui_build, auth_token=TOKEN)
    async with client_for(server) as client:
        bare = await client.get(f"/sessions/{uuid.uuid4()}")
        wrong = await client.get("/", params={"token": "not-the-token-at-all"})
        stale_cookie = await client.get(
            "/", headers={"Cookie": "execlog_token=an-older-token-value"}
        )
        api = await client.get("/api/sessions")
    for page in (bare, wrong, stale_cookie):
        assert page.status_code == 401
        assert page.headers["content-type"].startswith("text/html")
        assert "execlog serve" in page.text and "?token=" in page.text
        assert INDEX_HTML not in page.text and TOKEN not in page.text
    assert "not this server's token" in wrong.text
    # API calls keep the envelope a program can read.
    assert api.status_code == 401 and api.json()["success"] is False


@pytest.mark.timeout(120)  # seconds alone; up to ~50 s measured on a loaded machine
async def test_serve_prints_the_web_ui_url_with_the_token(tmp_path: Path) -> None:
    env = clean_env(tmp_path, EXECLOG_PORT="0", EXECLOG_AUTH_TOKEN="tok/en+with=chars&1")
    async with serve_process(env) as process:
        assert process.stdout is not None
        listening = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split()[-1]
        ui_line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
        assert ui_line == f"web UI: {listening}/?token=tok%2Fen%2Bwith%3Dchars%261"
        response = await get_once_listening(ui_line.split()[-1])
    # The token in the printed URL is accepted: the app (or the missing-build page), and the
    # cookie that carries the token on.
    assert response.status_code in (200, 503)
    assert "execlog_token=" in response.headers["set-cookie"]


# --- precompressed text files -----------------------------------------------------------------


async def test_precompressed_files_go_to_browsers_that_accept_gzip(
    live_server: Callable[..., LiveServer], ui_build: Path
) -> None:
    """The build writes a ``.gz`` sibling of each text file (frontend/vite.config.ts); a
    browser that accepts gzip gets it as ``Content-Encoding: gzip``, any other the file."""
    script = "console.log('execlog ui');\n" * 200
    (ui_build / "assets" / "index-3f2a9c.js").write_text(script)
    (ui_build / "assets" / "index-3f2a9c.js.gz").write_bytes(gzip.compress(script.encode()))
    (ui_build / "index.html.gz").write_bytes(gzip.compress(INDEX_HTML.encode()))
    server = live_server(static_dir=ui_build)

    async def fetch(path: str, accept_encoding: str) -> tuple[httpx.Response, bytes]:
        headers = {"Accept-Encoding": accept_encoding}
        async with client.stream("GET", path, headers=headers) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        return response, raw

    async with client_for(server) as client:
        zipped, raw = await fetch("/assets/index-3f2a9c.js", "gzip, deflate, br")
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["vary"] == "Accept-Encoding"
        assert "javascript" in zipped.headers["content-type"]
        assert zipped.headers["cache-control"] == ASSET_CACHE_CONTROL
        assert gzip.decompress(raw).decode() == script and len(raw) < len(script) // 10
        for refused in ("identity", "gzip;q=0, br", ""):
            plain, raw = await fetch("/assets/index-3f2a9c.js", refused)
            assert "content-encoding" not in plain.headers, refused
            assert plain.headers["vary"] == "Accept-Encoding", refused
            assert raw.decode() == script, refused
        page, raw = await fetch(f"/sessions/{uuid.uuid4()}", "gzip")
        assert page.headers["content-encoding"] == "gzip"
        assert page.headers["content-type"].startswith("text/html")
        assert gzip.decompress(raw).decode() == INDEX_HTML
        # A file without a sibling is sent as it is, with no Vary.
        favicon, raw = await fetch("/favicon.svg", "gzip")
        assert "content-encoding" not in favicon.headers and "vary" not in favicon.headers


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("br, gzip;q=0.5", True),
        ("*", True),
        ("x-gzip", True),
        ("GZIP ; Q=1", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("deflate, br", False),
        ("identity", False),
        ("", False),
        ("gzip;q=oops", False),
    ],
)
async def test_accept_encoding_is_read_as_rfc_9110_says(header: str, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


async def test_the_real_build_has_a_gzip_copy_of_each_text_file() -> None:
    if not (DEFAULT_STATIC_DIR / "index.html").is_file():
        pytest.skip("the web UI is not built: run `make test` (it runs the Vite build first)")
    texts = [
        path
        for path in DEFAULT_STATIC_DIR.rglob("*")
        if path.suffix in (".js", ".css", ".html") and path.stat().st_size >= 1024
    ]
    assert any(path.name == "index.html" for path in texts)
    for path in texts:
        copy = path.with_name(path.name + ".gz")
        assert gzip.decompress(copy.read_bytes()) == path.read_bytes(), path
