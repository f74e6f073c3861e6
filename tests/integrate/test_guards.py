"""The route-level checks behind the FastAPI dependencies and the Litestar/Starlette
guards: signed in, roles, scopes; a scope no middleware saw is a setup error."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from twofold.authority import Principal
from twofold.errors import ConfigurationError
from twofold.integrate.context import set_principal
from twofold.integrate.fastapi import current_user, optional_user, require_roles, require_scopes

ALICE = Principal(
    user_id="u1", email="a@example.com", roles=("user",), mode="jwt", scopes=("read",)
)


def request_with(principal: Principal | None, *, middleware: bool = True) -> Request:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "headers": [], "path": "/"}
    if middleware:
        set_principal(scope, principal)
    return Request(scope)


def test_current_user_is_the_caller() -> None:
    """The principal the middleware left is the dependency's value."""
    assert current_user(request_with(ALICE)) is ALICE
    assert optional_user(request_with(ALICE)) is ALICE


def test_anonymous_caller_is_401_with_challenge() -> None:
    """No caller: 401 with WWW-Authenticate: Bearer (RFC 6750)."""
    assert optional_user(request_with(None)) is None
    with pytest.raises(HTTPException) as refused:
        current_user(request_with(None))
    assert refused.value.status_code == 401
    assert refused.value.headers == {"WWW-Authenticate": 'Bearer realm="twofold"'}


@pytest.mark.parametrize(
    ("dependency", "allowed"),
    [
        (require_roles("user"), True),
        (require_roles("admin"), False),
        (require_roles("user", "admin"), False),
        (require_scopes("read"), True),
        (require_scopes("write"), False),
        (require_scopes("read", "write"), False),
    ],
    ids=["role", "missing-role", "one-role-missing", "scope", "missing-scope", "one-scope-missing"],
)
def test_roles_and_scopes_are_all_required(dependency: Any, allowed: bool) -> None:
    """Every named role and scope is needed; one missing is 403."""
    if allowed:
        assert dependency(request_with(ALICE)) is ALICE
        return
    with pytest.raises(HTTPException) as refused:
        dependency(request_with(ALICE))
    assert refused.value.status_code == 403


def test_scope_requirement_of_anonymous_caller_is_401() -> None:
    """A route needing a scope asks an anonymous caller to authenticate first."""
    with pytest.raises(HTTPException) as refused:
        require_scopes("read")(request_with(None))
    assert refused.value.status_code == 401


def test_without_middleware_is_a_setup_error() -> None:
    """A route behind no Twofold middleware fails loudly instead of seeing everyone as
    anonymous (or worse)."""
    with pytest.raises(ConfigurationError):
        optional_user(request_with(None, middleware=False))
