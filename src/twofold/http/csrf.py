"""CSRF proof for cookie-authenticated state changes (SECURITY.md B1).

Two checks, both required: a token bound to the session (an HMAC of the session id, so it
needs no storage and dies with the session) compared in constant time, and an Origin or
Referer that names this server. Before login, forms are bound the same way to a random
value in a separate cookie (login CSRF).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from twofold.config import normalize_origin
from twofold.errors import CsrfFailed

HEADER = "x-csrf-token"
FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfGuard:
    def __init__(self, key: bytes, trusted_origins: frozenset[str]) -> None:
        self._key = key
        self._trusted = trusted_origins

    def token_for(self, binding: str, *, purpose: str = "session") -> str:
        mac = hmac.digest(self._key, f"{purpose}:{binding}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def check(
        self,
        request: HTTPConnection,
        binding: str,
        presented: str | None,
        *,
        purpose: str = "session",
    ) -> None:
        """Raise ``CsrfFailed`` unless the origin is ours and ``presented`` matches."""
        self.check_origin(request)
        expected = self.token_for(binding, purpose=purpose)
        if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise CsrfFailed()

    def check_origin(self, request: HTTPConnection) -> None:
        """Origin (or, lacking it, Referer) must be this server's public origin or a
        trusted one; the request's own Host header is not trusted (a client chooses it).

        A request with neither comes from a non-browser client: the token still applies.
        """
        origin = request.headers.get("origin")
        if origin is None:
            referer = request.headers.get("referer")
            if referer is None:
                return
            origin = _referer_origin(referer)
        if origin is None or normalize_origin(origin) not in self._trusted:
            raise CsrfFailed("The request comes from another origin.")


def _referer_origin(referer: str) -> str | None:
    try:
        parts = urlsplit(referer)
    except ValueError:  # an unbalanced "[" in the host, say
        return None
    if not parts.scheme or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def own_origins(public_url: str) -> frozenset[str]:
    """The origins of this server's own pages: the public URL's, and when that names this
    machine (development), its other loopback names at the same scheme and port, so that
    http://localhost:8000 works as well as http://127.0.0.1:8000."""
    parts = urlsplit(public_url)
    own = normalize_origin(f"{parts.scheme}://{parts.netloc}")
    host = (parts.hostname or "").lower()
    if host not in ("localhost", "127.0.0.1", "::1"):
        return frozenset({own})
    port = f":{parts.port}" if parts.port else ""
    aliases = {normalize_origin(f"{parts.scheme}://{name}{port}") for name in LOOPBACK_NAMES}
    return frozenset({own} | aliases)
