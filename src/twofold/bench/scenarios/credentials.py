"""Accounts and logins over HTTP, as a client of a running server gets them.

Every configuration is measured with a user registered and logged in through the public
API: the cookie a browser would send (every cookie the login set whose path covers
``/auth/me``) or the Bearer token an API client would send.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

import httpx

__all__ = ["Credential", "login", "register"]

_TIMEOUT = 30.0


@dataclass(frozen=True)
class Credential:
    """What a client sends to be recognised, and what it needs to log out."""

    mode: Literal["session", "jwt"]
    #: "Cookie" or "Authorization".
    header: str
    value: str
    #: Session mode: the CSRF token that state-changing requests send back.
    csrf_token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {self.header: self.value}


def register(base_url: str) -> tuple[str, str]:
    """A new account on the server at ``base_url``: (e-mail, password)."""
    email = f"bench-{secrets.token_hex(6)}@example.com"
    password = f"bench {secrets.token_urlsafe(12)} passphrase"
    answer = httpx.post(
        f"{base_url}/auth/register", json={"email": email, "password": password}, timeout=_TIMEOUT
    )
    if answer.status_code != 201:
        raise RuntimeError(f"registering answered {answer.status_code}: {answer.text[:200]}")
    return email, password


def login(base_url: str, email: str, password: str, mode: Literal["session", "jwt"]) -> Credential:
    """Log in at ``base_url`` in ``mode``."""
    with httpx.Client(base_url=base_url, timeout=_TIMEOUT) as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": password, "mode": mode}
        )
        if answer.status_code != 200:
            raise RuntimeError(f"logging in answered {answer.status_code}: {answer.text[:200]}")
        if mode == "jwt":
            return Credential("jwt", "Authorization", f"Bearer {answer.json()['access_token']}")
        # The jar applies the cookies' paths, as a browser would.
        cookie = client.build_request("GET", "/auth/me").headers.get("cookie", "")
        return Credential("session", "Cookie", cookie, csrf_token=answer.json()["csrf_token"])


def logout(base_url: str, credential: Credential) -> None:
    """``POST /auth/logout`` with the credential (and, for a cookie, the CSRF proof a
    page of the server would send)."""
    headers = dict(credential.headers)
    if credential.csrf_token is not None:
        headers |= {"X-CSRF-Token": credential.csrf_token, "Origin": base_url}
    answer = httpx.post(f"{base_url}/auth/logout", headers=headers, timeout=_TIMEOUT)
    if answer.status_code != 204:
        raise RuntimeError(f"logging out answered {answer.status_code}: {answer.text[:200]}")
