"""Compact JWS: signing, and the attack catalogue against strict verification (T1-T3, T7)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.jose.forge import at_header, sign_raw
from twofold.errors import InvalidToken
from twofold.jose import jws
from twofold.jose.b64 import b64url_decode, b64url_encode
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import Algorithm, JoseKey

TYP = "at+jwt"


def _reason(token: object, ring: KeyRing, typ: str | None = TYP) -> str:
    with pytest.raises(InvalidToken) as caught:
        jws.verify(token, ring, typ=typ)  # type: ignore[arg-type]
    return caught.value.reason


def _segments(token: str) -> list[str]:
    return token.split(".")


def test_sign_and_verify(key: JoseKey, ring: KeyRing) -> None:
    """The header carries the key's alg and kid plus the caller's typ; the payload round-trips."""
    token = jws.sign({"typ": TYP}, b"\x00payload\xff", key)
    header, payload = jws.verify(token, ring, typ=TYP)
    assert header == {"alg": key.alg, "kid": key.kid, "typ": TYP}
    assert payload == b"\x00payload\xff"


@pytest.mark.parametrize(
    "extra",
    [{"alg": "none"}, {"kid": "other"}, {"jku": "https://x"}, {"crit": ["exp"]}, {"b64": False}],
    ids=["alg", "kid", "jku", "crit", "b64"],
)
def test_sign_refuses_to_set_reserved_headers(keys: dict[Algorithm, JoseKey], extra: Any) -> None:
    """alg and kid come from the key; headers the verifier rejects are never emitted."""
    with pytest.raises(ValueError, match="header members"):
        jws.sign(extra, b"{}", keys["HS256"])


def test_sign_refuses_a_token_too_large_to_verify(keys: dict[Algorithm, JoseKey]) -> None:
    """We never issue a token our own verifier would reject as oversized."""
    with pytest.raises(ValueError, match="too large"):
        jws.sign({"typ": TYP}, b"x" * jws.MAX_TOKEN_LENGTH, keys["HS256"])


@pytest.mark.parametrize(
    "token_typ",
    ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"],
    ids=["exact", "upper", "full-media-type", "mixed-case"],
)
def test_typ_is_compared_as_a_media_type(keys: dict[Algorithm, JoseKey], token_typ: str) -> None:
    """typ matches case-insensitively, with "application/" implied (RFC 7515 4.1.9, RFC 8725)."""
    key = keys["EdDSA"]
    token = sign_raw(key, at_header(key, typ=token_typ), b"{}")
    jws.verify(token, KeyRing([key]), typ="at+jwt")
    jws.verify(token, KeyRing([key]), typ="application/AT+JWT")


@pytest.mark.parametrize(
    "token_typ",
    ["JWT", "jwt", "rt+jwt", "application/jwt", "at+jwt; charset=utf-8", None, 1, ["at+jwt"]],
    ids=["JWT", "jwt", "refresh", "application-jwt", "params", "missing", "number", "list"],
)
def test_wrong_or_missing_typ_is_rejected(
    keys: dict[Algorithm, JoseKey], token_typ: object
) -> None:
    """An access-token verifier requires typ at+jwt, so other JWTs cannot stand in (T6)."""
    key = keys["HS256"]
    header = {"alg": key.alg, "kid": key.kid}
    if token_typ is not None:
        header["typ"] = token_typ  # type: ignore[assignment]
    assert _reason(sign_raw(key, header, b"{}"), KeyRing([key])) == "wrong_type"


def test_typ_none_skips_the_check(keys: dict[Algorithm, JoseKey]) -> None:
    """typ=None is an explicit opt-out, used for the RFC vectors and nothing typed."""
    key = keys["HS256"]
    token = sign_raw(key, {"alg": key.alg, "kid": key.kid}, b"{}")
    assert jws.verify(token, KeyRing([key]), typ=None)[1] == b"{}"


# --- algorithm attacks (T2) -------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["", "c2ln"], ids=["empty-signature", "some-signature"])
def test_alg_none_is_rejected(key: JoseKey, ring: KeyRing, signature: str) -> None:
    """alg "none" never verifies, with or without a signature segment."""
    header = b64url_encode(json.dumps(at_header(key, alg="none")).encode())
    token = f"{header}.{b64url_encode(b'{}')}.{signature}"
    assert _reason(token, ring) == "algorithm_mismatch"
    bare = b64url_encode(json.dumps({"alg": "none", "typ": TYP}).encode())
    assert _reason(f"{bare}.{b64url_encode(b'{}')}.{signature}", ring) == "unknown_key"


@pytest.mark.parametrize("victim", ["RS256", "ES256", "EdDSA"])
def test_public_key_as_hmac_secret_is_rejected(
    keys: dict[Algorithm, JoseKey], victim: Algorithm
) -> None:
    """Classic confusion: HS256 over the victim's public key PEM, with the victim's kid."""
    ring = KeyRing(keys.values())
    private: Any = serialization.load_pem_private_key(keys[victim].to_material(), password=None)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url_encode(json.dumps(at_header(keys[victim], alg="HS256")).encode())
    signing_input = f"{header}.{b64url_encode(b'{}')}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert _reason(f"{signing_input}.{b64url_encode(mac)}", ring) == "algorithm_mismatch"


@pytest.mark.parametrize(
    "claimed", ["HS256", "ES256", "EdDSA", "RS256", "PS256", "HS512", "", None, 0, ["HS256"]]
)
def test_header_alg_must_equal_the_key_alg(
    keys: dict[Algorithm, JoseKey], ring: KeyRing, key: JoseKey, claimed: object
) -> None:
    """The ring, not the token, decides the algorithm: any other alg value is rejected."""
    if claimed == key.alg:
        return
    header = at_header(key, alg=claimed)
    if claimed is None:
        del header["alg"]
    assert _reason(sign_raw(key, header, b"{}"), ring) == "algorithm_mismatch"


# --- key selection attacks (T3) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kid",
    ["unknown", "../../etc/passwd", "/dev/null", "http://evil.example/key", "' OR '1'='1", ""],
    ids=["unknown", "path-traversal", "device", "url", "sql", "empty"],
)
def test_kid_not_in_ring_is_unknown(key: JoseKey, ring: KeyRing, kid: str) -> None:
    """A kid is only a table look-up; anything not configured is unknown_key."""
    assert _reason(sign_raw(key, at_header(key, kid=kid), b"{}"), ring) == "unknown_key"


def test_missing_or_non_string_kid(key: JoseKey, ring: KeyRing) -> None:
    """kid is required, and must be a string."""
    header = at_header(key)
    del header["kid"]
    assert _reason(sign_raw(key, header, b"{}"), ring) == "unknown_key"
    for kid in (1, ["a"], {"a": 1}, True):
        assert _reason(sign_raw(key, at_header(key, kid=kid), b"{}"), ring) == "malformed"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://evil.example/jwks.json"),
        ("x5u", "https://evil.example/cert.pem"),
        ("jwk", {"kty": "oct", "k": "c2VjcmV0"}),
        ("x5c", ["MIIB"]),
        ("crit", ["exp"]),
        ("crit", []),
        ("b64", False),
        ("b64", True),
    ],
    ids=["jku", "x5u", "jwk", "x5c", "crit", "crit-empty", "b64-false", "b64-true"],
)
def test_key_carrying_and_critical_headers_are_rejected(
    key: JoseKey, ring: KeyRing, name: str, value: object
) -> None:
    """Tokens never bring their own keys (T3) and no crit extension is understood (T7)."""
    token = sign_raw(key, at_header(key, **{name: value}), b"{}")
    assert _reason(token, ring) == "unsupported_header"


def test_foreign_key_is_rejected(
    key: JoseKey, ring: KeyRing, foreign_keys: dict[Algorithm, JoseKey]
) -> None:
    """Same algorithm, another key: unknown kid, or a bad signature under a borrowed kid."""
    foreign = foreign_keys[key.alg]
    assert _reason(sign_raw(foreign, at_header(foreign), b"{}"), ring) == "unknown_key"
    assert _reason(sign_raw(foreign, at_header(key), b"{}"), ring) == "bad_signature"


# --- tampering and malformed input (T1, T7) ---------------------------------------------------


def test_tampered_payload_or_signature_is_rejected(key: JoseKey, ring: KeyRing) -> None:
    """Any change to the signed bytes or the signature fails the signature check."""
    header, payload, signature = _segments(jws.sign({"typ": TYP}, b'{"sub":"alice"}', key))
    other = b64url_encode(b'{"sub":"admin"}')
    assert _reason(f"{header}.{other}.{signature}", ring) == "bad_signature"
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    assert _reason(f"{header}.{payload}.{b64url_encode(bytes(raw))}", ring) == "bad_signature"
    assert _reason(f"{header}.{payload}.{signature[:-4]}", ring) == "bad_signature"
    assert _reason(f"{header}.{payload}.", ring) == "bad_signature"


def test_signature_is_checked_before_the_payload_is_decoded(key: JoseKey, ring: KeyRing) -> None:
    """An undecodable payload under a bad signature reports bad_signature, not malformed (T1)."""
    header, _, signature = _segments(jws.sign({"typ": TYP}, b"{}", key))
    assert _reason(f"{header}.!!not-base64!!.{signature}", ring) == "bad_signature"


def test_non_canonical_payload_with_valid_signature_is_malformed(
    keys: dict[Algorithm, JoseKey],
) -> None:
    """A payload segment re-spelled with trailing bits set is refused even when signed."""
    key = keys["HS256"]
    header = b64url_encode(json.dumps(at_header(key)).encode())
    payload = b64url_encode(b"{}")  # "e30": 3 characters, 2 spare bits
    respelled = payload[:-1] + "1"  # "1" carries a set spare bit
    signing_input = f"{header}.{respelled}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    assert _reason(token, KeyRing([key])) == "malformed"


@pytest.mark.parametrize("count", [1, 2, 4, 5], ids=lambda n: f"{n}-segments")
def test_wrong_segment_count_is_malformed(key: JoseKey, ring: KeyRing, count: int) -> None:
    """A compact JWS has exactly three segments (JWE's five and fragments are refused)."""
    segments = _segments(jws.sign({"typ": TYP}, b"{}", key))
    token = ".".join((segments * 2)[:count])
    assert _reason(token, ring) == "malformed"


@pytest.mark.parametrize(
    "segment_fix",
    [
        lambda s: s + "==",
        lambda s: s[:-1] + "+",
        lambda s: s[:-1] + "!",
        lambda s: s + "A",
        lambda s: s[:5] + " " + s[5:],
        lambda s: s[:5] + "\u00e9" + s[5:],
    ],
    ids=["padding", "plus", "bang", "bad-length", "space", "non-ascii"],
)
@pytest.mark.parametrize("index", [0, 2], ids=["header", "signature"])
def test_bad_base64_is_rejected(
    keys: dict[Algorithm, JoseKey], segment_fix: Any, index: int
) -> None:
    """Padding, foreign characters and impossible lengths never verify."""
    key = keys["HS256"]
    segments = _segments(jws.sign({"typ": TYP}, b"{}", key))
    segments[index] = segment_fix(segments[index])
    assert _reason(".".join(segments), KeyRing([key])) in {"malformed", "bad_signature"}


def test_non_canonical_signature_is_malformed(keys: dict[Algorithm, JoseKey]) -> None:
    """Setting the spare bits of the last signature character is caught, not ignored."""
    key = keys["HS256"]
    header, payload, signature = _segments(jws.sign({"typ": TYP}, b"{}", key))
    assert len(signature) == 43  # 32 bytes: the last character has 2 spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = signature[:-1] + alphabet[alphabet.index(signature[-1]) | 1]
    assert b64url_decode(signature) == b64url_decode(signature)  # original is canonical
    assert _reason(f"{header}.{payload}.{respelled}", KeyRing([key])) == "malformed"


@pytest.mark.parametrize(
    "raw_header",
    [
        b"not json",
        b"[]",
        b'"at+jwt"',
        b"null",
        b"",
        b'{"alg":"HS256","alg":"HS256","kid":"k","typ":"at+jwt"}',
        b'{"alg":"HS256","kid":"k","typ":"at+jwt","x":NaN}',
        b'{"alg":"HS256","kid":"k","typ":"at+jwt","x":Infinity}',
        b'{"alg":"HS256","kid":"k","typ":"at+jwt"} ',
        b'{"alg":"HS256","kid":"k","typ":"at+jwt"}{}',
        b'{"alg":"HS256","kid":"k","typ":"at+jwt","x":"\xff"}',
    ],
    ids=[
        "not-json",
        "list",
        "string",
        "null",
        "empty",
        "duplicate-member",
        "nan",
        "infinity",
        "trailing-space",
        "trailing-data",
        "not-utf8",
    ],
)
def test_malformed_header_is_rejected(raw_header: bytes) -> None:
    """The header must be one strict UTF-8 JSON object; parse failures are never a 500."""
    key = JoseKey.generate("HS256", kid="k")
    assert _reason(sign_raw(key, raw_header, b"{}"), KeyRing([key])) == "malformed"


@pytest.mark.parametrize("depth", [5_000, 100_000], ids=["5k", "100k"])
def test_deep_nesting_is_malformed_not_recursion_error(depth: int) -> None:
    """Nesting past the parser's recursion limit is InvalidToken("malformed") (T7)."""
    with pytest.raises(InvalidToken) as caught:
        jws.parse_json_object(b'{"a":' + b"[" * depth + b"]" * depth + b"}")
    assert caught.value.reason == "malformed"


def test_oversized_token_and_header_are_rejected(keys: dict[Algorithm, JoseKey]) -> None:
    """Over 8 KiB in total, or over 1 KiB of header, is refused before any parsing."""
    key = keys["HS256"]
    ring = KeyRing([key])
    big_payload = sign_raw(key, at_header(key), b"x" * 7000)
    assert len(big_payload) > jws.MAX_TOKEN_LENGTH
    assert _reason(big_payload, ring) == "oversized"
    assert _reason("." * (jws.MAX_TOKEN_LENGTH + 1), ring) == "oversized"
    big_header = sign_raw(key, at_header(key, pad="p" * 800), b"{}")
    assert len(big_header) < jws.MAX_TOKEN_LENGTH
    assert _reason(big_header, ring) == "oversized"
    # The header limit also caps nesting far below the parser's recursion limit.
    nested = b'{"alg":"HS256","kid":"k","n":' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert _reason(sign_raw(key, nested, b"{}"), ring) == "oversized"
    assert jws.verify(big_payload, ring, typ=TYP, max_length=16_384)[1] == b"x" * 7000


@pytest.mark.parametrize(
    "token",
    [b"a.b.c", None, 42, ["a", "b", "c"], bytearray(b"a.b.c")],
    ids=["bytes", "none", "int", "list", "bytearray"],
)
def test_non_str_token_is_malformed(token: object, ring: KeyRing) -> None:
    """Only str tokens are considered; everything else is InvalidToken, never TypeError."""
    assert _reason(token, ring) == "malformed"


def test_str_subclass_and_non_ascii_are_malformed(key: JoseKey, ring: KeyRing) -> None:
    """A str subclass could override split(); non-ASCII can never be base64url."""

    class Sneaky(str):
        __slots__ = ()

    token = jws.sign({"typ": TYP}, b"{}", key)
    assert _reason(Sneaky(token), ring) == "malformed"
    assert _reason(token + "\u00e9", ring) == "malformed"


def test_random_mutations_only_ever_raise_invalid_token(key: JoseKey, ring: KeyRing) -> None:
    """Fuzz: truncations, insertions and substitutions give InvalidToken and nothing else."""
    token = jws.sign({"typ": TYP}, b'{"sub":"alice","n":[1,2,3]}', key)
    rng = random.Random(7515)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \u00e9"
    for _ in range(400):
        chars = list(token)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(chars))
            action = rng.randrange(3)
            if action == 0:
                chars[position] = rng.choice(alphabet)
            elif action == 1:
                chars.insert(position, rng.choice(alphabet))
            else:
                del chars[position:]
                break
        mutated = "".join(chars)
        if mutated == token:
            continue
        with pytest.raises(InvalidToken):
            jws.verify(mutated, ring, typ=TYP)


