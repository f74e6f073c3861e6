"""Security headers on every response (SECURITY.md B3, S9)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No script at all: the pages work without JavaScript. Styles come from our own origin.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"

_COMMON = {
    "x-content-type-options": "nosniff",
    # Not "no-referrer": with it, browsers send "Origin: null" on same-origin form posts,
    # which the CSRF origin check must refuse. "same-origin" leaks nothing to other sites.
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
# What a JSON answer carries; also used where an answer bypasses the middleware.
API_HEADERS = {**_COMMON, "content-security-policy": API_CSP, "cache-control": "no-store"}
_COMMON_BYTES = [(name.encode(), value.encode()) for name, value in _COMMON.items()]


class SecurityHeadersMiddleware:
    """Adds the headers that every response carries.

    ``Cache-Control: no-store`` is the default so that nothing authenticated is ever cached
    (S9); a route that serves public material (JWKS, CSS) sets its own.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(_COMMON_BYTES)
                is_html = any(
                    name.lower() == b"content-type" and value.startswith(b"text/html")
                    for name, value in headers
                )
                headers.append(
                    (b"content-security-policy", (PAGE_CSP if is_html else API_CSP).encode())
                )
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                if self.hsts:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
