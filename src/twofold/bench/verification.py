"""In-process JWT verification: Twofold against the least any verifier must do, same run.

One speed target per algorithm, each a ratio of two p50 latencies measured together:

- **HS256**: :meth:`AccessTokenCodec.verify` against a *minimal HMAC-plus-JSON check*
  (split, ``hmac.new(...).digest()`` and ``hmac.compare_digest``, base64url-decode,
  ``json.loads``, an ``exp`` check). It is honest -- it rejects a forged or expired token --
  but checks nothing else: no header, no strict base64 or JSON, no ``iss``/``aud``.
  Limit 1.5x.
- **ES256, EdDSA, RS256**: the codec against the raw ``cryptography`` verify of the same
  signing input and signature bytes, already decoded, with prebuilt padding/hash objects.
  For ES256 the raw side includes turning the JWS ``r || s`` signature into DER, which any
  JWS verifier on ``cryptography`` must do. Limit 1.15x.

The machines this runs on are shared and noisy, so the two sides are interleaved: each
round alternates batches of ours and of the baseline (which goes first alternates by round),
a round's ratio is its median ours over its median baseline, and the reported ratio is the
median of the rounds' ratios. A load spike therefore hits both sides of a round. Latency
samples are the mean of a batch of :data:`BATCH` calls, because a timer read per call would
cost a measurable share of a 10 µs verification; their p99 is thus a p99 of batch means.
Verified tokens are never cached -- every call checks the signature and all claims.

Expect RS256 (and usually ES256) to miss 1.15x: the baseline gets its signature already
decoded, while any JWT verifier must still split the token, base64url-decode the signature
and payload and parse the JSON. On the 2-core benchmark machine those steps alone, done the
lax stdlib way with no claim checks, measured 1.57x a 40 µs RSA verify and 1.27x an ECDSA
one: the crypto flushes the CPU caches, so the Python work after it runs cold.
"""

from __future__ import annotations

import base64
import gc
import hmac
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from twofold.bench.stats import Summary, summarize
from twofold.bench.targets import RATIO, Target
from twofold.clock import SystemClock
from twofold.jose.jwt import AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import ALGORITHMS, Algorithm, JoseKey

__all__ = ["BATCH", "LIMITS", "Verification", "baseline", "measure", "targets"]

#: Calls timed together per latency sample.
BATCH = 10
#: The most ours may cost, as a multiple of the baseline, per algorithm (issue 7).
LIMITS: dict[Algorithm, float] = {"HS256": 1.5, "ES256": 1.15, "EdDSA": 1.15, "RS256": 1.15}

_BASELINE_NAMES: dict[Algorithm, str] = {
    "HS256": "minimal HMAC-plus-JSON check",
    "ES256": "raw cryptography ECDSA P-256 verify (with r||s to DER)",
    "EdDSA": "raw cryptography Ed25519 verify",
    "RS256": "raw cryptography RSA PKCS1v15/SHA-256 verify",
}
# Seconds spent timing each algorithm (both sides together), and rounds per algorithm.
_BUDGET = {True: 0.25, False: 4.0}
_ROUNDS = {True: 7, False: 15}

_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)


@dataclass(frozen=True)
class Verification:
    """Per-verify latency (µs) of Twofold and of the baseline, and their ratio."""

    alg: Algorithm
    ours: Summary
    baseline: Summary
    baseline_name: str
    #: Median over rounds of (ours p50 / baseline p50) within the round.
    ratio: float
    #: PyJWT's ``jwt.decode`` of the same token (issuer, audience and expiry checked) against
    #: the same baseline, measured the same way -- what a common Python stack pays; None
    #: when PyJWT is not installed.
    pyjwt_ratio: float | None = None


@dataclass(frozen=True)
class _Fixture:
    key: JoseKey
    codec: AccessTokenCodec
    token: str


def _fixture(alg: Algorithm) -> _Fixture:
    """A real key and a token with typical claims (roles, sid), issued by the codec."""
    key = JoseKey.generate(alg)
    codec = AccessTokenCodec(
        KeyRing([key], signing_kid=key.kid),
        TokenPolicy(issuer="https://auth.example.com", audience="https://api.example.com"),
        SystemClock(),
    )
    token, _ = codec.issue(
        "user-8f14e45fceea167a", ("user", "editor"), sid="Qm9va3MgYXJlIGdyZWF0IGZyaWVuZHM"
    )
    return _Fixture(key, codec, token)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def baseline(key: JoseKey, token: str) -> Callable[[], object]:
    """The baseline for ``key``'s algorithm, bound to ``token``; it raises for a bad one.

    For HS256 it is the whole minimal check. For the others it is only the signature check
    of the token's already-decoded bytes, so it raises ``InvalidSignature`` for a forgery.
    """
    material = key.to_material()
    encoded_header, encoded_payload, encoded_signature = token.split(".")
    if key.alg == "HS256":
        return _hmac_check(material, token)
    public: Any = serialization.load_pem_private_key(material, password=None).public_key()
    signing_input = f"{encoded_header}.{encoded_payload}".encode()
    signature = _b64decode(encoded_signature)
    if key.alg == "ES256":
        assert isinstance(public, ec.EllipticCurvePublicKey)
        r, s = signature[:32], signature[32:]

        def verify_es256() -> None:
            der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
            public.verify(der, signing_input, _ECDSA_SHA256)

        return verify_es256
    if key.alg == "EdDSA":
        assert isinstance(public, ed25519.Ed25519PublicKey)
        return lambda: public.verify(signature, signing_input)
    assert isinstance(public, rsa.RSAPublicKey)
    return lambda: public.verify(signature, signing_input, _PKCS1V15, _SHA256)


