"""Request guard for a server that starts processes (treat it like a shell):

- with a token (``EXECLOG_AUTH_TOKEN``, or the one generated when it is unset: execlog.auth),
  every request needs it (``Authorization: Bearer``, the ``token`` query parameter, or the
  ``execlog_token`` cookie - browsers cannot set headers on WebSockets or EventSource); an empty
  credential never matches. A valid ``?token=`` is traded for that cookie (HttpOnly,
  SameSite=Strict), so the web UI can drop it from the address bar; a page load without a valid
  token gets an HTML page that says how to get in, API calls a 401 envelope;
- WebSocket handshakes and state-changing requests with a foreign ``Origin`` are refused with
  403 (cross-site WebSocket hijacking, CSRF);
- without a token (``serve --no-auth``), the ``Host`` header must name a loopback or configured
  host, so a DNS rebinding page cannot pose as same-origin.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Final
from urllib.parse import SplitResult, parse_qs, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from execlog.api.envelope import error_response
from execlog.api.webui import is_page_path, render_sign_in_page
from execlog.config import MIN_TOKEN_LENGTH, Settings, is_loopback_host

__all__ = ["SecurityMiddleware"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_COOKIE = "execlog_token"
# A month: the generated token lives in the user data dir across restarts; a changed token
# simply makes the browser show the sign-in page again.
TOKEN_COOKIE_MAX_AGE_SECONDS: Final = 30 * 24 * 3600


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self._app = app
        self._token = settings.auth_token
        if self._token is not None and len(self._token) < MIN_TOKEN_LENGTH:
            # Settings validation refuses these; a guard built around it must not widen it.
            raise ValueError(f"a token needs at least {MIN_TOKEN_LENGTH} characters")
        self._extra_origins = settings.extra_origins
        self._extra_hosts = frozenset(
            _hostname(_split_url(origin)) for origin in settings.extra_origins
        ) | {settings.host}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self._check(scope, headers)
        if problem is None:
            if scope["type"] == "http" and self._needs_cookie(scope, headers):
                send = self._setting_cookie(scope, send)
            await self._app(scope, receive, send)
            return
        status, message = problem
        if scope["type"] == "websocket":
            # Closing before accept makes the server answer the handshake with HTTP 403.
            await receive()
            await send({"type": "websocket.close", "code": 4403 if status == 403 else 4401})
            return
        if status == 401 and scope["method"] in ("GET", "HEAD") and is_page_path(scope["path"]):
            # A person at a browser: say how to get in rather than show a JSON envelope.
            page = render_sign_in_page(wrong_token=bool(_query_tokens(scope)))
            await page(scope, receive, send)
            return
        response = error_response(status, message)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="execlog"'  # RFC 9110 11.6.1
        await response(scope, receive, send)

    def _needs_cookie(self, scope: Scope, headers: dict[str, str]) -> bool:
        """A valid ``?token=`` and no valid cookie yet: trade the one for the other."""
        if self._token is None:
            return False
        return any(self._is_token(t) for t in _query_tokens(scope)) and not any(
            self._is_token(t) for t in _cookie_tokens(headers)
        )

    def _setting_cookie(self, scope: Scope, send: Send) -> Send:
        assert self._token is not None
        cookie: SimpleCookie = SimpleCookie()
        cookie[TOKEN_COOKIE] = self._token  # quoted by SimpleCookie if it needs quoting
        morsel = cookie[TOKEN_COOKIE]
        morsel["path"] = "/"
        morsel["httponly"] = True
        morsel["samesite"] = "Strict"
        morsel["max-age"] = TOKEN_COOKIE_MAX_AGE_SECONDS
        if scope.get("scheme") == "https":
            morsel["secure"] = True
        value = morsel.OutputString()

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", value)
            await send(message)

        return send_with_cookie

    def _check(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host_header = headers.get("host", "")
        if self._token is None and not self._host_allowed(host_header):
            return 403, f"host {host_header!r} is not allowed"
        if self._token is not None and not self._token_matches(scope, headers):
            return 401, "missing or wrong token (EXECLOG_AUTH_TOKEN)"
        origin = headers.get("origin")
        state_changing = scope["type"] == "websocket" or scope.get("method") not in _SAFE_METHODS
        if origin is not None and state_changing and not self._origin_allowed(origin, host_header):
            return 403, f"origin {origin!r} is not allowed"
        return None

    def _host_allowed(self, host_header: str) -> bool:
        hostname = _hostname(_split_url(f"//{host_header}"))
        if not hostname:
            return False
        return is_loopback_host(hostname) or hostname in self._extra_hosts

    def _origin_allowed(self, origin: str, host_header: str) -> bool:
        if origin in self._extra_origins:
            return True
        parts = _split_url(origin)
        return (
            parts is not None and parts.scheme in ("http", "https") and parts.netloc == host_header
        )

    def _token_matches(self, scope: Scope, headers: dict[str, str]) -> bool:
        candidates: list[str] = []
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            candidates.append(authorization[7:].strip())
        candidates.extend(_query_tokens(scope))
        candidates.extend(_cookie_tokens(headers))
        return any(self._is_token(c) for c in candidates)

    def _is_token(self, candidate: str) -> bool:
        assert self._token is not None
        # An empty credential is no credential, whatever the token (issue 10).
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self._token.encode())


def _query_tokens(scope: Scope) -> list[str]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])


def _cookie_tokens(headers: dict[str, str]) -> list[str]:
    if "cookie" not in headers:
        return []
    # Browser-style lenient parsing: cookies are shared by every port of the host, and
    # SimpleCookie drops the whole header when another local app's cookie is not RFC-clean
    # (e.g. "expires=...", a space in a name), which would hide the token.
    cookie = cookie_parser(headers["cookie"]).get(TOKEN_COOKIE)
    return [] if cookie is None else [cookie]


def _split_url(url: str) -> SplitResult | None:
    """None for what urlsplit rejects (e.g. an unclosed IPv6 bracket in a Host or Origin
    header): such a request is refused, not answered with a 500."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _hostname(parts: SplitResult | None) -> str:
    return "" if parts is None else parts.hostname or ""
