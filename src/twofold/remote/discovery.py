"""Where the issuer publishes its keys and its revocation feed, read from its discovery
document and checked against the one thing configured: the issuer URL.

The document is trusted only as far as it agrees with the configuration: its ``issuer``
must equal the configured issuer exactly (RFC 8414 section 3.3, so a document served for
another issuer is never taken), and the JWKS and the feed must live on the issuer's own
origin, so that a tampered or misdirected document cannot send this resource server to
someone else's keys. Redirects are not followed, for the same reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from twofold.errors import ConfigurationError
from twofold.remote.errors import FeedUnavailable

__all__ = ["DISCOVERY_PATH", "IssuerMetadata", "discover", "fetch_json", "same_origin"]

DISCOVERY_PATH = "/.well-known/openid-configuration"
#: The largest discovery or JWKS document read; a bigger one is refused, not buffered.
MAX_DOCUMENT_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class IssuerMetadata:
    """The parts of the issuer's discovery document a resource server uses."""

    issuer: str
    jwks_uri: str
    revocation_feed_endpoint: str


async def discover(client: httpx.AsyncClient, issuer: str) -> IssuerMetadata:
    """Read and check ``{issuer}/.well-known/openid-configuration``.

    ``ConfigurationError`` when the document contradicts the configuration (another
    issuer, endpoints elsewhere, no feed); ``FeedUnavailable`` when it cannot be read now.
    """
    document = await fetch_json(client, issuer.rstrip("/") + DISCOVERY_PATH)
    if document.get("issuer") != issuer:
        raise ConfigurationError(
            "The discovery document names another issuer than the one configured."
        )
    endpoints = {}
    for name in ("jwks_uri", "twofold_revocation_feed_endpoint"):
        url = document.get(name)
        if not isinstance(url, str):
            raise ConfigurationError(f"The discovery document has no {name}.")
        if not same_origin(url, issuer):
            raise ConfigurationError(f"The discovery document's {name} is not on the issuer.")
        endpoints[name] = url
    return IssuerMetadata(
        issuer=issuer,
        jwks_uri=endpoints["jwks_uri"],
        revocation_feed_endpoint=endpoints["twofold_revocation_feed_endpoint"],
    )


def same_origin(url: str, issuer: str) -> bool:
    """Whether ``url`` has the issuer's scheme, host and port."""
    try:
        a, b = urlsplit(url), urlsplit(issuer)
        return (
            a.scheme in ("https", "http")
            and (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
            and a.username is None
            and a.password is None
        )
    except ValueError:  # a malformed port or address
        return False


#: Identity encoding: a compressed answer would be inflated before its size is checked
#: (a small hostile body could become gigabytes).
PLAIN_JSON = {"Accept": "application/json", "Accept-Encoding": "identity"}


async def fetch_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """GET a JSON object of at most ``MAX_DOCUMENT_BYTES``; ``FeedUnavailable`` when the
    issuer cannot be reached or does not answer 200 with one."""
    try:
        async with client.stream("GET", url, headers=PLAIN_JSON, follow_redirects=False) as answer:
            if answer.status_code != 200:
                raise FeedUnavailable(f"The issuer answered {answer.status_code} for {url}.")
            body = bytearray()
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise FeedUnavailable(f"The document at {url} is too large.")
    except httpx.HTTPError as exc:
        raise FeedUnavailable(f"The issuer could not be reached ({type(exc).__name__}).") from exc
    try:
        document = json.loads(body)
    except ValueError:
        raise FeedUnavailable(f"The document at {url} is not JSON.") from None
    if not isinstance(document, dict):
        raise FeedUnavailable(f"The document at {url} is not a JSON object.")
    return document
