"""The load generator (src/twofold/bench/load.py), wrk and the built-in client alike, against
a tiny HTTP/1.1 server on a real loopback socket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.services import require
from twofold.bench.load import Tool, parse_wrk, run_load, wrk_path

TOOLS = ["wrk", "builtin"]


@dataclass
class TinyServer:
    """Answers ``/ok`` 200, ``/missing`` 404, ``/chunked`` 200 in chunks, ``/close`` 200
    then closes; keeps what it was sent."""

    port: int = 0
    requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head[:-4].split(b"\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(b":") for line in lines)
                }
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                self.requests.append((request_line, headers, body))
                path = request_line.split(b" ")[1]
                if path == b"/chunked":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                    )
                elif path == b"/close":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    )
                    await writer.drain()
                    break
                elif path == b"/missing":
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def paths(self) -> set[bytes]:
        return {line.split(b" ")[1] for line, _, _ in self.requests}


@pytest.fixture
def servers() -> Iterator[list[TinyServer]]:
    """Two tiny servers on their own event loop in a thread."""
    loop = asyncio.new_event_loop()
    tiny = [TinyServer(), TinyServer()]
    started = threading.Event()
    listening: list[asyncio.Server] = []

    async def serve() -> None:
        for server in tiny:
            listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
            server.port = listener.sockets[0].getsockname()[1]
            listening.append(listener)
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(timeout=10)
    started.wait(10)
    yield tiny

    async def shut() -> None:
        for listener in listening:
            listener.close()

    asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def url(server: TinyServer, path: str = "/ok") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


@pytest.fixture(params=TOOLS)
def tool(request: pytest.FixtureRequest) -> Tool:
    chosen: Tool = request.param
    if chosen == "wrk":
        require("wrk", wrk_path())
    return chosen


def test_counts_requests_and_latency(servers: list[TinyServer], tool: Tool) -> None:
    """Answered requests are counted, none as errors, with ordered latency percentiles."""
    result = run_load([url(servers[0])], duration=1, connections=4, tool=tool)
    assert result.tool == tool
    assert result.requests > 0
    assert result.errors == 0
    assert result.rps > 0
    assert 0 < result.latency_ms.p50 <= result.latency_ms.p99 <= result.latency_ms.max
    # The server saw at least what the client counted (wrk may end with some in flight).
    assert len(servers[0].requests) >= result.requests


def test_non_2xx_answers_are_errors(servers: list[TinyServer], tool: Tool) -> None:
    """A 404 counts as an error for both tools."""
    result = run_load([url(servers[0], "/missing")], duration=1, connections=2, tool=tool)
    assert result.requests > 0
    assert result.errors == result.requests


def test_headers_method_and_body_are_sent(servers: list[TinyServer], tool: Tool) -> None:
    """Every request carries the given headers, method and body."""
    body = '{"name": "é"}'.encode()
    run_load(
        [url(servers[0])],
        headers={"Authorization": "Bearer abc", "Content-Type": "application/json"},
        duration=1,
        connections=2,
        tool=tool,
        method="POST",
        body=body,
    )
    assert servers[0].requests
    for line, headers, sent in servers[0].requests:
        assert line.startswith(b"POST /ok ")
        assert headers[b"authorization"] == b"Bearer abc"
        assert sent == body


def test_several_urls_are_loaded_at_once(servers: list[TinyServer], tool: Tool) -> None:
    """One load over two servers reaches both, and the counts are summed."""
    result = run_load([url(servers[0]), url(servers[1])], duration=1, connections=2, tool=tool)
    assert servers[0].requests
    assert servers[1].requests
    assert len(servers[0].requests) + len(servers[1].requests) >= result.requests


@pytest.mark.parametrize("path", ["/chunked", "/close"], ids=["chunked", "connection-close"])
def test_builtin_reads_chunked_and_closing_answers(servers: list[TinyServer], path: str) -> None:
    """The built-in client reads chunked bodies and reconnects after ``Connection: close``."""
    result = run_load([url(servers[0], path)], duration=0.5, connections=2, tool="builtin")
    assert result.requests > 2
    assert result.errors == 0


def test_builtin_stops_at_the_request_cap(servers: list[TinyServer]) -> None:
    """``max_requests`` bounds the built-in client even with time left."""
    result = run_load(
        [url(servers[0])], duration=30, connections=3, tool="builtin", max_requests=50
    )
    assert result.requests == 50
    assert result.latency_ms.count == 50


def test_refused_connections_are_errors() -> None:
    """Nothing listening: every attempt is a socket error, and the run still ends."""
    from twofold.bench.services import free_port

    result = run_load(
        [f"http://127.0.0.1:{free_port()}/"], duration=0.3, connections=1, tool="builtin"
    )
    assert result.requests == 0
    assert result.errors > 0


@pytest.mark.parametrize(
    "target", ["http://example.com/", "https://127.0.0.1:1/", "http://localhost:80/"]
)
def test_only_plain_http_to_127_0_0_1(target: str) -> None:
    """Load is never pointed anywhere but the loopback address."""
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        run_load([target], duration=1, connections=1, tool="builtin")


WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8000/healthz
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.31ms    1.00ms   1.20s    90.00%
    Req/Sec     2.55k   100.00     2.70k    80.00%
  Latency Distribution
     50%  610.00us
     75%    6.50ms
     90%    7.00ms
     99%   10.00ms
  12700 requests in 5.00s, 2.00MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:   2540.00
Transfer/sec:    400.00KB
"""


def test_parse_wrk_output() -> None:
    """wrk's text report: counts, percentiles in ms from any unit, and every error line."""
    report = parse_wrk(WRK_OUTPUT)
    assert report.requests == 12700
    assert report.seconds == pytest.approx(5.0)
    assert report.p50_ms == pytest.approx(0.61)
    assert report.p99_ms == pytest.approx(10.0)
    assert report.max_ms == pytest.approx(1200.0)
    assert report.errors == 15


def test_parse_wrk_rejects_other_output() -> None:
    """Output that is not a wrk report is an error, not zeros."""
    with pytest.raises(ValueError, match="wrk"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")
