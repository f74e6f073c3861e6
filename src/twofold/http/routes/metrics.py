"""``GET /metrics``: the Prometheus scrape, for the operator's scraper only.

An auth server's metrics tell an outsider how many people log in, fail, get throttled
or are refused, and when: not for the internet. So by default only a *direct loopback*
client may scrape (a Prometheus or an agent on the same host): the client address is
loopback (as seen after the ``trusted_proxies`` rewrite) and the request carries no
forwarding header, because a reverse proxy on the same host also connects from loopback
and would otherwise hand every internet client the loopback address. A request over a
Unix socket has no client address and is refused for the same reason.

To scrape from elsewhere, set ``metrics_token``: then a request needs
``Authorization: Bearer <token>`` (compared in constant time) and its address does not
matter. ``metrics_enabled = false`` turns the endpoint (404) and the measuring off.

Each process exposes its own figures; with several instances, scrape each one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from fastapi import APIRouter, Request
from prometheus_client.exposition import choose_encoder
from pydantic import SecretStr
from starlette.responses import Response

from twofold.errors import Forbidden, InvalidToken, NotAuthenticated, NotFound
from twofold.http.deps import web
from twofold.http.errors import REALM, error_response
from twofold.http.schemas import ErrorOut
from twofold.http.transport import bearer_token

router = APIRouter(tags=["operations"])

#: Headers proxies add (any ``x-forwarded-*`` too); a request with one did not come
#: straight from a scraper on this host, whatever its address.
FORWARDING_HEADERS = frozenset(
    {
        "forwarded",
        "via",
        "x-real-ip",
        "x-original-forwarded-for",
        "true-client-ip",
        "cf-connecting-ip",
        "x-client-ip",
    }
)


def _forwarded(request: Request) -> bool:
    return any(
        name in FORWARDING_HEADERS or name.startswith("x-forwarded-")
        for name in request.headers.keys()  # noqa: SIM118 - a multi-dict: its names
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format (OpenMetrics when asked for by Accept).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        401: {
            "model": ErrorOut,
            "description": "metrics_token is set and the request did not carry it.",
        },
        403: {"model": ErrorOut, "description": "Not a direct loopback client."},
        404: {"model": ErrorOut, "description": "metrics_enabled is false."},
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process. Without `metrics_token`: direct loopback
    clients only; with it: `Authorization: Bearer <metrics_token>` from anywhere."""
    runtime = web(request).runtime
    if not runtime.settings.metrics_enabled:
        raise NotFound()
    refusal = access_refusal(request, runtime.settings.metrics_token)
    if refusal is not None:
        return refusal
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(runtime.metrics.registry), headers={"content-type": content_type})


def access_refusal(request: Request, token: SecretStr | None) -> Response | None:
    """The JSON error for a scrape that may not see the metrics, or None."""
    if token is not None:
        if not _token_matches(request, token):
            # Answered here rather than by raising: the error layer would also clear a
            # session cookie that came along, and this says nothing about the session.
            return error_response(
                401,
                NotAuthenticated.code,
                "The metrics need Authorization: Bearer with the metrics token.",
                {"WWW-Authenticate": REALM},
            )
        return None
    if not is_direct_loopback(request):
        return error_response(
            403,
            Forbidden.code,
            "The metrics are served to direct loopback clients only; set metrics_token "
            "to scrape from elsewhere.",
        )
    return None


def is_direct_loopback(request: Request) -> bool:
    """From a loopback address, with no sign of a proxy in between."""
    if request.client is None or _forwarded(request):
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback


def _token_matches(request: Request, token: SecretStr) -> bool:
    try:
        presented = bearer_token(request)
    except InvalidToken:  # malformed or oversized: not the token
        return False
    if presented is None:
        return False
    # Digests of both: equal length, so the comparison reveals neither content nor length.
    return hmac.compare_digest(
        hashlib.sha256(presented.encode()).digest(),
        hashlib.sha256(token.get_secret_value().encode()).digest(),
    )
