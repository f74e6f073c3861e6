"""What a resource server's verifier raises beyond the core's errors."""

from __future__ import annotations

from twofold.errors import StoreUnavailable

__all__ = ["FeedUnavailable"]


class FeedUnavailable(StoreUnavailable):
    """The issuer's revocation feed (or the issuer itself) has not been heard from within
    the bound: what was revoked since is unknown, so tokens are refused (fail closed,
    SECURITY.md O3) until the feed is followed again.

    A kind of ``StoreUnavailable`` -- the issuer's store is out of this process's sight --
    so every error mapping that answers that with a 503 and ``Retry-After`` does this too.
    """

    code = "feed_unavailable"
    default_detail = "Token revocations cannot be checked right now; try again shortly."
