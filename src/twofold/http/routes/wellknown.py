"""Public documents: the JSON Web Key Set and the discovery metadata."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from twofold.http.deps import web
from twofold.http.schemas import DiscoveryOut, JwksOut

router = APIRouter(prefix="/.well-known", tags=["discovery"])


@router.get("/jwks.json", response_model=JwksOut)
async def jwks(request: Request) -> Response:
    """Public verification keys only; HMAC secrets and private parts never appear."""
    keys = web(request).runtime.keyring.jwks()
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})


@router.get("/openid-configuration", response_model=DiscoveryOut)
async def openid_configuration(request: Request) -> Response:
    """Discovery metadata (RFC 8414 fields). Twofold is not an OpenID provider (no ID
    tokens, no authorization endpoint): its own login and refresh endpoints are named in
    `twofold_*` fields, where standard OAuth clients will not mistake them for a token
    endpoint."""
    return _discovery(request)


@router.get("/oauth-authorization-server", response_model=DiscoveryOut)
async def oauth_authorization_server(request: Request) -> Response:
    """The same metadata at the RFC 8414 location."""
    return _discovery(request)


def _discovery(request: Request) -> Response:
    runtime = web(request).runtime
    base = runtime.settings.effective_public_url
    auth_methods = ["client_secret_basic", "client_secret_post"]
    algs: list[str] = sorted({key.alg for key in runtime.keyring})
    document = DiscoveryOut(
        issuer=runtime.settings.effective_issuer,
        jwks_uri=f"{base}/.well-known/jwks.json",
        introspection_endpoint=f"{base}/oauth/introspect",
        introspection_endpoint_auth_methods_supported=auth_methods,
        revocation_endpoint=f"{base}/oauth/revoke",
        revocation_endpoint_auth_methods_supported=auth_methods,
        response_types_supported=[],
        access_token_signing_alg_values_supported=algs,
        twofold_login_endpoint=f"{base}/auth/login",
        twofold_refresh_endpoint=f"{base}/auth/refresh",
        twofold_sessions_endpoint=f"{base}/auth/sessions",
        twofold_revocation_feed_endpoint=f"{base}/oauth/revocations",
    )
    return JSONResponse(document.model_dump(), headers={"Cache-Control": "public, max-age=300"})