# --- the remembered-header fast path ----------------------------------------------------------


def test_verifier_memo_keeps_only_signature_verified_headers(
    keys: dict[Algorithm, JoseKey], foreign_keys: dict[Algorithm, JoseKey]
) -> None:
    """Forged tokens neither enter the memo nor pass with a remembered header."""
    key = keys["HS256"]
    ring = KeyRing([key])
    verifier = jws.JwsVerifier(ring, typ=TYP)
    good = jws.sign({"typ": TYP}, b"{}", key)
    header = _segments(good)[0]
    for index in range(20):
        forged = sign_raw(foreign_keys["HS256"], at_header(key, n=index), b"{}")
        with pytest.raises(InvalidToken):
            verifier.verify(forged)
    assert verifier._memo == {}
    verifier.verify(good)
    assert list(verifier._memo) == [header]
    # The remembered header does not excuse a bad signature on the next token.
    forged_same_header = sign_raw(foreign_keys["HS256"], at_header(key), b"{}")
    assert _segments(forged_same_header)[0] == header
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(forged_same_header)
    assert caught.value.reason == "bad_signature"


def test_verifier_memo_returns_copies(keys: dict[Algorithm, JoseKey]) -> None:
    """Callers mutating the returned header cannot change what the memo remembers."""
    key = keys["EdDSA"]
    verifier = jws.JwsVerifier(KeyRing([key]), typ=TYP)
    token = jws.sign({"typ": TYP}, b"{}", key)
    first, _ = verifier.verify(token)
    first["alg"] = "none"
    second, _ = verifier.verify(token)
    assert second["alg"] == "EdDSA"


