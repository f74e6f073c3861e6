"""Cross-origin access for the configured origins only (SECURITY.md B2).

Hand-written rather than Starlette's ``CORSMiddleware``, which sends
``Access-Control-Allow-Credentials`` to every origin (refused ones included) and answers a
refused preflight in plain text. Here an origin that is not on the list learns nothing: no
CORS header at all, and a refused preflight is a JSON 403 like every other error. ``*`` and
``null`` can never be on the list (``config.check_origin``), so credentials are only ever
shared with a named origin.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twofold.http.security_headers import API_HEADERS

METHODS = ("GET", "POST", "PUT", "DELETE")
# What the API reads besides the CORS-safelisted headers.
REQUEST_HEADERS = frozenset({"authorization", "content-type", "x-csrf-token", "x-request-id"})
# What a page may read from an answer besides the safelisted ones.
EXPOSED = "Retry-After, WWW-Authenticate, X-Request-ID"
MAX_AGE = 600
_VARY = "Origin"


class CorsMiddleware:
    def __init__(self, app: ASGIApp, *, origins: Collection[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, headers)(scope, receive, send)
            return
        allowed = origin is not None and origin in self.origins

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                answer.add_vary_header(_VARY)
                if allowed:
                    assert origin is not None
                    answer["Access-Control-Allow-Origin"] = origin
                    answer["Access-Control-Allow-Credentials"] = "true"
                    answer["Access-Control-Expose-Headers"] = EXPOSED
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _preflight(self, origin: str | None, headers: Headers) -> Response:
        method = headers["access-control-request-method"]
        requested = {
            name.strip().lower()
            for name in headers.get("access-control-request-headers", "").split(",")
            if name.strip()
        }
        vary = {"Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
        if origin is None or origin not in self.origins:
            problem = "This origin may not call the API."
        elif method not in METHODS:
            problem = "This method is not allowed cross-origin."
        elif not requested <= REQUEST_HEADERS:
            problem = "A requested header is not allowed cross-origin."
        else:
            return Response(
                status_code=204,
                headers={
                    **vary,
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Credentials": "true",
                    "Access-Control-Allow-Methods": ", ".join(METHODS),
                    "Access-Control-Allow-Headers": ", ".join(sorted(REQUEST_HEADERS)),
                    "Access-Control-Max-Age": str(MAX_AGE),
                },
            )
        return JSONResponse(
            {"error": "cors_refused", "detail": problem},
            status_code=403,
            headers={**vary, **API_HEADERS},
        )
