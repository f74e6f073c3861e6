"""Verify Twofold's access tokens in another process: a resource server of your own.

Needs only the issuer's URL and this service's audience (``pip install twofold[remote]``):

- :class:`RemoteVerifier`: discovery, the JWKS (cached, refreshed on a key change) and
  the revocation feed (followed into memory); ``await verifier.verify(token)`` makes no
  call to Twofold;
- :class:`RemoteAuthMiddleware`: ASGI middleware leaving the caller in the scope
  (``twofold.integrate.context.principal_of``);
- :class:`RemotePolicy`: staleness bound, fail closed or open, JWKS refresh rate;
- :class:`FeedUnavailable`: the feed is lost and the verifier fails closed (a 503).

Layers, each using only those before it: ``errors``, ``discovery``, ``jwks``, ``feed``,
``verifier``, ``middleware``.
"""

from twofold.remote.errors import FeedUnavailable
from twofold.remote.middleware import RemoteAuthMiddleware
from twofold.remote.verifier import RemotePolicy, RemoteVerifier

__all__ = ["FeedUnavailable", "RemoteAuthMiddleware", "RemotePolicy", "RemoteVerifier"]
