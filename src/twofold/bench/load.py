"""HTTP load against servers on 127.0.0.1: throughput and request latency.

wrk (``apt-get install wrk``) when it is installed: written in C, it leaves the machine's
cores to the server under test. Otherwise a built-in asyncio client on raw sockets
(HTTP/1.1, keep-alive), which gives the same figures as long as the server is the
bottleneck, at the price of a share of the CPU. Several URLs (several instances of one
deployment) are loaded at once and the figures summed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from twofold.bench.stats import Summary, summarize

__all__ = ["LoadResult", "run_load", "wrk_path"]

Tool = Literal["auto", "wrk", "builtin"]

#: The built-in client stops after this many requests even if time is left.
MAX_REQUESTS = 2_000_000
#: Seconds a request may take before the built-in client counts it an error (wrk's default).
REQUEST_TIMEOUT = 2.0


@dataclass(frozen=True)
class LoadResult:
    """What a load run measured, summed over its URLs."""

    tool: str  # "wrk" or "builtin"
    requests: int
    seconds: float
    rps: float
    latency_ms: Summary  # p50/p99/max of request latency in ms
    errors: int  # non-2xx + socket errors


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_load(
    urls: Sequence[str],
    *,
    headers: Mapping[str, str] | None = None,
    duration: float,
    connections: int,
    tool: Tool = "auto",
    method: str = "GET",
    body: bytes | None = None,
    max_requests: int = MAX_REQUESTS,
) -> LoadResult:
    """Load every URL at once for ``duration`` seconds over ``connections`` keep-alive
    connections in all (spread evenly over the URLs, at least one each). ``max_requests``
    bounds the built-in client only (wrk has no such bound). Only 127.0.0.1 is allowed:
    this is a tool for one's own servers."""
    if not urls:
        raise ValueError("no URLs to load")
    if duration <= 0 or connections < 1:
        raise ValueError("duration and connections must be positive")
    for url in urls:
        if urlsplit(url).hostname != "127.0.0.1" or urlsplit(url).scheme != "http":
            raise ValueError(f"load goes to http://127.0.0.1 only, not {url}")
    use_wrk = tool == "wrk" or (tool == "auto" and wrk_path() is not None)
    if use_wrk:
        return _run_wrk(urls, dict(headers or {}), duration, connections, method, body)
    return _run_sync(
        _run_builtin(urls, dict(headers or {}), duration, connections, method, body, max_requests)
    )


def _share(connections: int, count: int) -> list[int]:
    base, extra = divmod(max(connections, count), count)
    return [base + (1 if index < extra else 0) for index in range(count)]


