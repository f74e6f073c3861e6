"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from twofold.http.deps import web
from twofold.http.schemas import ErrorOut, HealthOut

router = APIRouter(tags=["operations"])

_OK = b'{"status":"ok"}'


# Health checkers often send HEAD: answered like GET, left out of the OpenAPI document.
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", response_model=HealthOut)
async def healthz() -> Response:
    """The process answers."""
    return Response(_OK, media_type="application/json")


@router.head("/readyz", include_in_schema=False)
@router.get("/readyz", response_model=HealthOut, responses={503: {"model": ErrorOut}})
async def readyz(request: Request) -> Response:
    """Every store answers and the revocation stream is followed; otherwise 503
    (StoreUnavailable is mapped by the error layer), so a load balancer sends no traffic
    to an instance that would only answer 503."""
    await web(request).runtime.check_ready()
    return JSONResponse({"status": "ready"})
