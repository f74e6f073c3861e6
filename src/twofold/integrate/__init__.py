"""Protect your own ASGI app with Twofold.

- :class:`Twofold`: the Twofold runtime in your app's process (same store and settings);
- :class:`TwofoldMiddleware`: authenticates each request by session cookie or Bearer token
  and enforces CSRF on cookie-authenticated state changes;
- ``twofold.integrate.fastapi``: ``current_user``, ``require_roles``, ``require_scopes``;
- ``twofold.integrate.guards``: the same checks for Starlette and Litestar.

A resource server in another process verifies with ``twofold.remote`` instead.
"""

from twofold.authority import Principal
from twofold.integrate.context import principal_of
from twofold.integrate.embedded import Twofold
from twofold.integrate.middleware import TwofoldMiddleware

__all__ = ["Principal", "Twofold", "TwofoldMiddleware", "principal_of"]
