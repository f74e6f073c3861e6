"""KeyRing: a fixed kid table, one signing key, a JWKS of public keys only (T3, T10)."""

from __future__ import annotations

import json

import pytest

from twofold.errors import ConfigurationError
from twofold.jose.jwk import PRIVATE_MEMBERS
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import Algorithm, JoseKey


def test_jwks_publishes_public_keys_only(keys: dict[Algorithm, JoseKey]) -> None:
    """No d/p/q/dp/dq/qi/k member ever appears, and HMAC keys are left out entirely (T10)."""
    ring = KeyRing(keys.values(), signing_kid=keys["HS256"].kid)
    document = ring.jwks()
    published = document["keys"]
    assert {jwk["kid"] for jwk in published} == {
        keys[alg].kid for alg in ("ES256", "EdDSA", "RS256")
    }
    for jwk in published:
        assert PRIVATE_MEMBERS.isdisjoint(jwk)
    text = json.dumps(document)
    assert keys["HS256"].kid not in text
    assert '"oct"' not in text


def test_duplicate_kid_is_rejected() -> None:
    """Two keys under one kid would make the look-up ambiguous."""
    with pytest.raises(ConfigurationError, match="Duplicate kid"):
        KeyRing([JoseKey.generate("HS256", kid="k1"), JoseKey.generate("EdDSA", kid="k1")])


def test_get_is_a_plain_lookup(keys: dict[Algorithm, JoseKey]) -> None:
    """get() finds configured kids and nothing else: paths and near-misses are unknown (T3)."""
    ring = KeyRing(keys.values())
    for key in keys.values():
        assert ring.get(key.kid) is key
    for kid in ("../../etc/passwd", "/dev/null", "", keys["ES256"].kid + " ", "' OR 1=1 --"):
        assert ring.get(kid) is None


def test_signing_key_must_be_in_the_ring_and_private(keys: dict[Algorithm, JoseKey]) -> None:
    """The signing kid must name a ring key that holds private material."""
    with pytest.raises(ConfigurationError):
        KeyRing([keys["HS256"]], signing_kid="missing")
    jwk = keys["EdDSA"].public_jwk()
    assert jwk is not None
    public = JoseKey.from_public_jwk(jwk)
    with pytest.raises(ConfigurationError):
        KeyRing([public], signing_kid=public.kid)


def test_verify_only_ring_has_no_signing_key(keys: dict[Algorithm, JoseKey]) -> None:
    """A ring built without a signing kid refuses to hand out a signing key."""
    ring = KeyRing(keys.values())
    with pytest.raises(ConfigurationError):
        _ = ring.signing_key
    signing = KeyRing(keys.values(), signing_kid=keys["RS256"].kid)
    assert signing.signing_key is keys["RS256"]
    assert len(signing) == len(keys)
    assert list(signing) == list(keys.values())


def test_ring_from_published_jwks_verifies_the_same_keys(keys: dict[Algorithm, JoseKey]) -> None:
    """A resource server rebuilds a verify-only ring from the JWKS document."""
    ring = KeyRing(keys.values(), signing_kid=keys["ES256"].kid)
    remote = KeyRing.from_jwks(json.loads(json.dumps(ring.jwks())))
    assert len(remote) == 3
    for alg in ("ES256", "EdDSA", "RS256"):
        imported = remote.get(keys[alg].kid)
        assert imported is not None
        assert imported.alg == alg
        assert not imported.can_sign
        assert imported.verify(b"m", keys[alg].sign(b"m"))


@pytest.mark.parametrize(
    "document",
    [{}, {"keys": {}}, [], {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}],
    ids=["no-keys", "keys-not-list", "not-object", "hmac-key"],
)
def test_bad_jwks_document_is_rejected(document: object) -> None:
    """A JWKS must be an object with a list of public keys."""
    with pytest.raises(ConfigurationError):
        KeyRing.from_jwks(document)  # type: ignore[arg-type]


def test_ring_is_immutable(keys: dict[Algorithm, JoseKey]) -> None:
    """Keys cannot be swapped in after construction; repr lists kids, not material."""
    ring = KeyRing([keys["HS256"]], signing_kid=keys["HS256"].kid)
    with pytest.raises(AttributeError):
        ring._by_kid = {}
    with pytest.raises(AttributeError):
        del ring._signing_key
    assert keys["HS256"].kid in repr(ring)
    assert keys["HS256"].to_material().hex() not in repr(ring)


def test_ring_holds_only_jose_keys() -> None:
    """Anything but a JoseKey in the ring is a configuration error."""
    with pytest.raises(ConfigurationError):
        KeyRing([b"secret"])  # type: ignore[list-item]