def test_verifier_memo_is_bounded(keys: dict[Algorithm, JoseKey]) -> None:
    """Even validly signed distinct headers stop being remembered past the bound."""
    key = keys["HS256"]
    verifier = jws.JwsVerifier(KeyRing([key]), typ=TYP)
    for index in range(jws.MAX_REMEMBERED_HEADERS + 10):
        verifier.verify(sign_raw(key, at_header(key, n=index), b"{}"))
    assert len(verifier._memo) == jws.MAX_REMEMBERED_HEADERS


def test_verify_payload_matches_verify(keys: dict[Algorithm, JoseKey]) -> None:
    """verify_payload() runs the same checks as verify() and returns the same payload."""
    key = keys["ES256"]
    verifier = jws.JwsVerifier(KeyRing([key]), typ=TYP)
    good = jws.sign({"typ": TYP}, b'{"a":1}', key)
    header, payload, signature = _segments(good)
    for _ in range(2):  # before and after the header is remembered
        assert verifier.verify_payload(good) == verifier.verify(good)[1] == b'{"a":1}'
        for bad in (f"{header}.{payload}.{signature[:-2]}AA", f"{header}.e30.{signature}"):
            with pytest.raises(InvalidToken) as caught:
                verifier.verify_payload(bad)
            assert caught.value.reason == "bad_signature"


def test_verifier_matches_the_function_on_every_reason(
    keys: dict[Algorithm, JoseKey],
) -> None:
    """JwsVerifier gives the same answer as jws.verify, before and after remembering."""
    key = keys["HS256"]
    ring = KeyRing([key])
    verifier = jws.JwsVerifier(ring, typ=TYP)
    good = jws.sign({"typ": TYP}, b"{}", key)
    header, payload, signature = _segments(good)
    cases = [
        good,
        f"{header}.{payload}.{signature[:-2]}AA",
        sign_raw(key, at_header(key, typ="JWT"), b"{}"),
        sign_raw(key, at_header(key, alg="none"), b"{}"),
        f"{header}.{payload}",
    ]
    for _ in range(2):
        for token in cases:
            try:
                expected: object = jws.verify(token, ring, typ=TYP)
            except InvalidToken as error:
                expected = error.reason
            try:
                actual: object = verifier.verify(token)
            except InvalidToken as error:
                actual = error.reason
            assert actual == expected
