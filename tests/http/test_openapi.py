"""The committed OpenAPI document matches the server."""

from __future__ import annotations

import json
from pathlib import Path

from twofold.config import Settings
from twofold.http.app import create_app

DOCUMENT = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_committed_openapi_document_matches_the_server() -> None:
    """docs/openapi.json is what the server generates (regenerate: twofold openapi)."""
    generated = json.loads(json.dumps(create_app(Settings()).openapi(), sort_keys=True))
    assert json.loads(DOCUMENT.read_text()) == generated


def test_openapi_covers_the_contract_routes() -> None:
    """Every JSON route of the contract built so far is documented."""
    paths = create_app(Settings()).openapi()["paths"]
    for path, method in [
        ("/auth/register", "post"),
        ("/auth/login", "post"),
        ("/auth/logout", "post"),
        ("/auth/me", "get"),
        ("/auth/password", "post"),
        ("/auth/email", "post"),
        ("/auth/token", "post"),
        ("/auth/scoped-tokens", "get"),
        ("/auth/scoped-tokens", "post"),
        ("/auth/scoped-tokens/{token_id}", "delete"),
        ("/.well-known/jwks.json", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths[path], path


def test_openapi_says_how_each_route_authenticates() -> None:
    """Authenticated routes name Bearer or the session cookie (with CSRF for changes);
    the OAuth endpoints name client credentials; login and registration name nothing."""
    document = create_app(Settings()).openapi()
    paths = document["paths"]
    assert set(document["components"]["securitySchemes"]) == {
        "bearer",
        "session",
        "csrf",
        "client",
        "scoped_token",
    }
    assert paths["/auth/me"]["get"]["security"] == [{"bearer": []}, {"session": []}]
    assert paths["/admin/users/{user_id}/lock"]["post"]["security"] == [
        {"bearer": []},
        {"session": [], "csrf": []},
    ]
    assert paths["/oauth/introspect"]["post"]["security"] == [{"client": []}]
    assert paths["/auth/token"]["post"]["security"] == [
        {"scoped_token": []},
        {"session": [], "csrf": []},
    ]
    assert paths["/auth/scoped-tokens"]["post"]["security"] == [
        {"bearer": []},
        {"session": [], "csrf": []},
    ]
    for public in ("/auth/login", "/auth/register", "/auth/refresh"):
        assert "security" not in paths[public]["post"]
    assert "security" not in paths["/.well-known/jwks.json"]["get"]
