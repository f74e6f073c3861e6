"""Token introspection (RFC 7662) and revocation (RFC 7009) for registered clients.

Both take either kind of token; ``token_type_hint`` only orders the look-ups, as the RFCs
allow. An inactive, malformed or unknown token is ``{"active": false}`` to introspection
and a no-op to revocation: neither tells a client why a token is not good.
"""

from __future__ import annotations

from typing import Any

from twofold import audit
from twofold.authority import Authority, Origin
from twofold.errors import InvalidToken
from twofold.refresh import PREFIX as REFRESH_PREFIX
from twofold.store.records import Client

INACTIVE: dict[str, Any] = {"active": False}


class TokenService:
    def __init__(self, authority: Authority) -> None:
        self._authority = authority

    async def introspect(self, token: str) -> dict[str, Any]:
        if token.startswith(REFRESH_PREFIX):
            return await self._introspect_refresh(token)
        return self._introspect_access(token)

    def _introspect_access(self, token: str) -> dict[str, Any]:
        try:
            principal = self._authority.token_principal(token)
        except InvalidToken:
            return INACTIVE
        claims = principal.claims
        assert claims is not None
        answer: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer",
            "sub": claims.sub,
            "username": principal.email or None,
            "client_id": claims.client_id,
            "iss": claims.iss,
            "aud": claims.aud,
            "exp": claims.exp,
            "iat": claims.iat,
            "nbf": claims.nbf,
            "jti": claims.jti,
            "scope": claims.scope,
            "roles": list(claims.roles),
            "sid": claims.sid,
        }
        return {name: value for name, value in answer.items() if value is not None}

    async def _introspect_refresh(self, token: str) -> dict[str, Any]:
        authority = self._authority
        family = await authority.refresh_tokens.family_of(token)
        if family is None:
            return INACTIVE
        user = await authority.accounts.get(family.user_id)
        if user is None or user.locked or user.password_changed_at != family.password_changed_at:
            return INACTIVE
        return {
            "active": True,
            "token_type": "refresh_token",
            "sub": user.id,
            "username": user.email,
            "client_id": authority.tokens.policy.client_id,
            "iss": authority.tokens.policy.issuer,
            "exp": int(min(family.idle_expires_at, family.absolute_expires_at)),
            "iat": int(family.last_used_at),
            "sid": family.id,
        }

    async def revoke(self, token: str, *, client: Client, origin: Origin) -> None:
        """Revoke either kind of token; revoking a refresh token ends its family and the
        access tokens issued from it (RFC 7009 section 2.1)."""
        authority = self._authority
        if token.startswith(REFRESH_PREFIX):
            family = await authority.refresh_tokens.family_of(token)
            if family is None:
                return
            await authority.end_family(family.id)
            user_id, what = family.user_id, "refresh_token"
        else:
            try:
                principal = authority.token_principal(token)
            except InvalidToken:
                return
            claims = principal.claims
            assert claims is not None
            await authority.revoke_access_token(claims)
            user_id, what = claims.sub, "access_token"
        await authority.audit.record(
            audit.TOKEN_REVOKED,
            user_id=user_id,
            client_address=origin.client_address,
            client=client.name,
            token_type=what,
        )
