"""The ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from twofold import __version__
from twofold.clock import Clock
from twofold.config import Settings
from twofold.http import errors, openapi, pages
from twofold.http.access_log import AccessLogMiddleware
from twofold.http.body_limit import BodyLimitMiddleware
from twofold.http.cors import CorsMiddleware
from twofold.http.csrf import CsrfGuard, own_origins
from twofold.http.deps import Web
from twofold.http.routes import admin, auth, feed, health, metrics, oauth, tokens, wellknown
from twofold.http.security_headers import SecurityHeadersMiddleware
from twofold.http.session_renewal import SessionRenewalMiddleware
from twofold.http.transport import CookiePolicy
from twofold.metrics import Metrics
from twofold.runtime import Runtime


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The Twofold server as an ASGI app; the store opens when the app starts."""
    measured = Metrics()  # this app's own registry: apps in one process never collide

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, clock=clock, metrics=measured)
        app.state.web = Web(
            runtime=runtime,
            cookies=CookiePolicy(secure=settings.secure_cookies),
            csrf=CsrfGuard(
                runtime.master_key.derive("csrf"),
                # Origins allowed to call with credentials (CORS) may also change state.
                own_origins(settings.effective_public_url) | frozenset(settings.cors_origins),
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
    # Health first: a request is matched against the routes in order, probes come often,
    # and /healthz is the baseline of the HTTP speed targets (benchmarks/): it must not pay
    # for scanning every other route when /auth/me does not.
    for router in (
        health.router,
        auth.router,
        tokens.router,
        admin.router,
        oauth.router,
        feed.router,
        wellknown.router,
        metrics.router,
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
    app.add_middleware(CorsMiddleware, origins=settings.cors_origins)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies)
    app.add_middleware(AccessLogMiddleware, metrics=measured if settings.metrics_enabled else None)
    if settings.trusted_proxies:
        # Outermost, so the access log, the audit log and the throttle all see the client.
        # uvicorn's middleware takes the right-most address that is not a trusted proxy.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app
