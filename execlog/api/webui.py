"""The web UI's server side: the built single-page app (``execlog/static/``, the Vite build of
``frontend/``) served at ``/`` with an SPA fallback for its deep links, the settings the page
needs (``GET /api/config``), and the pages shown instead of the app when the build is missing
or the browser has no valid token.

Caching: Vite names every file under ``assets/`` after a hash of its content, so those are
cached for a year as ``immutable``; ``index.html`` names the current hashes, so it is
revalidated on every load (``no-cache``) and a new build is picked up at once.
"""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path
from typing import Final
from urllib.parse import quote

from fastapi import APIRouter, FastAPI
from starlette.datastructures import Headers
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketClose

from execlog import __version__
from execlog.api.dependencies import ServicesDep
from execlog.api.envelope import success_response
from execlog.errors import NotFoundError

__all__ = [
    "ASSET_CACHE_CONTROL",
    "DEFAULT_STATIC_DIR",
    "PAGE_CACHE_CONTROL",
    "WebUi",
    "accepts_gzip",
    "config_router",
    "install_web_ui",
    "is_page_path",
    "render_sign_in_page",
    "web_ui_url",
]

DEFAULT_STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
ASSET_CACHE_CONTROL: Final = "public, max-age=31536000, immutable"
PAGE_CACHE_CONTROL: Final = "no-cache"
# Paths that belong to the API (JSON envelopes, never the app's HTML) or to FastAPI's docs.
_API_PREFIXES: Final = ("/api/", "/openapi.json")
_API_EXACT: Final = frozenset({"/api"})


def is_page_path(path: str) -> bool:
    """Whether a GET of ``path`` is a page load of the app (or of the API docs), as opposed to
    an API call: the former get HTML answers, the latter JSON envelopes."""
    return path not in _API_EXACT and not path.startswith(_API_PREFIXES)


def web_ui_url(server_url: str, token: str | None) -> str:
    """The address to open: with the token in it when there is one (the page trades it for the
    cookie and drops it from the address bar)."""
    return f"{server_url}/" if token is None else f"{server_url}/?token={quote(token, safe='')}"


class WebUi:
    """The build directory of the app: ``index.html`` plus hashed ``assets/``."""

    def __init__(self, directory: Path = DEFAULT_STATIC_DIR) -> None:
        self.directory = directory.resolve()

    @property
    def index_file(self) -> Path:
        return self.directory / "index.html"

    def respond(self, path: str, *, gzip: bool = False) -> Response:
        """The file ``path`` names inside the build, else (not under ``assets/``) the app's
        ``index.html`` so that the client-side router handles the deep link. With ``gzip`` (the
        browser accepts it), the build's precompressed copy of a text file when there is one."""
        if not self.index_file.is_file():
            return _missing_build_page(self.directory)
        file = self._find_file(path)
        if file is not None and file != self.index_file:
            hashed = file.parent.name == "assets" and file.parent.parent == self.directory
            cache = ASSET_CACHE_CONTROL if hashed else PAGE_CACHE_CONTROL
            return _file_response(file, cache, gzip=gzip)
        if path.startswith("assets/"):
            # A script or style that is not in this build: answering with HTML would make the
            # browser report a MIME error instead of the missing file.
            raise NotFoundError(f"no such file in the web UI build: /{path}")
        return _file_response(self.index_file, PAGE_CACHE_CONTROL, gzip=gzip)

    def _find_file(self, path: str) -> Path | None:
        if not path or "\x00" in path:
            return None
        candidate = (self.directory / path).resolve()
        # resolve() follows "..": anything that lands outside the build is not ours to serve.
        if not candidate.is_relative_to(self.directory) or not candidate.is_file():
            return None
        return candidate


