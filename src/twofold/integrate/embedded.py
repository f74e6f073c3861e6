"""Twofold inside your own ASGI app: the same store, keys and settings as the server.

``Twofold(settings)`` starts the very runtime ``twofold serve`` runs (the store, the signing
keys, the revocation stream it follows) in your app's process, so a session cookie or an
access token that the Twofold server issued is good here, and a logout or revocation made
anywhere reaches this process as it reaches every server instance. Your app can also log
users in and out itself (the seed article's ``/login`` form), with the same hardened cookie.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import Response

from twofold.authority import Principal
from twofold.clock import Clock
from twofold.config import Settings, normalize_origin
from twofold.errors import ConfigurationError
from twofold.http.csrf import CsrfGuard, own_origins
from twofold.http.deps import origin_of
from twofold.http.transport import CookiePolicy, session_cookie
from twofold.integrate.context import principal_of
from twofold.runtime import Runtime
from twofold.store.records import User


def _not_started() -> ConfigurationError:
    return ConfigurationError("Twofold has not been started: run it in the app's lifespan.")


class Twofold:
    """The Twofold runtime for an app of your own; start it with the app (:meth:`lifespan`,
    or ``async with``) and hand it to ``TwofoldMiddleware``.

    ``trusted_origins`` are origins besides ``settings.public_url`` (and ``cors_origins``)
    whose pages may send cookie-authenticated state changes: your app's own origin when it
    is not the public URL.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        trusted_origins: Iterable[str] = (),
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.cookies = CookiePolicy(secure=self.settings.secure_cookies)
        self._trusted = frozenset(normalize_origin(origin) for origin in trusted_origins)
        self._clock = clock
        self._runtime: Runtime | None = None
        self._csrf: CsrfGuard | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, load the keys and follow the revocation stream."""
        if self._runtime is not None:
            return
        runtime = await Runtime.start(self.settings, clock=self._clock)
        runtime.serve()
        self._csrf = CsrfGuard(
            # The server's derivation: a CSRF token the Twofold pages issued is good here.
            runtime.master_key.derive("csrf"),
            own_origins(self.settings.effective_public_url)
            | frozenset(self.settings.cors_origins)
            | self._trusted,
        )
        self._runtime = runtime

    async def close(self) -> None:
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await runtime.close()

    async def __aenter__(self) -> Twofold:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """For ``FastAPI(lifespan=...)``, ``Starlette(lifespan=...)`` and
        ``Litestar(lifespan=[...])``: Twofold runs while the app does."""
        async with self:
            yield

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise _not_started()
        return self._runtime

    @property
    def csrf(self) -> CsrfGuard:
        if self._csrf is None:
            raise _not_started()
        return self._csrf

    # -- logging in and out from your own routes ----------------------------------------

    async def log_in(
        self, request: HTTPConnection, response: Response, email: str, password: str
    ) -> User:
        """Check the password (throttled as at the server, SECURITY.md P3) and start a
        session under a new id (S3), set in the hardened cookie on ``response``.

        Raises ``AuthenticationFailed`` (the same for unknown accounts, P2), ``Throttled``
        (with ``retry_after``), ``CsrfFailed`` for a form posted from another origin."""
        self.csrf.check_origin(request)
        result = await self.runtime.authority.login_session(
            email,
            password,
            origin=origin_of(request, self.cookies),
            replacing=session_cookie(request, self.cookies),
        )
        self.cookies.set_session(response, result.session)
        self.cookies.set_device(response, self.runtime.authority.throttle.device_token(result.user))
        return result.user

    async def log_out(
        self, request: HTTPConnection, response: Response, principal: Principal | None
    ) -> None:
        """End the caller's session (its cookie is cleared) or, for a Bearer caller, its
        token login."""
        session_id = session_cookie(request, self.cookies)
        if principal is not None:
            await self.runtime.authority.logout(
                principal,
                session_id=session_id if principal.mode == "session" else None,
                origin=origin_of(request, self.cookies),
            )
        if session_id is not None:
            self.cookies.clear(response, self.cookies.session_name)

    def csrf_token(self, request: HTTPConnection) -> str | None:
        """The CSRF token for the caller's session, for a hidden ``csrf_token`` field of
        your forms or an ``X-CSRF-Token`` header; None without a session cookie."""
        principal = principal_of(request.scope)
        if principal is not None and principal.renewed is not None:
            return self.csrf.token_for(principal.renewed.id)  # this response hands it over
        session_id = session_cookie(request, self.cookies)
        return None if session_id is None else self.csrf.token_for(session_id)
