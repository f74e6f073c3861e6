"""Tokens for other applications: the exchange at /auth/token and the user's scoped
tokens at /auth/scoped-tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from twofold.errors import Forbidden
from twofold.http.deps import authenticate, client_address, require_json, web
from twofold.http.render import scoped_token_out
from twofold.http.routes.auth import ERRORS
from twofold.http.schemas import (
    ExchangeIn,
    ExchangeOut,
    NewScopedTokenOut,
    ScopedTokenIn,
    ScopedTokensOut,
)
from twofold.http.transport import bearer_token
from twofold.scoped_tokens import is_scoped_token

router = APIRouter(prefix="/auth", tags=["tokens"])
JSON_BODY = [Depends(require_json)]


@router.post(
    "/token",
    response_model=ExchangeOut,
    responses=ERRORS,
    dependencies=JSON_BODY,
    description="A short-lived access token for another application: `aud` is the "
    "requested audience (one of `token_audiences`), `scope` a subset of the caller's. "
    "The credential is the session cookie (with CSRF proof) or "
    "`Authorization: Bearer tfs_…` (a scoped token). 400 `invalid_target` for an audience "
    "that is not configured, 400 `invalid_scope` for scopes the caller does not hold.",
)
async def exchange(body: ExchangeIn, request: Request) -> Response:
    exchange = web(request).runtime.exchange
    credential = bearer_token(request)
    if credential is not None and is_scoped_token(credential):
        issued = await exchange.for_scoped_token(
            credential, audience=body.audience, scope=body.scope
        )
    else:
        caller = await authenticate(request)
        if caller.principal.session is None:
            raise Forbidden("Exchanging needs a session or a scoped token, not an access token.")
        issued = await exchange.for_session(
            caller.principal, audience=body.audience, scope=body.scope
        )
    out = ExchangeOut(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        scope=" ".join(issued.scopes),
        audience=issued.claims.aud,
    )
    return JSONResponse(out.model_dump())


@router.get("/scoped-tokens", response_model=ScopedTokensOut, responses=ERRORS)
async def list_scoped_tokens(request: Request) -> Response:
    """The caller's unexpired scoped tokens, newest first; secrets are never shown again."""
    caller = await authenticate(request)
    records = await web(request).runtime.authority.scoped_tokens.list_for_user(
        caller.principal.user_id
    )
    return JSONResponse(ScopedTokensOut(tokens=[scoped_token_out(r) for r in records]).model_dump())


@router.post(
    "/scoped-tokens",
    status_code=201,
    response_model=NewScopedTokenOut,
    responses=ERRORS,
    dependencies=JSON_BODY,
)
async def create_scoped_token(body: ScopedTokenIn, request: Request) -> Response:
    """Make a scoped token for another application; `token` is in this answer only."""
    caller = await authenticate(request)
    new = await web(request).runtime.authority.scoped_tokens.create(
        caller.principal.user_id,
        name=body.name,
        scopes=body.scopes,
        expires_in=body.expires_in,
        client_address=client_address(request),
    )
    out = NewScopedTokenOut(**scoped_token_out(new.record).model_dump(), token=new.token)
    return JSONResponse(out.model_dump(), status_code=201)


@router.delete("/scoped-tokens/{token_id}", status_code=204, responses=ERRORS)
async def revoke_scoped_token(token_id: str, request: Request) -> Response:
    """Revoke one of the caller's scoped tokens and every access token exchanged from it
    (404 if it is not theirs)."""
    caller = await authenticate(request)
    await web(request).runtime.authority.scoped_tokens.revoke(
        caller.principal.user_id, token_id, client_address=client_address(request)
    )
    return Response(status_code=204)