def _file_response(file: Path, cache_control: str, *, gzip: bool) -> Response:
    """``file``, or its ``.gz`` sibling (written by the build for text files of 1 KB or more)
    sent as ``Content-Encoding: gzip`` when the browser accepts it. Either way ``Vary:
    Accept-Encoding`` when a sibling exists, so a shared cache keeps the two apart."""
    media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    compressed = file.with_name(file.name + ".gz")
    if not compressed.is_file():
        return FileResponse(file, media_type=media_type, headers={"Cache-Control": cache_control})
    headers = {"Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if not gzip:
        return FileResponse(file, media_type=media_type, headers=headers)
    headers["Content-Encoding"] = "gzip"
    return FileResponse(compressed, media_type=media_type, headers=headers)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header admits gzip (RFC 9110: a ``q`` of 0 refuses)."""
    for item in accept_encoding.split(","):
        name, _, parameters = item.partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        key, _, value = parameters.strip().partition("=")
        if key.strip().lower() != "q":
            return True
        try:
            return float(value) > 0
        except ValueError:
            return False
    return False


# --- pages shown instead of the app -----------------------------------------------------------

_PAGE_TEMPLATE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>execlog: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto;
       padding: 0 1rem; line-height: 1.5; color: #1d1d1f; background: #fff; }}
code {{ background: #f0f0f2; padding: 0.1rem 0.3rem; border-radius: 3px; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""


def _page(status: int, title: str, body: str) -> HTMLResponse:
    text = _PAGE_TEMPLATE.format(title=html.escape(title), body=body)
    return HTMLResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


def _missing_build_page(directory: Path) -> HTMLResponse:
    # 503, not 500: the server works (the API answers), only the app's files are absent.
    return _page(
        503,
        "The web UI is not built",
        "<p>This execlog server has no build of the web UI in "
        f"<code>{html.escape(str(directory))}</code>.</p>"
        "<p>Run <code>make run</code> in the execlog checkout: it builds the UI "
        "(<code>npm ci</code> and the Vite build of <code>frontend/</code>) and starts the "
        'server. The HTTP API works without it: see <a href="/docs">/docs</a>.</p>',
    )


def render_sign_in_page(*, wrong_token: bool) -> HTMLResponse:
    """The 401 page a browser gets instead of the app when it has no valid token."""
    first = (
        "<p>The token in this link is not this server's token.</p>"
        if wrong_token
        else "<p>This execlog server needs its access token.</p>"
    )
    return _page(
        401,
        "Sign in to execlog",
        first + "<p>Open the web UI's address that <code>execlog serve</code> printed when it "
        "started: it ends in <code>/?token=…</code>. The page keeps the token in a cookie, so "
        "later visits need no token.</p>"
        "<p>The token is <code>EXECLOG_AUTH_TOKEN</code> when that is set, otherwise the one "
        "execlog generated at its first start into the <code>token</code> file of its user "
        "data directory (<code>~/.local/share/execlog/token</code> by default). You can also "
        "open <code>http://HOST:PORT/?token=YOUR_TOKEN</code> yourself.</p>",
    )


# --- routes -------------------------------------------------------------------------------------

config_router = APIRouter(prefix="/api", tags=["web UI"])


@config_router.get("/config")
async def get_config(services: ServicesDep) -> Response:
    """What the web UI needs to know: `raw_buffer_lines` (EXECLOG_UI_RAW_BUFFER_LINES), the
    default page sizes, whether a token is required, and the server's version."""
    settings = services.settings
    return success_response(
        {
            "raw_buffer_lines": settings.ui_raw_buffer_lines,
            "raw_page_size": settings.raw_page_size,
            "normalized_page_size": settings.normalized_page_size,
            "auth_required": settings.auth_token is not None,
            "version": __version__,
        }
    )


def install_web_ui(app: FastAPI, directory: Path = DEFAULT_STATIC_DIR) -> None:
    """Serve the app for every GET that no route claims. As the router's default handler (not a
    catch-all route) it leaves 405 for a known path with another method, and API paths keep
    their 404 envelopes."""
    web_ui = WebUi(directory)
    app.state.web_ui = web_ui

    async def serve_unrouted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await WebSocketClose()(scope, receive, send)
            return
        path: str = scope["path"]
        if scope["method"] not in ("GET", "HEAD") or not is_page_path(path):
            raise NotFoundError(f"no route {scope['method']} {path}")
        accept_encoding = Headers(scope=scope).get("accept-encoding", "")
        response = web_ui.respond(path.removeprefix("/"), gzip=accepts_gzip(accept_encoding))
        await response(scope, receive, send)

    app.router.default = serve_unrouted
