"""What a route may demand of its caller, for any framework: signed in, roles, scopes.

Each raises a ``TwofoldError`` (``NotAuthenticated`` → 401, ``Forbidden`` → 403); the
FastAPI dependencies (``twofold.integrate.fastapi``) turn them into ``HTTPException``s, and
a Starlette or Litestar app maps them in an exception handler of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from twofold.authority import Principal
from twofold.errors import ConfigurationError, Forbidden, NotAuthenticated
from twofold.integrate.context import PRINCIPAL_KEY, principal_of


def caller(scope: MutableMapping[str, Any]) -> Principal | None:
    """The caller a Twofold middleware found, or None. A scope no middleware saw is a
    mistake in the app's setup, not an anonymous request: it raises."""
    if PRINCIPAL_KEY not in scope:
        raise ConfigurationError(
            "No Twofold middleware ran for this request: add TwofoldMiddleware or "
            "RemoteAuthMiddleware to the app."
        )
    return principal_of(scope)


def signed_in(scope: MutableMapping[str, Any]) -> Principal:
    principal = caller(scope)
    if principal is None:
        raise NotAuthenticated()
    return principal


def check_roles(principal: Principal, roles: Iterable[str]) -> None:
    """Every one of ``roles`` (as of this request: a role taken away counts at once)."""
    missing = sorted(set(roles) - set(principal.roles))
    if missing:
        raise Forbidden(f"This needs the role {', '.join(missing)}.")


def check_scopes(principal: Principal, scopes: Iterable[str]) -> None:
    """Every one of ``scopes``: what this credential may do, which for a scoped token is
    less than what its user may do."""
    missing = sorted(set(scopes) - set(principal.scopes))
    if missing:
        raise Forbidden(f"This needs the scope {', '.join(missing)}.")
