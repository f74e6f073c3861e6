"""Request and response bodies of the JSON API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


RefreshTransport = Annotated[
    Literal["body", "cookie"],
    Field(
        description="JWT mode: `cookie` puts the refresh token in an HttpOnly cookie scoped "
        "to /auth/refresh (browsers) instead of the body (API clients).",
    ),
]


class LoginIn(Strict):
    email: str = Email
    password: str = Password
    mode: Literal["session", "jwt"] = "session"
    refresh_transport: RefreshTransport = "body"

    @model_validator(mode="after")
    def _transport_needs_jwt(self) -> LoginIn:
        if self.mode == "session" and self.refresh_transport != "body":
            raise ValueError("refresh_transport applies to mode jwt only")
        return self


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
    refresh_token: str | None = Field(
        default=None, description="Absent when it was set as a cookie instead."
    )


class RefreshIn(Strict):
    refresh_token: str | None = Field(
        default=None,
        # Generous, like the Bearer limit: an access token sent here by mistake (a JWT is
        # far longer than a refresh token) gets invalid_grant, not a schema error.
        max_length=8192,
        description="Omit it to use the refresh cookie (browsers).",
    )


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
    refresh_transport: RefreshTransport = "body"


class PasswordChangeOut(BaseModel):
    csrf_token: str | None = Field(
        default=None, description="The rotated session's new CSRF token (session mode)."
    )
    access_token: str | None = Field(default=None, description="JWT mode: a new pair.")
    token_type: Literal["Bearer"] | None = None
    expires_in: int | None = None
    refresh_token: str | None = None


class EmailChangeIn(Strict):
    current_password: str = Password
    email: str = Email


class EmailChangeOut(BaseModel):
    email: str = Field(description="The new address, normalised.")
    csrf_token: str | None = Field(
        default=None, description="The rotated session's new CSRF token (session mode)."
    )


class DeviceOut(BaseModel):
    id: str = Field(description="Handle for DELETE; not a credential.")
    kind: Literal["session", "token_family"]
    created_at: str
    last_seen_at: str
    expires_at: str
    client_address: str | None
    user_agent: str | None
    current: bool


class DevicesOut(BaseModel):
    sessions: list[DeviceOut]


class EndedOut(BaseModel):
    ended: int


class ExchangeIn(Strict):
    audience: str = Field(
        min_length=1, max_length=255, description="One of the configured `token_audiences`."
    )
    scope: str | None = Field(
        default=None,
        max_length=2048,
        description="Space-separated scopes, a subset of the caller's; omitted: all of them.",
    )


class ExchangeOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name)
    expires_in: int
    scope: str = Field(description="The granted scopes, space-separated.")
    audience: str


class ScopedTokenIn(Strict):
    name: str = Field(min_length=1, max_length=64, description="What the token is for.")
    scopes: list[str] = Field(
        min_length=1, max_length=64, description="A subset of the configured scopes."
    )
    expires_in: int | None = Field(
        default=None,
        description="Seconds until it expires, at most `scoped_token_max_lifetime` (the default).",
    )


class ScopedTokenOut(BaseModel):
    id: str = Field(description="Handle for DELETE, and the `sid` of its access tokens.")
    name: str
    scopes: list[str]
    created_at: str
    expires_at: str
    last_used_at: str | None


class NewScopedTokenOut(ScopedTokenOut):
    token: str = Field(
        description="`<id>.<secret>` for `Authorization: Bearer` at POST /auth/token: "
        "shown this once, never again."
    )


class ScopedTokensOut(BaseModel):
    tokens: list[ScopedTokenOut]


class AdminUserOut(UserOut):
    locked: bool
    created_at: str


class AdminUsersOut(BaseModel):
    users: list[AdminUserOut]


class RolesIn(Strict):
    roles: list[str] = Field(max_length=16)


class LiveDeviceOut(DeviceOut):
    user_id: str
    email: str | None


class LiveDevicesOut(BaseModel):
    sessions: list[LiveDeviceOut]


class RotateIn(Strict):
    compromised: bool = False


class RotationOut(BaseModel):
    kid: str
    alg: str
    previous: list[str]
    compromised: bool


class KeyOut(BaseModel):
    kid: str
    alg: str
    state: Literal["active", "verify", "retired"]
    created_at: str
    retire_after: str | None


class KeysOut(BaseModel):
    keys: list[KeyOut]


class AuditEventOut(BaseModel):
    seq: int
    at: str
    kind: str
    user_id: str | None
    actor_id: str | None
    client_address: str | None
    detail: dict[str, Any]


class AuditPageOut(BaseModel):
    events: list[AuditEventOut]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page."
    )


class IntrospectionOut(BaseModel):
    """RFC 7662 section 2.2; only `active` when the token is not active."""

    model_config = ConfigDict(extra="allow")
    active: bool


class ErrorOut(BaseModel):
    error: str
    detail: str


class JwksOut(BaseModel):
    keys: list[dict[str, str]]


class DiscoveryOut(BaseModel):
    issuer: str
    jwks_uri: str
    introspection_endpoint: str
    introspection_endpoint_auth_methods_supported: list[str]
    revocation_endpoint: str
    revocation_endpoint_auth_methods_supported: list[str]
    response_types_supported: list[str]
    access_token_signing_alg_values_supported: list[str]
    twofold_login_endpoint: str
    twofold_refresh_endpoint: str
    twofold_sessions_endpoint: str
    twofold_revocation_feed_endpoint: str


class HealthOut(BaseModel):
    status: str
