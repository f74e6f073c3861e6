"""The OpenAPI document, with how each route authenticates.

Routes read their credentials by hand (``deps.authenticate`` and friends, which must try
the Bearer header before the cookie), so FastAPI cannot infer security requirements;
they are declared here, by route, from one table.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token (RFC 9068). Checked before any cookie.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "twofold_session",
        "description": "The session cookie (`__Host-twofold_session` over HTTPS).",
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
        "description": "The session's CSRF token: required with the cookie on every "
        "method but GET, HEAD and OPTIONS.",
    },
    "scoped_token": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "tfs_<id>.<secret>",
        "description": "A scoped token a user made for an application; only "
        "POST /auth/token takes it.",
    },
    "client": {
        "type": "http",
        "scheme": "basic",
        "description": "A registered client's id and secret (or client_id and "
        "client_secret in the form).",
    },
}

_SAFE = {"get", "head", "options"}
EXCHANGE = "/auth/token"
_PUBLIC = {
    ("post", "/auth/register"),
    ("post", "/auth/login"),
    ("post", "/auth/refresh"),
}


def _security(method: str, path: str) -> list[dict[str, list[str]]] | None:
    if (method, path) == ("post", EXCHANGE):
        # A session or a scoped token; a login access token cannot exchange.
        return [{"scoped_token": []}, {"session": [], "csrf": []}]
    if path.startswith("/oauth/"):
        return [{"client": []}]
    if not path.startswith(("/auth/", "/admin/")) or (method, path) in _PUBLIC:
        return None
    cookie: dict[str, list[str]] = (
        {"session": []}
        if method in _SAFE
        else {
            "session": [],
            "csrf": [],
        }
    )
    return [{"bearer": []}, cookie]


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with security schemes and requirements (cached)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {})["securitySchemes"] = SCHEMES
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                security = _security(method, path)
                if security is not None:
                    operation["security"] = security
        app.openapi_schema = schema
    return app.openapi_schema