def _hmac_check(secret: bytes, token: str) -> Callable[[], object]:
    def check() -> dict[str, Any]:
        encoded_header, encoded_payload, encoded_signature = token.split(".")
        mac = hmac.new(secret, f"{encoded_header}.{encoded_payload}".encode(), "sha256").digest()
        if not hmac.compare_digest(mac, _b64decode(encoded_signature)):
            raise InvalidSignature
        claims = json.loads(_b64decode(encoded_payload))
        if not isinstance(claims, dict) or not claims["exp"] > time.time():
            raise ValueError("expired")
        return claims

    return check


def _pyjwt_decode(fixture: _Fixture) -> Callable[[], object] | None:
    """PyJWT verifying ``fixture.token`` as a resource server would, or None without PyJWT."""
    try:
        import jwt  # optional: only the reference figure needs it
    except ImportError:
        return None
    material = fixture.key.to_material()
    key: Any = (
        material
        if fixture.key.alg == "HS256"
        else serialization.load_pem_private_key(material, password=None).public_key()
    )
    policy = fixture.codec.policy
    algorithms = [fixture.key.alg]
    token = fixture.token

    def decode() -> object:
        return jwt.decode(
            token, key, algorithms=algorithms, audience=policy.audience, issuer=policy.issuer
        )

    return decode


def _per_call_us(fn: Callable[[], object], calls: int) -> float:
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(calls):
        fn()
    return (clock() - start) / calls / 1000


def _interleaved(
    ours: Callable[[], object],
    base: Callable[[], object],
    *,
    rounds: int,
    budget: float,
) -> tuple[list[float], list[float], list[float]]:
    """Latency samples (µs per call) of both sides and the per-round ratios."""
    for fn in (ours, base):  # warm up caches and the interpreter's specialisations
        _per_call_us(fn, BATCH * 3)
    cost = _per_call_us(ours, BATCH * 3) + _per_call_us(base, BATCH * 3)
    batches = max(3, int(budget * 1e6 / rounds / (BATCH * cost)))
    ours_samples: list[float] = []
    base_samples: list[float] = []
    ratios: list[float] = []
    for index in range(rounds):
        pair = (ours, base) if index % 2 == 0 else (base, ours)
        round_samples: dict[Callable[[], object], list[float]] = {ours: [], base: []}
        gc.collect()
        for _ in range(batches):
            for fn in pair:
                round_samples[fn].append(_per_call_us(fn, BATCH))
        ratios.append(
            statistics.median(round_samples[ours]) / statistics.median(round_samples[base])
        )
        ours_samples += round_samples[ours]
        base_samples += round_samples[base]
    return ours_samples, base_samples, ratios


def measure(alg: Algorithm, *, quick: bool) -> Verification:
    """Time Twofold's verification of one real token against the baseline for ``alg``."""
    fixture = _fixture(alg)
    token, codec = fixture.token, fixture.codec
    base = baseline(fixture.key, token)
    codec.verify(token)  # both must accept the token before either is timed
    base()
    ours_samples, base_samples, ratios = _interleaved(
        lambda: codec.verify(token), base, rounds=_ROUNDS[quick], budget=_BUDGET[quick]
    )
    reference = _pyjwt_decode(fixture)
    pyjwt_ratio = None
    if reference is not None:
        reference()
        *_, reference_ratios = _interleaved(
            reference, base, rounds=_ROUNDS[quick], budget=_BUDGET[quick]
        )
        pyjwt_ratio = statistics.median(reference_ratios)
    return Verification(
        alg=alg,
        ours=summarize(ours_samples),
        baseline=summarize(base_samples),
        baseline_name=_BASELINE_NAMES[alg],
        ratio=statistics.median(ratios),
        pyjwt_ratio=pyjwt_ratio,
    )


def targets(*, quick: bool) -> list[Target]:
    """One ratio target per algorithm: ours / baseline at p50, at most :data:`LIMITS`."""
    found = []
    for alg in ALGORITHMS:
        result = measure(alg, quick=quick)
        found.append(
            Target(
                name=f"{alg} verification vs {result.baseline_name}",
                measured=result.ratio,
                limit=LIMITS[alg],
                direction="at_most",
                unit=RATIO,
                detail=(
                    f"ours {result.ours.p50:.1f} µs, baseline {result.baseline.p50:.1f} µs "
                    f"(p50; p99 {result.ours.p99:.1f} / {result.baseline.p99:.1f} µs)"
                    + (
                        ""
                        if result.pyjwt_ratio is None
                        else f"; PyJWT {result.pyjwt_ratio:.2f}{RATIO} the same baseline"
                    )
                ),
            )
        )
    return found
