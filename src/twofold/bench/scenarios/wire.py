"""Bytes on the wire per authenticated request, counted on the socket itself.

The request is written by hand on a plain TCP socket, as a minimal API client would send
it (``Host``, ``User-Agent``, ``Accept`` and the credential), so every byte counted is a
byte that was sent; the answer is read from the socket up to the end of its body. The
credential header is counted alone as well, since the rest of a request is the same in
both modes.

A JWT's size depends on its claims; :func:`claim_growth` signs tokens with more and more
roles to show by how much, with the same key types the server uses.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from urllib.parse import urlsplit

from twofold.bench.results import ClaimGrowth, WireBytes
from twofold.clock import SystemClock
from twofold.jose.jwt import AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import Algorithm, JoseKey

__all__ = ["ROLE_COUNTS", "claim_growth", "measure_wire"]

#: Numbers of roles for :func:`claim_growth`.
ROLE_COUNTS = (1, 5, 20)
_TIMEOUT = 10.0


def _request(host: str, path: str, credential: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "User-Agent: twofold-bench\r\n"
        "Accept: application/json\r\n"
        f"{credential}"
        "Connection: close\r\n"
        "\r\n"
    ).encode("latin-1")


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status code and every byte of one answer (headers, then Content-Length bytes
    of body; the server closes after it)."""
    received = bytearray()
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed before the end of the headers")
        received += chunk
    head, _, _ = bytes(received).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    total = len(head) + 4 + length
    while len(received) < total:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return status, bytes(received)


def measure_wire(
    configuration: str, base_url: str, header: str, value: str, *, path: str = "/auth/me"
) -> WireBytes:
    """Send one ``GET path`` with ``header: value`` and count both directions.
    ``ConnectionError`` unless the server answers 200."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    credential = f"{header}: {value}\r\n"
    request = _request(f"{host}:{port}", path, credential)
    with socket.create_connection((host, port), timeout=_TIMEOUT) as sock:
        sock.sendall(request)
        status, answer = _read_answer(sock)
    if status != 200:
        raise ConnectionError(f"GET {path} answered {status}, not 200")
    return WireBytes(
        configuration=configuration,
        request=len(request),
        credential=len(credential.encode("latin-1")),
        response=len(answer),
        header=header,
    )


def cookie_header(cookies: Mapping[str, str]) -> str:
    """The ``Cookie`` value a browser would send: every cookie the login set."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def claim_growth(
    algorithm: Algorithm,
    *,
    issuer: str = "http://127.0.0.1:8000",
    roles: tuple[int, ...] = ROLE_COUNTS,
) -> ClaimGrowth:
    """Token lengths with ``roles`` role names each, signed with a fresh key of
    ``algorithm`` and the server's claim set (iss, sub, aud, exp, iat, nbf, jti, roles,
    client_id, sid, email)."""
    key = JoseKey.generate(algorithm)  # the key id a server's key gets, so its length
    codec = AccessTokenCodec(
        KeyRing([key], signing_kid=key.kid),
        TokenPolicy(issuer=issuer, audience="twofold"),
        SystemClock(),
    )
    sizes = []
    for count in roles:
        names = [f"role-{n:02d}" for n in range(count)]
        token, _ = codec.issue(
            str(uuid.UUID(int=1)), names, extra={"email": "someone@example.com"}, sid="f" * 22
        )
        sizes.append((count, len(token)))
    return ClaimGrowth(algorithm=algorithm, sizes=tuple(sizes))
