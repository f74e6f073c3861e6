"""Refuse oversized or slow request bodies before any route sees them."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Outcome = Literal["ok", "too_large", "gone"]

# Past this, a body is refused without being read, and the connection closed.
DRAIN_LIMIT = 1024 * 1024


class BodyLimitMiddleware:
    """Reads the whole body (at most ``max_bytes``, within ``timeout`` seconds) and replays it.

    Authentication bodies are small; reading them whole keeps the limit exact and lets a
    slow-drip client be cut off with a 408 instead of holding a worker.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > DRAIN_LIMIT:
            await _refuse(send, 413, "body_too_large", "The request body is too large.")
            return
        try:
            async with asyncio.timeout(self.timeout):
                body, outcome = await self._read(receive)
        except TimeoutError:
            await _refuse(send, 408, "request_timeout", "The request body came too slowly.")
            return
        if outcome == "gone":
            return  # the client left mid-body: a partial body must never reach a route
        if outcome == "too_large":
            await _refuse(send, 413, "body_too_large", "The request body is too large.")
            return

        await self.app(scope, replaying(body, receive), send)

    async def _read(self, receive: Receive) -> tuple[bytes, Outcome]:
        """The body and how reading it ended. A body over the limit is still read (and
        dropped) up to ``DRAIN_LIMIT``, so that the client reads our 413 instead of a reset."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", "gone"
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > DRAIN_LIMIT:
                return b"", "too_large"
            if size <= self.max_bytes:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), "too_large" if size > self.max_bytes else "ok"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, status: int, code: str, detail: str) -> None:
    body = json.dumps({"error": code, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` (read whole beforehand) as one message,
    then passes on what comes after it (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
