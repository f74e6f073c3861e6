"""Where a middleware leaves who is calling, for the route to read.

Both middlewares (in-process ``TwofoldMiddleware`` and the resource server's
``RemoteAuthMiddleware``) put a :class:`~twofold.authority.Principal` in the ASGI scope under
one key, so that the same FastAPI dependencies, Starlette ``request.scope`` look-ups and
Litestar handlers work behind either.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from twofold.authority import Principal

PRINCIPAL_KEY = "twofold.principal"


def set_principal(scope: MutableMapping[str, Any], principal: Principal | None) -> None:
    scope[PRINCIPAL_KEY] = principal


def principal_of(scope: MutableMapping[str, Any]) -> Principal | None:
    """The authenticated caller, or None when the request carried no credential."""
    principal = scope.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None
