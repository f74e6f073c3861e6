"""Token exchange: a short-lived access token for another application.

A signed-in user (their session) or an application holding one of the user's scoped
tokens asks for an access token whose ``aud`` is another application's (one of the
configured ``token_audiences``, never Twofold's own, so the token opens none of Twofold's
endpoints) and whose ``scope`` claim is a subset of what the caller holds. Each such token
names the login it came from in ``sid``: for a session an opaque derivation of it
(``Authority.session_sid``), for a scoped token the token's id. Ending that session or
revoking that token appends a ``family`` entry for the ``sid`` to the revocation stream,
so its exchanged tokens die everywhere, including at resource servers that follow the feed.
"""

from __future__ import annotations

from dataclasses import dataclass

from twofold.authority import Authority, Principal
from twofold.errors import InvalidScope, InvalidTarget, NotAuthenticated
from twofold.jose.jwt import AccessClaims
from twofold.scoped_tokens import ScopedTokens


@dataclass(frozen=True, slots=True)
class ExchangePolicy:
    """The audiences tokens may be minted for, and how long they live (seconds)."""

    audiences: tuple[str, ...] = ()
    lifetime: float = 120.0


@dataclass(frozen=True, slots=True)
class Exchanged:
    access_token: str
    claims: AccessClaims
    scopes: tuple[str, ...]

    @property
    def expires_in(self) -> int:
        return int(self.claims.exp - self.claims.iat)


def granted_scopes(requested: str | None, held: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes to grant, in the order held: all held ones when none are asked for;
    ``InvalidScope`` when an asked-for one is not held, or nothing would be granted."""
    # RFC 6749 section 3.3: names separated by single spaces; tabs, other whitespace and
    # empty names are malformed, not separators.
    parts = list(held) if requested is None else requested.split(" ")
    wanted = set(parts)
    if not wanted or "" in wanted or not wanted <= set(held):
        raise InvalidScope()
    return tuple(scope for scope in held if scope in wanted)


class TokenExchange:
    def __init__(
        self, authority: Authority, scoped_tokens: ScopedTokens, policy: ExchangePolicy
    ) -> None:
        self._authority = authority
        self._scoped_tokens = scoped_tokens
        self.policy = policy

    def _check_audience(self, audience: str) -> None:
        if audience not in self.policy.audiences:
            raise InvalidTarget()

    async def for_session(
        self, principal: Principal, *, audience: str, scope: str | None
    ) -> Exchanged:
        """A token for ``audience`` from the caller's session: the user's roles, the
        granted scopes, ``sid`` derived from the session."""
        session = principal.session
        if session is None:
            raise NotAuthenticated("Exchanging needs a session or a scoped token.")
        self._check_audience(audience)
        scopes = granted_scopes(scope, principal.scopes)
        authority = self._authority
        token, claims = authority.tokens.issue(
            principal.user_id,
            principal.roles,
            scope=" ".join(scopes),
            audience=audience,
            lifetime=self.policy.lifetime,
            extra={"email": principal.email},
            sid=authority.session_sid(session.id_hash),
            auth_time=session.created_at,
            not_before=authority.revoker.revoked.not_before(principal.user_id),
        )
        return Exchanged(access_token=token, claims=claims, scopes=scopes)

    async def for_scoped_token(self, token: str, *, audience: str, scope: str | None) -> Exchanged:
        """A token for ``audience`` from a scoped token (``InvalidToken`` if it does not
        authenticate): no roles, a subset of its scopes, its id as ``client_id`` and
        ``sid``."""
        grant = await self._scoped_tokens.authenticate(token)
        self._check_audience(audience)
        # A scope dropped from the configuration since the token was made is not granted.
        held = tuple(s for s in grant.scopes if s in self._authority.scopes)
        scopes = granted_scopes(scope, held)
        authority = self._authority
        record = grant.record
        issued, claims = authority.tokens.issue(
            record.user_id,
            (),
            scope=" ".join(scopes),
            audience=audience,
            lifetime=self.policy.lifetime,
            sid=record.id,
            client_id=record.id,
            not_before=authority.revoker.revoked.not_before(record.user_id),
        )
        return Exchanged(access_token=issued, claims=claims, scopes=scopes)
