"""The body limit middleware, as ASGI logic: limits, draining and early disconnects."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from twofold.http.body_limit import BodyLimitMiddleware


def scope(length: int | None = None) -> Scope:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "method": "POST", "path": "/", "headers": headers}


def receiving(*messages: Message) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


class Recorder:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.calls.append(message["body"])


async def collect(app: BodyLimitMiddleware, receive: Receive, length: int | None) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope(length), receive, send)
    return sent


async def test_a_client_that_leaves_mid_body_never_reaches_the_app() -> None:
    """A truncated body is dropped, not replayed to a route as if it were whole."""
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=100)
    receive = receiving(
        {"type": "http.request", "body": b'{"email": "a', "more_body": True},
        {"type": "http.disconnect"},
    )
    assert await collect(app, receive, 40) == []
    assert inner.calls == []


async def test_a_body_within_the_limit_is_replayed_whole() -> None:
    """Chunks are joined and handed on once."""
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=100)
    receive = receiving(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    )
    await collect(app, receive, None)
    assert inner.calls == [b"abcd"]


async def test_a_streamed_body_over_the_limit_gets_413() -> None:
    """Without a Content-Length, the limit still holds while reading."""
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=3)
    receive = receiving(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    )
    sent = await collect(app, receive, None)
    assert sent[0]["status"] == 413
    assert inner.calls == []
