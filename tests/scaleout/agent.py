"""A client of a deployment that can talk to each instance directly or through nginx,
holding credentials the way a browser (session cookie + CSRF token) or an API client
(Bearer token) would."""

from __future__ import annotations

import contextlib
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Literal

import httpx

from .cluster import ADMIN_EMAIL, PASSWORD, Cluster
from .probe import Probe

NGINX: Literal["nginx"] = "nginx"
#: Where a request goes: an instance (by index) or nginx.
Via = int | Literal["nginx"]
Outcome = Literal["accepted", "refused", "error"]


@dataclass(frozen=True)
class Credential:
    """What authenticates a request, and the roles it was issued with."""

    mode: Literal["session", "jwt"]
    headers: Mapping[str, str]
    user_id: str
    roles: tuple[str, ...]
    refresh_token: str | None = None

    def outcome(self, status: int, body: bytes) -> Outcome:
        """What a ``GET /auth/me`` answer says. ``accepted``: as before any revocation
        (200 with the same roles); ``refused``: 401, or 200 with other roles (a session
        after a role change)."""
        if status == 401:
            return "refused"
        if status != 200:
            return "error"
        same = tuple(json.loads(body)["roles"]) == self.roles
        return "accepted" if same else "refused"


def _no_cookie_jar() -> CookieJar:
    # Credentials are sent explicitly; a jar would add cookies of earlier answers.
    return CookieJar(DefaultCookiePolicy(allowed_domains=[]))


class Agent:
    """One keep-alive client per instance and one for nginx (HTTPS, trusting the test
    certificate), plus light connections for polling (:meth:`probe`). Use as
    ``async with Agent.open(cluster) as agent``."""

    def __init__(self, cluster: Cluster, clients: dict[Via, httpx.AsyncClient]) -> None:
        self.cluster = cluster
        self._clients = clients
        self._probes: dict[tuple[Via, int], Probe] = {}
        self._context = ssl.create_default_context(cafile=str(cluster.certificate.cert))
        self.admin: Credential | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, cluster: Cluster) -> AsyncIterator[Agent]:
        clients: dict[Via, httpx.AsyncClient] = {
            i: httpx.AsyncClient(base_url=instance.url, timeout=10, cookies=_no_cookie_jar())
            for i, instance in enumerate(cluster.instances)
        }
        clients[NGINX] = nginx_client(cluster)
        agent = cls(cluster, clients)
        try:
            agent.admin = await agent.login(ADMIN_EMAIL, "session", 0)
            yield agent
        finally:
            for client in clients.values():
                await client.aclose()
            for probe in agent._probes.values():
                await probe.close()

    @property
    def routes(self) -> list[Via]:
        return [*range(len(self.cluster.instances)), NGINX]

    def client(self, via: Via) -> httpx.AsyncClient:
        return self._clients[via]

    async def register(self, via: Via) -> str:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        answer = await self.client(via).post(
            "/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert answer.status_code == 201, answer.text
        return email

    async def login(self, email: str, mode: Literal["session", "jwt"], via: Via) -> Credential:
        answer = await self.client(via).post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": mode}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if mode == "jwt":
            token = body["access_token"]
            me = await self.client(via).get("/auth/me", headers=bearer(token))
            assert me.status_code == 200, me.text
            return Credential(
                "jwt",
                bearer(token),
                me.json()["id"],
                tuple(me.json()["roles"]),
                body["refresh_token"],
            )
        headers = {
            "Cookie": session_cookie(answer),
            "X-CSRF-Token": body["csrf_token"],
            # What a browser on the public origin sends with a state-changing request.
            "Origin": self.cluster.public_url,
        }
        return Credential("session", headers, body["user"]["id"], tuple(body["user"]["roles"]))

    def probe(self, via: Via, lane: int = 0) -> Probe:
        """A connection of its own for polling ``via``; ``lane`` tells apart pollers of one
        route that run at once. Kept open across revocations, so polls find it warm."""
        found = self._probes.get((via, lane))
        if found is None:
            if via == NGINX:
                found = Probe(self.cluster.nginx.port, self._context)
            else:
                found = Probe(self.cluster.instances[via].port)
            self._probes[via, lane] = found
        return found

    async def me(self, credential: Credential, via: Via) -> httpx.Response:
        return await self.client(via).get("/auth/me", headers=credential.headers)

    async def logout(self, credential: Credential, via: Via) -> httpx.Response:
        return await self.client(via).post("/auth/logout", headers=credential.headers)

    async def as_admin(
        self, method: str, path: str, via: Via, body: object | None = None
    ) -> httpx.Response:
        assert self.admin is not None
        return await self.client(via).request(method, path, headers=self.admin.headers, json=body)


def nginx_client(cluster: Cluster, local_address: str | None = None) -> httpx.AsyncClient:
    """A client of nginx over HTTPS that trusts the test certificate, connecting from
    ``local_address`` if given (another loopback address, as another machine would)."""
    context = ssl.create_default_context(cafile=str(cluster.certificate.cert))
    return httpx.AsyncClient(
        base_url=cluster.public_url,
        timeout=10,
        cookies=_no_cookie_jar(),
        transport=httpx.AsyncHTTPTransport(verify=context, local_address=local_address),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session_cookie(answer: httpx.Response) -> str:
    """``name=value`` of the session cookie a login set (``__Host-`` over HTTPS)."""
    for header in answer.headers.get_list("set-cookie"):
        pair = header.split(";", 1)[0]
        if pair.split("=", 1)[0] in ("__Host-twofold_session", "twofold_session"):
            return pair
    raise AssertionError("the login set no session cookie")


def now() -> float:
    """The one clock of the measurements."""
    return time.perf_counter()
