"""A stand-in issuer behind ``httpx.MockTransport``: discovery, JWKS and the revocation
feed, each under the test's control (what is published, when heartbeats come, when a
connection drops), with every request it received kept for assertions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from twofold.clock import SystemClock
from twofold.jose.jwt import AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import JoseKey

ISSUER = "https://issuer.test"
AUDIENCE = "orders"
HORIZON = 330.0
#: The stand-in's heartbeat interval: shorter than Twofold's, to keep tests quick.
HEARTBEAT = 0.2


@dataclass
class FakeIssuer:
    signing: JoseKey = field(default_factory=lambda: JoseKey.generate("ES256", kid="k1"))
    published: list[dict[str, Any]] = field(default_factory=list)
    discovery: dict[str, Any] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    heartbeating: bool = True
    feed_status: int = 200
    jwks_status: int = 200
    #: Basic credentials the feed demands, if any.
    feed_authorization: str | None = None
    _wake: asyncio.Event | None = None
    _drop: bool = False

    def __post_init__(self) -> None:
        jwk = self.signing.public_jwk()
        assert jwk is not None
        self.published = [jwk]
        self.discovery = {
            "issuer": ISSUER,
            "jwks_uri": f"{ISSUER}/.well-known/jwks.json",
            "twofold_revocation_feed_endpoint": f"{ISSUER}/oauth/revocations",
        }

    # -- what the test does -------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    def token(self, key: JoseKey | None = None, **options: Any) -> str:
        """A valid access token for ``AUDIENCE`` signed with ``key`` (default: ours)."""
        key = key or self.signing
        policy = TokenPolicy(issuer=ISSUER, audience=AUDIENCE, lifetime=300)
        codec = AccessTokenCodec(KeyRing([key], signing_kid=key.kid), policy, SystemClock())
        options.setdefault("sid", "fam-1")
        token, _ = codec.issue(options.pop("sub", "user-1"), options.pop("roles", []), **options)
        return token

    def publish(self, *keys: JoseKey) -> None:
        self.published = [jwk for key in keys if (jwk := key.public_jwk()) is not None]

    def revoke(self, kind: str, subject: str, at: float | None = None) -> int:
        at = time.time() if at is None else at
        seq = len(self.entries) + 1
        self.entries.append(
            {"seq": seq, "kind": kind, "subject": subject, "at": at, "expires_at": at + HORIZON}
        )
        self._poke()
        return seq

    def drop_connections(self) -> None:
        """End every open feed connection (as a restart or a network cut would)."""
        self._drop = True
        self._poke()

    def feed_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/oauth/revocations"]

    def jwks_reads(self) -> int:
        return sum(1 for r in self.requests if r.url.path == "/.well-known/jwks.json")

    # -- what it serves -----------------------------------------------------------------

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if path == "/.well-known/jwks.json":
            if self.jwks_status != 200:
                return httpx.Response(self.jwks_status, json={"error": "store_unavailable"})
            return httpx.Response(200, json={"keys": self.published})
        if path == "/oauth/revocations":
            if self.feed_authorization is not None and (
                request.headers.get("authorization") != self.feed_authorization
            ):
                return httpx.Response(401, json={"error": "invalid_client"})
            if self.feed_status != 200:
                return httpx.Response(self.feed_status, json={"error": "store_unavailable"})
            after = int(request.headers.get("last-event-id", "0"))
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=self._stream(after)
            )
        return httpx.Response(404)

    async def _stream(self, after: int) -> AsyncIterator[bytes]:
        self._wake = asyncio.Event()
        self._drop = False
        sent = max([after, *(e["seq"] for e in self.entries)])
        yield _event("hello", {"seq": sent, "horizon": HORIZON, "heartbeat": HEARTBEAT})
        for entry in self.entries:
            if entry["seq"] > after:
                yield _event("revocation", entry, entry["seq"])
        yield _event("heartbeat", {"seq": sent, "at": time.time()}, sent)
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), HEARTBEAT)
            except TimeoutError:
                if self.heartbeating:
                    yield _event("heartbeat", {"seq": sent, "at": time.time()}, sent)
                continue
            if self._drop:
                return
            self._wake.clear()
            for entry in self.entries:
                if entry["seq"] > sent:
                    yield _event("revocation", entry, entry["seq"])
                    sent = entry["seq"]


def _event(name: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = "" if event_id is None else f"id: {event_id}\n"
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n".encode()
