"""Request and response bodies of the JSON API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Generous bounds: the real rules are the core's; these only keep junk out cheaply.
Email = Field(min_length=1, max_length=254)
Password = Field(min_length=1, max_length=1024)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RegisterIn(Strict):
    email: str = Email
    password: str = Password


class RegisterOut(BaseModel):
    email: str
    status: Literal["accepted"] = "accepted"


class LoginIn(Strict):
    email: str = Email
    password: str = Password
    mode: Literal["session", "jwt"] = "session"


class UserOut(BaseModel):
    id: str
    email: str
    roles: list[str]


class SessionLoginOut(BaseModel):
    user: UserOut
    csrf_token: str
    expires_at: str = Field(description="Absolute expiry of the session, RFC 3339 UTC.")


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name)
    expires_in: int


class AuthInfo(BaseModel):
    mode: Literal["session", "jwt"]
    expires_at: str
    csrf_token: str | None = Field(default=None, description="Session mode only.")
    scope: str | None = Field(default=None, description="JWT mode only.")


class MeOut(UserOut):
    auth: AuthInfo


class PasswordChangeIn(Strict):
    current_password: str = Password
    new_password: str = Password


class PasswordChangeOut(BaseModel):
    csrf_token: str | None = Field(
        default=None, description="The rotated session's new CSRF token (session mode)."
    )


class ErrorOut(BaseModel):
    error: str
    detail: str


class JwksOut(BaseModel):
    keys: list[dict[str, str]]


class HealthOut(BaseModel):
    status: str
