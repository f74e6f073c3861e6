"""What each request was: one structured log line (method, path — never the query string —
status, time) and the request metrics (route template, method, status, duration).

One plain ASGI middleware does both, so a request's answer is wrapped and timed once. The
metrics label is the matched route's template (``scope["route"]``: the router puts it
there), never the path the client sent, which would give one series per session id
(unbounded, and ids in the scrape); a request no route took (a 404, a CORS preflight, a
refused body) counts under ``unmatched``.
"""

from __future__ import annotations

import logging
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twofold.metrics import UNMATCHED, Metrics

log = logging.getLogger("twofold.access")


class AccessLogMiddleware:
    """Logs each request at INFO and records it in ``metrics`` (when given)."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        logging_on = log.isEnabledFor(logging.INFO)
        if scope["type"] != "http" or not (logging_on or self.metrics is not None):
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
            elapsed = perf_counter() - started
            if self.metrics is not None:
                route = getattr(scope.get("route"), "path_format", UNMATCHED)
                self.metrics.request(route, scope["method"], status, elapsed)
            if logging_on:
                client = scope.get("client")
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                        "client": client[0] if client else None,
                    },
                )
