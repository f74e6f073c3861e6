"""JWT access tokens (RFC 9068) on top of compact JWS.

An access token is a JWS with ``typ: at+jwt`` whose payload is a JSON object of claims.
Refresh tokens are opaque and use another format entirely, and this verifier requires
``at+jwt``, so neither can stand in for the other (SECURITY.md T6). Claims are read only
after :func:`twofold.jose.jws.verify` has checked the signature (T1), then checked strictly:
``exp`` is required, times are finite numbers compared with a small leeway, and ``iss`` and
``aud`` must match exactly (T5).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

from twofold.clock import Clock
from twofold.errors import ConfigurationError, InvalidToken
from twofold.jose import jws
from twofold.jose.keyring import KeyRing

__all__ = ["ACCESS_TOKEN_TYPE", "AccessClaims", "AccessTokenCodec", "TokenPolicy"]

#: The JWS ``typ`` of an access token (RFC 9068 section 2.1).
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret

_REGISTERED = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "client_id",
        "scope",
        "roles",
        "auth_time",
        "sid",
    }
)


@dataclass(frozen=True)
class TokenPolicy:
    """Who issues access tokens, for whom, and how long they live (seconds)."""

    issuer: str
    audience: str
    lifetime: float = 300.0
    leeway: float = 30.0
    #: RFC 9068 requires ``client_id``; tokens Twofold issues for itself name this client.
    client_id: str = "twofold"

    def __post_init__(self) -> None:
        for name in ("issuer", "audience", "client_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"TokenPolicy.{name} must be a non-empty string.")
        if not 1 <= self.lifetime <= 86_400:
            raise ConfigurationError("TokenPolicy.lifetime must be 1 second to 1 day.")
        if not 0 <= self.leeway <= 300:
            raise ConfigurationError("TokenPolicy.leeway must be 0 to 300 seconds.")


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token.

    ``aud`` is the audience the token was accepted for; ``extra`` holds unregistered claims.
    """

    sub: str
    iss: str
    aud: str
    exp: float
    iat: float
    nbf: float | None
    jti: str
    roles: tuple[str, ...]
    scope: str | None
    client_id: str
    auth_time: float | None = None
    #: The login the token belongs to: its refresh-token family, when it has one.
    sid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AccessTokenCodec:
    """Issues and verifies access tokens with one key ring, policy and clock."""

    __slots__ = ("_clock", "_jws", "_keyring", "_policy")

    def __init__(self, keyring: KeyRing, policy: TokenPolicy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self.keyring = keyring

    @property
    def policy(self) -> TokenPolicy:
        return self._policy

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    @keyring.setter
    def keyring(self, keyring: KeyRing) -> None:
        """Swap the key ring (rotation): a new verifier, so no memo of a dropped key
        survives."""
        self._keyring = keyring
        self._jws = jws.JwsVerifier(keyring, typ=ACCESS_TOKEN_TYPE)

    def issue(
        self,
        sub: str,
        roles: Sequence[str],
        *,
        scope: str | None = None,
        audience: str | None = None,
        lifetime: float | None = None,
        extra: Mapping[str, Any] | None = None,
        auth_time: float | None = None,
        sid: str | None = None,
        jti: str | None = None,
        not_before: float | None = None,
        client_id: str | None = None,
    ) -> tuple[str, AccessClaims]:
        """Sign a new access token with the ring's signing key; return it with its claims.

        ``auth_time`` is when the user last authenticated (RFC 9068 section 2.2.1). ``extra``
        adds unregistered claims; it may not override registered ones. ``jti`` defaults to
        128 random bits. ``not_before`` is the user's revocation cut-off: ``iat`` (whole
        seconds) is raised to it, so a token made in the second of a revocation is not
        taken for one made before it. ``client_id`` defaults to the policy's (Twofold's own).
        """
        policy = self._policy
        if not isinstance(sub, str) or not sub:
            raise ValueError("sub must be a non-empty string")
        if isinstance(roles, str) or not all(isinstance(role, str) for role in roles):
            raise ValueError("roles must be a sequence of strings")
        if scope is not None and not isinstance(scope, str):
            raise ValueError("scope must be a string")
        if audience is not None and (not isinstance(audience, str) or not audience):
            raise ValueError("audience must be a non-empty string")
        lifetime = policy.lifetime if lifetime is None else lifetime
        if not 1 <= lifetime <= policy.lifetime:
            raise ValueError("lifetime must be 1 second to the policy's lifetime")
        extra = dict(extra or {})
        if not _REGISTERED.isdisjoint(extra):
            raise ValueError("extra claims may not override registered claims")

        if sid is not None and (not isinstance(sid, str) or not sid):
            raise ValueError("sid must be a non-empty string")
        if jti is not None and (not isinstance(jti, str) or not jti):
            raise ValueError("jti must be a non-empty string")
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise ValueError("client_id must be a non-empty string")
        iat = int(self._clock.now())
        if not_before is not None:
            iat = max(iat, math.ceil(not_before))
        claims = AccessClaims(
            sub=sub,
            iss=policy.issuer,
            aud=policy.audience if audience is None else audience,
            exp=iat + int(lifetime),
            iat=iat,
            nbf=iat,
            jti=secrets.token_urlsafe(16) if jti is None else jti,
            roles=tuple(roles),
            scope=scope,
            client_id=policy.client_id if client_id is None else client_id,
            auth_time=None if auth_time is None else int(auth_time),
            sid=sid,
            extra=extra,
        )
        body: dict[str, Any] = {
            "iss": claims.iss,
            "sub": claims.sub,
            "aud": claims.aud,
            "exp": claims.exp,
            "iat": claims.iat,
            "nbf": claims.nbf,
            "jti": claims.jti,
            "client_id": claims.client_id,
            "roles": list(claims.roles),
        }
        if scope is not None:
            body["scope"] = scope
        if claims.auth_time is not None:
            body["auth_time"] = claims.auth_time
        if sid is not None:
            body["sid"] = sid
        body.update(extra)
        payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        token = jws.sign({"typ": ACCESS_TOKEN_TYPE}, payload, self._keyring.signing_key)
        return token, claims

    def verify(self, token: str, *, audience: str | None = None) -> AccessClaims:
        """Verify an access token and return its claims; ``InvalidToken`` if anything is off.

        ``audience`` overrides the policy's audience for this check. Reasons beyond those of
        :func:`twofold.jose.jws.verify`: ``expired``, ``not_yet_valid``, ``wrong_issuer``,
        ``wrong_audience``, ``missing_claim`` and ``malformed``.
        """
        claims = jws.parse_json_object(self._jws.verify_payload(token))  # only now (T1)
        # The checks below run on every authenticated request, so they are written in line,
        # with a fast path for the int dates and string identifiers Twofold issues: after an
        # ECDSA or Ed25519 verify has flushed the CPU caches, every extra call and look-up
        # here costs several times what it does in a tight loop.
        get = claims.get
        exp: Any = get("exp")
        iat: Any = get("iat")
        nbf: Any = get("nbf")
        auth_time: Any = get("auth_time")
        if (
            type(exp) is not int
            or type(iat) is not int
            or (nbf is not None and type(nbf) is not int)
            or (auth_time is not None and type(auth_time) is not int)
        ):  # the dates Twofold issues are ints, so anything else takes the full check
            _check_numeric_dates(exp, iat, nbf, auth_time)
        policy = self._policy
        now = self._clock.now()
        leeway = policy.leeway
        if exp <= now - leeway:
            raise InvalidToken("expired")
        if exp - iat > policy.lifetime:
            # Issued under a longer lifetime than this server's (a setting lowered since):
            # revocations are kept only as long as this server's lifetime, so refuse it.
            raise InvalidToken("lifetime_exceeded")
        if iat > now + leeway or (nbf is not None and nbf > now + leeway):
            raise InvalidToken("not_yet_valid")
        iss = get("iss")
        if iss is None:
            raise InvalidToken("missing_claim")
        if iss != policy.issuer:
            raise InvalidToken("wrong_issuer")
        expected = policy.audience if audience is None else audience
        aud = get("aud")
        if type(aud) is not str or aud != expected:
            _check_audience(aud, expected)
        # sub, jti and client_id: required non-empty strings (RFC 9068 section 2.2).
        sub, jti, client_id = get("sub"), get("jti"), get("client_id")
        if not (type(sub) is type(jti) is type(client_id) is str and sub and jti and client_id):
            for value in (sub, jti, client_id):
                if type(value) is not str or not value:
                    raise InvalidToken("missing_claim" if value is None else "malformed")

        roles = get("roles")
        if roles is None:
            roles = ()
        elif type(roles) is not list:
            raise InvalidToken("malformed")
        for role in roles:
            if type(role) is not str:
                raise InvalidToken("malformed")
        scope = get("scope")
        if scope is not None and type(scope) is not str:
            raise InvalidToken("malformed")
        sid = get("sid")
        if sid is not None and (type(sid) is not str or not sid):
            raise InvalidToken("malformed")
        extra_names = () if _REGISTERED.issuperset(claims) else claims.keys() - _REGISTERED
        return _verified_claims(
            {
                "sub": sub,
                "iss": iss,
                "aud": expected,
                "exp": exp,
                "iat": iat,
                "nbf": nbf,
                "jti": jti,
                "roles": tuple(roles),
                "scope": scope,
                "client_id": client_id,
                "auth_time": auth_time,
                "sid": sid,
                "extra": {name: claims[name] for name in extra_names} if extra_names else {},
            }
        )


def _verified_claims(values: dict[str, Any]) -> AccessClaims:
    # A frozen dataclass's __init__ sets each field through object.__setattr__, which costs
    # about 2 us for these twelve fields -- a fifth of the HS256 verification budget. The
    # values are already checked, so fill the instance dict directly; the test suite pins that
    # this yields an object equal to the one the normal constructor builds.
    claims = object.__new__(AccessClaims)
    claims.__dict__.update(values)
    return claims


def _check_numeric_dates(*values: Any) -> None:
    """``exp``, ``iat``, ``nbf``, ``auth_time``: each an int or a finite float (T5).

    ``exp`` and ``iat`` are required (RFC 9068 section 2.2). Bools, strings, NaN and the
    infinity that ``1e400`` parses to are malformed; a malformed date is reported before a
    missing one.
    """
    for value in values:
        kind = type(value)
        if kind is not int and value is not None and not (kind is float and isfinite(value)):
            raise InvalidToken("malformed")
    if values[0] is None or values[1] is None:
        raise InvalidToken("missing_claim")


def _check_audience(aud: object, expected: str) -> None:
    if aud is None:
        raise InvalidToken("missing_claim")
    if type(aud) is str:
        if aud != expected:
            raise InvalidToken("wrong_audience")
        return
    if type(aud) is not list or not all(type(item) is str for item in aud):
        raise InvalidToken("malformed")
    if expected not in aud:
        raise InvalidToken("wrong_audience")
