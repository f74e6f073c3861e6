"""Public documents: the JSON Web Key Set."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from twofold.http.deps import web
from twofold.http.schemas import JwksOut

router = APIRouter(prefix="/.well-known", tags=["discovery"])


@router.get("/jwks.json", response_model=JwksOut)
async def jwks(request: Request) -> Response:
    """Public verification keys only; HMAC secrets and private parts never appear."""
    keys = web(request).runtime.keyring.jwks()
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})
