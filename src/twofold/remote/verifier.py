"""Verifying Twofold access tokens in another process, with no call to Twofold per request.

A resource server (a microservice of its own) needs only the issuer URL and its audience.
At start it reads the issuer's discovery document and JWKS and connects to the revocation
feed; from then on each token is checked in memory: the signature against the published
keys, the claims exactly as Twofold itself checks them (``AccessTokenCodec``: ``exp`` with
leeway, ``iss`` and ``aud`` exact), and the revocations the feed has delivered
(``RevocationList``, the structure a Twofold instance uses). A revocation made on the
issuer reaches the resource server within a round trip of the feed.

When the feed goes quiet (no heartbeat for ``max_staleness`` seconds: the issuer is down,
the network is cut) what was revoked since is unknown. By default the verifier then fails
closed -- :class:`FeedUnavailable`, a 503 -- until the feed is back, which happens by
itself (SECURITY.md O3). ``on_feed_loss="fail_open"`` keeps accepting tokens against the
last known revocations instead, and logs a warning once per outage: for services where
availability outweighs a revocation arriving late.

Start and stop it with the application (``async with verifier:`` in a lifespan)::

    verifier = RemoteVerifier("https://auth.example.com", audience="orders")

    @asynccontextmanager
    async def lifespan(app):
        async with verifier:
            yield

    app = Starlette(routes=..., lifespan=lifespan)
    app.add_middleware(RemoteAuthMiddleware, verifier=verifier)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, TypeVar
from urllib.parse import quote

import httpx

from twofold.clock import Clock, SystemClock
from twofold.errors import ConfigurationError, InvalidToken
from twofold.jose.jwt import AccessClaims, AccessTokenCodec, TokenPolicy
from twofold.remote.discovery import IssuerMetadata, discover
from twofold.remote.errors import FeedUnavailable
from twofold.remote.feed import MAX_BACKOFF, MIN_BACKOFF, FeedFollower
from twofold.remote.jwks import JwksCache
from twofold.revocation import RevocationList

__all__ = ["FeedLoss", "RemotePolicy", "RemoteVerifier"]

log = logging.getLogger("twofold.remote")

FeedLoss = Literal["fail_closed", "fail_open"]
_T = TypeVar("_T")
#: The longest lifetime TokenPolicy allows.
_MAX_LIFETIME = 86_400.0


@dataclass(frozen=True)
class RemotePolicy:
    """How a resource server follows the issuer (seconds)."""

    #: Tokens are refused (or, fail-open, accepted on old knowledge) once the feed has
    #: not been heard from for this long; the issuer sends a heartbeat every second.
    max_staleness: float = 3.0
    on_feed_loss: FeedLoss = "fail_closed"
    #: A token naming an unknown ``kid`` re-reads the JWKS at most this often.
    jwks_min_refresh: float = 30.0
    #: Clock leeway for ``exp``, ``nbf`` and ``iat``, as on the issuer.
    leeway: float = 30.0
    #: How long :meth:`RemoteVerifier.start` waits for the issuer.
    start_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 1.0 < self.max_staleness <= 300:
            # At or under the heartbeat interval, a healthy feed would look lost.
            raise ConfigurationError("max_staleness must be over 1 second, at most 300.")
        if self.on_feed_loss not in ("fail_closed", "fail_open"):
            raise ConfigurationError("on_feed_loss must be 'fail_closed' or 'fail_open'.")
        if not 0 <= self.jwks_min_refresh <= 86_400:
            raise ConfigurationError("jwks_min_refresh must be 0 to 86400 seconds.")
        if not 0 <= self.leeway <= 300:
            raise ConfigurationError("leeway must be 0 to 300 seconds.")
        if not self.start_timeout > 0:
            raise ConfigurationError("start_timeout must be positive.")


class RemoteVerifier:
    """Verifies access tokens of ``issuer`` meant for ``audience``.

    ``client_credentials`` (a registered client's id and secret) are needed only when the
    issuer's feed is not public. ``http`` lends an ``httpx.AsyncClient`` (the verifier
    then leaves closing it to the lender); ``clock`` is for tests.
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: str,
        client_credentials: tuple[str, str] | None = None,
        policy: RemotePolicy | None = None,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if not issuer.startswith(("https://", "http://")):
            raise ConfigurationError("The issuer must be an http(s) URL.")
        if not audience:
            raise ConfigurationError("The audience must be a non-empty string.")
        self.issuer = issuer
        self.audience = audience
        self.policy = policy or RemotePolicy()
        self._authorization = None if client_credentials is None else _basic(*client_credentials)
        self._clock = clock or SystemClock()
        self._lent = http
        self._client: httpx.AsyncClient | None = None
        self._jwks: JwksCache | None = None
        self._feed: FeedFollower | None = None
        self._task: asyncio.Task[None] | None = None
        self._codec: AccessTokenCodec | None = None
        self._revoked: RevocationList | None = None
        self._warned = False

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Read the issuer's metadata and keys, and follow its feed until caught up.

        ``ConfigurationError`` at once when the issuer contradicts the configuration
        (another issuer, endpoints elsewhere, credentials refused); ``FeedUnavailable``
        when it cannot be reached within ``start_timeout`` (retried meanwhile).
        """
        if self._task is not None:
            raise RuntimeError("The verifier is already started.")
        client = self._lent or httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        self._client = client
        try:
            async with asyncio.timeout(self.policy.start_timeout):
                metadata: IssuerMetadata = await _retrying(lambda: discover(client, self.issuer))
                jwks = JwksCache(
                    client, metadata.jwks_uri, min_refresh=self.policy.jwks_min_refresh
                )
                await _retrying(jwks.refresh)
                feed = FeedFollower(
                    client,
                    metadata.revocation_feed_endpoint,
                    clock=self._clock,
                    leeway=self.policy.leeway,
                    read_timeout=self.policy.max_staleness + 1.0,
                    keys_changed=jwks.refresh,
                    authorization=self._authorization,
                )
                self._jwks, self._feed = jwks, feed
                self._task = asyncio.create_task(feed.run())
                await feed.settled.wait()
            if feed.failure is not None:
                raise feed.failure
        except TimeoutError:
            await self.stop()
            raise FeedUnavailable(
                f"The issuer could not be followed within {self.policy.start_timeout} s."
            ) from None
        except BaseException:
            await self.stop()
            raise
        # Both set by the hello of the catch-up just completed.
        assert feed.horizon is not None
        assert feed.revoked is not None
        self._revoked = feed.revoked
        self._codec = AccessTokenCodec(
            jwks.keyring,
            TokenPolicy(
                issuer=self.issuer,
                audience=self.audience,
                # The feed keeps a revocation for the horizon: a token meant to live
                # longer could outlive its revocation here, so it is refused.
                lifetime=min(feed.horizon, _MAX_LIFETIME),
                leeway=self.policy.leeway,
            ),
            self._clock,
        )

    async def stop(self) -> None:
        """Stop following the feed and close the HTTP client (unless it was lent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None and client is not self._lent:
            await client.aclose()
        self._codec = None

    async def __aenter__(self) -> RemoteVerifier:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- verifying ----------------------------------------------------------------------

    async def verify(self, token: str) -> AccessClaims:
        """The claims of a valid, unrevoked token for this audience.

        ``InvalidToken`` (with a short ``reason``) for a bad, expired, foreign or revoked
        token; ``FeedUnavailable`` when the feed is lost and the policy fails closed.
        """
        codec, jwks, revoked = self._codec, self._jwks, self._revoked
        if codec is None or jwks is None or revoked is None:
            raise FeedUnavailable("The verifier is not started.")
        if codec.keyring is not jwks.keyring:
            codec.keyring = jwks.keyring
        try:
            claims = codec.verify(token)
        except InvalidToken as exc:
            # A kid the ring lacks: perhaps a rotation the feed has not announced yet.
            if exc.reason != "unknown_key" or not await jwks.refresh_for_unknown_kid():
                raise
            codec.keyring = jwks.keyring
            claims = codec.verify(token)
        self.ensure_current()
        revoked.check(claims)
        return claims

    def staleness(self) -> float:
        """Seconds since the feed was last known current (infinite before the start)."""
        return self._feed.staleness() if self._feed is not None else float("inf")

    def ensure_current(self) -> None:
        """``FeedUnavailable`` when the feed is lost and the policy fails closed."""
        if self.staleness() <= self.policy.max_staleness:
            if self._warned:
                log.info("revocation feed current again")
                self._warned = False
            return
        if self.policy.on_feed_loss == "fail_closed":
            raise FeedUnavailable()
        if not self._warned:
            log.warning(
                "revocation feed lost: verifying against the last known revocations (fail_open)"
            )
            self._warned = True


def _basic(client_id: str, secret: str) -> str:
    # RFC 6749 section 2.3.1: each part form-urlencoded before the Basic encoding.
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


async def _retrying(attempt: Callable[[], Awaitable[_T]]) -> _T:
    """``attempt`` until it succeeds, backing off while the issuer cannot be reached
    (the caller bounds the time); configuration errors are raised at once."""
    backoff = MIN_BACKOFF
    while True:
        try:
            return await attempt()
        except FeedUnavailable as exc:
            log.info("issuer not reachable yet", extra={"reason": exc.detail})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
