"""Count and time every HTTP request, labelled by the route's path template.

A plain ASGI middleware (no ``BaseHTTPMiddleware``: no extra task or body copy per
request). The router puts the route it matched into the scope (``scope["route"]``); its
template (``/auth/sessions/{handle}``) is the label, never the path the client sent, which
would give one series per session id (unbounded, and ids in the scrape). A request no
route took (a 404, a CORS preflight, a refused body) counts under ``unmatched``.
"""

from __future__ import annotations

from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twofold.metrics import UNMATCHED, Metrics


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            self.metrics.request(
                getattr(scope.get("route"), "path_format", UNMATCHED),
                scope["method"],
                status,
                perf_counter() - started,
            )
