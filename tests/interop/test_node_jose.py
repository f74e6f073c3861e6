"""Interoperability with Node.js: the npm ``jose`` package, configured from the JWKS endpoint
alone, accepts Twofold's access tokens and refuses forged ones — proof that the tokens are
standard (RFC 7519, RFC 9068), not merely accepted by Twofold's own verifier.

Outside CI a missing Node.js (or ``npm ci`` not run) skips these tests; with ``CI=true`` it
fails them (``scripts/install-services`` installs both).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import LiveServer, start_server, stop_server
from tests.services import require
from twofold.clock import FrozenClock

NODE_PROJECT = Path(__file__).parent / "node"
# Per run of verify.mjs: a start of Node.js and one JWKS fetch on loopback.
TIMEOUT = 30


@dataclass(frozen=True)
class Verdict:
    """What verify.mjs answered: exit status, and stdout (the payload, or jose's error code)."""

    status: int
    out: str
    err: str


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with the jose package installed beside verify.mjs."""
    found = require("Node.js (node)", shutil.which("node"))
    jose = NODE_PROJECT / "node_modules" / "jose"
    require(
        "npm's jose package (tests/interop/node/node_modules)", str(jose) if jose.is_dir() else None
    )
    return found


@dataclass(frozen=True)
class Issued:
    """A server, and an access token it issued by /auth/login to a new account."""

    server: LiveServer
    user_id: str
    token: str
    expires_in: int


@pytest.fixture(scope="module", params=["ES256", "RS256", "EdDSA"])
def issued(
    request: pytest.FixtureRequest, live: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Issued]:
    """Each asymmetric algorithm in turn: the run's shared server for its own (the default),
    one of the module's own for the others. (HS256 publishes no key: nothing outside Twofold
    can verify its tokens.) One login per server: the tests only read the token."""
    algorithm: str = request.param
    running = None
    server = live
    if live.settings.signing_algorithm != algorithm:
        server, running = start_server(
            tmp_path_factory.mktemp(algorithm),
            FrozenClock(time.time()),
            signing_algorithm=algorithm,
        )
    try:
        email = server.register()
        user = server.call(server.runtime.admin.find_user(email))
        pair = server.token_pair(email)
        yield Issued(server, user.id, pair["access_token"], int(pair["expires_in"]))
    finally:
        if running is not None:
            stop_server(running)


def verify(node: str, server: LiveServer, token: str, *, audience: str | None = None) -> Verdict:
    """Run verify.mjs against ``server``'s JWKS, its clock standing in for the wall clock."""
    done = subprocess.run(
        [
            node,
            str(NODE_PROJECT / "verify.mjs"),
            f"{server.url}/.well-known/jwks.json",
            server.settings.effective_issuer,
            audience or server.settings.audience,
            token,
            str(server.clock.now()),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Verdict(done.returncode, done.stdout.strip(), done.stderr.strip())


def test_real_token_verifies(node: str, issued: Issued) -> None:
    """jose verifies a token from /auth/login and returns its claims unchanged."""
    server, token = issued.server, issued.token

    verdict = verify(node, server, token)

    assert verdict.status == 0, verdict
    payload = json.loads(verdict.out)
    assert payload == pyjwt.decode(token, options={"verify_signature": False})
    assert payload["sub"] == issued.user_id
    assert payload["iss"] == server.settings.effective_issuer
    assert payload["aud"] == server.settings.audience
    assert abs(payload["iat"] - server.clock.now()) <= 1
    assert payload["exp"] == payload["iat"] + issued.expires_in
    assert pyjwt.get_unverified_header(token)["alg"] == server.settings.signing_algorithm


def test_resigned_claims_verify(node: str, issued: Issued) -> None:
    """The control for the claim forgeries below: the same claims re-signed by PyJWT with the
    server's key verify, so those forgeries fail for their claim and nothing else."""
    server, token = issued.server, issued.token

    verdict = verify(node, server, _resign(server, token))

    assert verdict.status == 0, verdict
    assert json.loads(verdict.out) == _claims(token)


# --- forgeries: each takes the server and a genuine token and returns an attack token ---


def _tampered(server: LiveServer, token: str) -> str:
    """Another subject in the payload; the genuine header and signature kept."""
    header, _, signature = token.split(".")
    payload = _b64(json.dumps({**_claims(token), "sub": "someone-else"}).encode())
    return f"{header}.{payload}.{signature}"


def _other_key(server: LiveServer, token: str) -> str:
    """Signed by a key of the same algorithm that the attacker made, under the genuine kid."""
    algorithm = server.settings.signing_algorithm
    private: Any = {
        "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "EdDSA": ed25519.Ed25519PrivateKey.generate,
    }[algorithm]()
    return pyjwt.encode(_claims(token), private, algorithm=algorithm, headers=_headers(token))


def _alg_none(server: LiveServer, token: str) -> str:
    """`alg: none` and no signature (RFC 7518 section 3.6's unsecured JWS)."""
    header = {**pyjwt.get_unverified_header(token), "alg": "none"}
    _, payload, _ = token.split(".")
    return f"{_b64(json.dumps(header).encode())}.{payload}."


def _hmac_with_public_key(server: LiveServer, token: str) -> str:
    """`alg: HS256` keyed with the published public key's PEM: the key-confusion attack on
    verifiers that take the algorithm from the token."""
    header = {**pyjwt.get_unverified_header(token), "alg": "HS256"}
    with server.client() as client:
        jwks = client.get("/.well-known/jwks.json").json()
    jwk = next(jwk for jwk in jwks["keys"] if jwk["kid"] == header["kid"])
    public = pyjwt.PyJWK(jwk).key
    secret = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, payload, _ = token.split(".")
    signing_input = f"{_b64(json.dumps(header).encode())}.{payload}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _expired(server: LiveServer, token: str) -> str:
    """Signed with the server's own key, expired a minute ago (by the server's clock)."""
    now = int(server.clock.now())
    return _resign(server, token, iat=now - 360, nbf=now - 360, exp=now - 60)


def _wrong_audience(server: LiveServer, token: str) -> str:
    """Signed with the server's own key, for another service."""
    return _resign(server, token, aud="https://another-service.example.test")


@dataclass(frozen=True)
class Forgery:
    """An attack token's maker, and the jose error code that must refuse it."""

    make: Callable[[LiveServer, str], str]
    code: str
    # A fragment of jose's message, where the code alone does not say which check failed.
    detail: str = ""


FORGERIES = {
    "payload-tampered": Forgery(_tampered, "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"),
    "other-key-same-kid": Forgery(_other_key, "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"),
    "alg-none": Forgery(_alg_none, "ERR_JOSE_ALG_NOT_ALLOWED"),
    "hs256-public-key": Forgery(_hmac_with_public_key, "ERR_JOSE_ALG_NOT_ALLOWED"),
    "expired": Forgery(_expired, "ERR_JWT_EXPIRED", '"exp"'),
    "wrong-audience": Forgery(_wrong_audience, "ERR_JWT_CLAIM_VALIDATION_FAILED", '"aud"'),
}


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_token_rejected(node: str, issued: Issued, forgery: Forgery) -> None:
    """jose refuses each forgery with the error code for the check it fails."""
    server, token = issued.server, issued.token
    forged = forgery.make(server, token)
    assert forged != token

    verdict = verify(node, server, forged)

    assert verdict.status == 1, verdict
    assert verdict.out == forgery.code, verdict
    assert forgery.detail in verdict.err, verdict


def test_wrong_verifier_audience_rejected(node: str, issued: Issued) -> None:
    """A genuine token presented to a service with another audience is refused there."""
    verdict = verify(
        node, issued.server, issued.token, audience="https://another-service.example.test"
    )

    assert verdict.status == 1, verdict
    assert verdict.out == "ERR_JWT_CLAIM_VALIDATION_FAILED", verdict
    assert '"aud"' in verdict.err, verdict


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = pyjwt.decode(token, options={"verify_signature": False})
    return claims


def _headers(token: str) -> dict[str, Any]:
    """The genuine kid and typ (PyJWT writes alg itself)."""
    header = pyjwt.get_unverified_header(token)
    return {"kid": header["kid"], "typ": header["typ"]}


def _resign(server: LiveServer, token: str, **changes: Any) -> str:
    """``token``'s claims with ``changes``, signed by PyJWT with the key that signed it."""
    kid = pyjwt.get_unverified_header(token)["kid"]
    key = server.runtime.keyring.get(kid)
    assert key is not None
    return pyjwt.encode(
        {**_claims(token), **changes},
        key.to_material(),
        algorithm=server.settings.signing_algorithm,
        headers=_headers(token),
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
