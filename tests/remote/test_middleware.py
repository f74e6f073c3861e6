"""RemoteAuthMiddleware in a Starlette app: the caller in the scope, 401 and 503 answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.remote.conftest import FAST
from tests.remote.issuer import FakeIssuer
from twofold.integrate.context import principal_of
from twofold.remote import RemoteAuthMiddleware, RemoteVerifier


async def whoami(request: Request) -> JSONResponse:
    principal = principal_of(request.scope)
    if principal is None:
        return JSONResponse({"user": None})
    return JSONResponse(
        {
            "user": principal.user_id,
            "mode": principal.mode,
            "roles": list(principal.roles),
            "scopes": list(principal.scopes),
        }
    )


@pytest.fixture
async def app(verifier: RemoteVerifier) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/whoami", whoami)])
    app.add_middleware(RemoteAuthMiddleware, verifier=verifier)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_good_token_leaves_its_principal(
    issuer: FakeIssuer, app: httpx.AsyncClient
) -> None:
    token = issuer.token(sub="u-1", roles=["admin"], scope="read write")
    answer = await app.get("/whoami", headers=bearer(token))
    assert answer.json() == {
        "user": "u-1",
        "mode": "jwt",
        "roles": ["admin"],
        "scopes": ["read", "write"],
    }


async def test_a_token_without_scope_holds_no_scopes_here(
    issuer: FakeIssuer, app: httpx.AsyncClient
) -> None:
    answer = await app.get("/whoami", headers=bearer(issuer.token()))
    assert answer.json()["scopes"] == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dTpw"}],
    ids=["none", "basic"],
)
async def test_no_bearer_token_means_no_caller(
    app: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Whether a route needs a caller is the route's business."""
    answer = await app.get("/whoami", headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"user": None}


@pytest.mark.parametrize(
    "value",
    ["Bearer not.a.token", "Bearer ", "Bearer a b"],
    ids=["garbage", "empty", "two-words"],
)
async def test_a_bad_token_is_a_401(app: httpx.AsyncClient, value: str) -> None:
    answer = await app.get("/whoami", headers={"Authorization": value})
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="twofold", error="invalid_token"')


async def test_a_revoked_token_is_a_401(issuer: FakeIssuer, app: httpx.AsyncClient) -> None:
    token = issuer.token(sid="fam-9")
    assert (await app.get("/whoami", headers=bearer(token))).status_code == 200
    issuer.revoke("family", "fam-9")
    await asyncio.sleep(0.1)
    answer = await app.get("/whoami", headers=bearer(token))
    assert answer.status_code == 401
    assert "revoked" in answer.headers["www-authenticate"]


async def test_a_lost_feed_is_a_503(issuer: FakeIssuer, app: httpx.AsyncClient) -> None:
    """Fail closed (O3): a token is neither accepted nor called bad while the feed is lost."""
    token = issuer.token()
    issuer.heartbeating = False
    await asyncio.sleep(FAST.max_staleness + 0.1)
    answer = await app.get("/whoami", headers=bearer(token))
    assert answer.status_code == 503
    assert answer.json()["error"] == "feed_unavailable"
    assert int(answer.headers["retry-after"]) >= 1
    assert (await app.get("/whoami")).json() == {"user": None}  # no token, no feed needed
