"""The ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from twofold import __version__
from twofold.clock import Clock
from twofold.config import Settings
from twofold.http import errors, openapi
from twofold.http.access_log import AccessLogMiddleware
from twofold.http.body_limit import BodyLimitMiddleware
from twofold.http.csrf import CsrfGuard
from twofold.http.deps import Web
from twofold.http.routes import admin, auth, health, oauth, pages, wellknown
from twofold.http.security_headers import SecurityHeadersMiddleware
from twofold.http.session_renewal import SessionRenewalMiddleware
from twofold.http.transport import CookiePolicy
from twofold.runtime import Runtime


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The Twofold server as an ASGI app; the store opens when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, clock=clock)
        public = urlsplit(settings.effective_public_url)
        app.state.web = Web(
            runtime=runtime,
            cookies=CookiePolicy(secure=settings.secure_cookies),
            csrf=CsrfGuard(
                runtime.master_key.derive("csrf"),
                frozenset({f"{public.scheme}://{public.netloc}"}),
            ),
        )
        runtime.serve()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="Twofold",
        version=__version__,
        description="Server-side sessions and JSON Web Tokens side by side.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    errors.install(app)
    for router in (
        auth.router,
        admin.router,
        oauth.router,
        wellknown.router,
        health.router,
        pages.router,
    ):
        app.include_router(router)
    app.mount(
        "/static",
        StaticFiles(directory=str(files("twofold.http") / "static")),
        name="static",
    )
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout
    )
    app.add_middleware(SessionRenewalMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies)
    app.add_middleware(AccessLogMiddleware)
    return app