# --- wrk -----------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class WrkReport:
    """The figures of one wrk run's ``--latency`` output."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int


def parse_wrk(output: str) -> WrkReport:
    """Read wrk's text report; a missing line means zero (wrk omits error lines)."""

    def latency(pattern: str) -> float:
        found = re.search(pattern + r"\s+" + _DURATION, output)
        if found is None:
            raise ValueError(f"no {pattern!r} in wrk's output:\n{output}")
        return float(found[1]) * _UNITS[found[2]]

    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output)
    if total is None:
        raise ValueError(f"no request count in wrk's output:\n{output}")
    errors = 0
    sockets = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets is not None:
        errors += sum(int(group) for group in sockets.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx is not None:
        errors += int(non_2xx[1])
    max_line = re.search(r"Latency\s+\S+\s+\S+\s+" + _DURATION, output)
    if max_line is None:
        raise ValueError(f"no latency line in wrk's output:\n{output}")
    return WrkReport(
        requests=int(total[1]),
        seconds=float(total[2]) * _UNITS[total[3]] / 1000,
        p50_ms=latency(r"\b50%"),
        p99_ms=latency(r"\b99%"),
        max_ms=float(max_line[1]) * _UNITS[max_line[2]],
        errors=errors,
    )


def _lua_string(data: bytes) -> str:
    """A Lua string literal of ``data``, every byte escaped (``\\ddd``)."""
    return '"' + "".join(f"\\{byte:03d}" for byte in data) + '"'


def _run_wrk(
    urls: Sequence[str],
    headers: dict[str, str],
    duration: float,
    connections: int,
    method: str,
    body: bytes | None,
) -> LoadResult:
    wrk = wrk_path()
    if wrk is None:
        raise FileNotFoundError("wrk is not installed (apt-get install wrk)")
    seconds = max(1, math.ceil(duration))  # wrk takes whole seconds
    with tempfile.TemporaryDirectory(prefix="twofold-wrk-") as scratch:
        script: list[str] = []
        if method != "GET" or body is not None:
            lua = Path(scratch) / "request.lua"
            lua.write_text(
                f"wrk.method = {_lua_string(method.encode())}\n"
                + (f"wrk.body = {_lua_string(body)}\n" if body else "")
            )
            script = ["-s", str(lua)]
        header_args = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
        procs = [
            subprocess.Popen(  # noqa: S603 - our own argument list
                [
                    wrk,
                    "-t1",
                    f"-c{share}",
                    f"-d{seconds}s",
                    "--latency",
                    *header_args,
                    *script,
                    url,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for url, share in zip(urls, _share(connections, len(urls)), strict=True)
        ]
        outputs = [proc.communicate(timeout=seconds + 30)[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed ({proc.returncode}):\n{output}")
    reports = [parse_wrk(output) for output in outputs]
    return _combine_wrk(reports)


def _combine_wrk(reports: Sequence[WrkReport]) -> LoadResult:
    """Sum several wrk runs. Their percentiles cannot be merged exactly: the p50 is the
    request-weighted mean of theirs, the p99 the worst of theirs (an upper bound)."""
    requests = sum(report.requests for report in reports)
    seconds = max(report.seconds for report in reports)
    weight = max(requests, 1)
    return LoadResult(
        tool="wrk",
        requests=requests,
        seconds=seconds,
        rps=sum(report.requests / report.seconds for report in reports if report.seconds > 0),
        latency_ms=Summary(
            count=requests,
            p50=sum(report.p50_ms * report.requests for report in reports) / weight,
            p99=max(report.p99_ms for report in reports),
            max=max(report.max_ms for report in reports),
        ),
        errors=sum(report.errors for report in reports),
    )


# --- the built-in client ----------------------------------------------------------------


def _run_sync(work: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    """Run ``work`` to completion, in a thread of its own if this thread already runs an
    event loop (a caller inside ``asyncio.run``)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@dataclass
class _Tally:
    latencies_ms: list[float]
    errors: int = 0
    requests: int = 0


def _request_bytes(
    url: str, headers: Mapping[str, str], method: str, body: bytes | None
) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    port = parts.port or 80
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return "127.0.0.1", port, head + (body or b"")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    chunked = False
    keep_alive = True
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            keep_alive = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, keep_alive


async def _connection(
    host: str, port: int, request: bytes, deadline: float, budget: list[int], tally: _Tally
) -> None:
    """One keep-alive connection sending requests back to back until the deadline or the
    shared request budget runs out; a broken connection is counted and opened again."""
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            began = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    assert reader is not None
                    writer.write(request)
                    status, keep_alive = await _read_response(reader)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                # A socket error or a timeout: no response, as wrk counts them.
                tally.errors += 1
                if writer is not None:
                    writer.close()
                writer = None
                continue
            tally.latencies_ms.append((time.perf_counter() - began) * 1000)
            tally.requests += 1
            if not 200 <= status < 400:
                tally.errors += 1
            if not keep_alive:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


async def _run_builtin(
    urls: Sequence[str],
    headers: Mapping[str, str],
    duration: float,
    connections: int,
    method: str,
    body: bytes | None,
    max_requests: int,
) -> LoadResult:
    tally = _Tally(latencies_ms=[])
    budget = [max_requests]
    began = time.perf_counter()
    deadline = began + duration
    async with asyncio.TaskGroup() as group:
        for url, share in zip(urls, _share(connections, len(urls)), strict=True):
            host, port, request = _request_bytes(url, headers, method, body)
            for _ in range(share):
                group.create_task(_connection(host, port, request, deadline, budget, tally))
    seconds = time.perf_counter() - began
    latency = (
        summarize(tally.latencies_ms)
        if tally.latencies_ms
        else Summary(count=0, p50=math.nan, p99=math.nan, max=math.nan)
    )
    return LoadResult(
        tool="builtin",
        requests=tally.requests,
        seconds=seconds,
        rps=tally.requests / seconds,
        latency_ms=latency,
        errors=tally.errors,
    )
