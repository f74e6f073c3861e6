"""A minimal HTTP/1.1 keep-alive GET client for polling.

httpx spends about 2 ms of the client's CPU per request; polling three instances and nginx
with it on a two-core machine measured mostly httpx. This costs a tenth of that, so the
polls time the servers. GET only, one request at a time on one connection, bodies with
Content-Length or chunked; a connection the server closed is reopened once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Probe:
    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        self._port = port
        self._context = context
        self._host = f"127.0.0.1:{port}"
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, headers: Mapping[str, str]) -> Answer:
        head = f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        request = (head + "\r\n").encode("latin-1")
        try:
            return await self._exchange(request)
        except (ConnectionError, asyncio.IncompleteReadError):
            # Closed while idle (a keep-alive timeout): a GET may be sent again.
            await self.close()
            return await self._exchange(request)

    async def _exchange(self, request: bytes) -> Answer:
        if self._stream is None:
            self._stream = await asyncio.open_connection("127.0.0.1", self._port, ssl=self._context)
        reader, writer = self._stream
        writer.write(request)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _chunks(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Answer(status, headers, body)

    async def close(self) -> None:
        if self._stream is not None:
            writer = self._stream[1]
            self._stream = None
            writer.close()
            # The peer may have gone first; the connection is gone either way.
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)
