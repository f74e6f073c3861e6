"""The master key: owner-only file or environment, HKDF subkeys, sealed key material (O1)."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import pytest

from twofold.errors import ConfigurationError
from twofold.masterkey import MASTER_KEY_ENV, KeySealer, MasterKey


@pytest.fixture(autouse=True)
def no_master_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without TWOFOLD_MASTER_KEY, whatever the runner's environment."""
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    """A key file inside a directory that does not exist yet."""
    return tmp_path / "data" / "master.key"


def encode(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).decode("ascii").rstrip("=")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_key_file_is_owner_only(key_path: Path) -> None:
    """A new key is written with mode 0600 in a directory made with mode 0700."""
    MasterKey.load_or_create(key_path)
    assert mode_of(key_path) == 0o600
    assert mode_of(key_path.parent) == 0o700


def test_new_key_file_holds_256_bits_of_base64url(key_path: Path) -> None:
    """The file holds one line: base64url of 32 random bytes."""
    MasterKey.load_or_create(key_path)
    text = key_path.read_text(encoding="ascii")
    assert text.endswith("\n")
    assert len(base64.urlsafe_b64decode(text.strip())) == 32


def test_reload_gives_the_same_key(key_path: Path) -> None:
    """Loading an existing file gives the key that was created, not a new one."""
    first = MasterKey.load_or_create(key_path)
    content = key_path.read_bytes()
    second = MasterKey.load_or_create(key_path)
    assert second.derive("x") == first.derive("x")
    assert key_path.read_bytes() == content


def test_two_new_keys_differ(tmp_path: Path) -> None:
    """Each created key is fresh randomness."""
    one = MasterKey.load_or_create(tmp_path / "a" / "master.key")
    two = MasterKey.load_or_create(tmp_path / "b" / "master.key")
    assert one.derive("x") != two.derive("x")


@pytest.mark.parametrize(
    "mode",
    [0o640, 0o604, 0o660, 0o644, 0o620, 0o601],
    ids=["group-read", "other-read", "group-write", "world-read", "group-write-only", "other-x"],
)
def test_key_file_open_to_group_or_others_is_refused(key_path: Path, mode: int) -> None:
    """A key file with any group or other permission bit raises ConfigurationError."""
    MasterKey.load_or_create(key_path)
    os.chmod(key_path, mode)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        MasterKey.load_or_create(key_path)


def test_owner_read_only_key_file_is_accepted(key_path: Path) -> None:
    """Mode 0400 is tight enough."""
    first = MasterKey.load_or_create(key_path)
    os.chmod(key_path, 0o400)
    assert MasterKey.load_or_create(key_path).derive("x") == first.derive("x")


def test_environment_key_wins_over_the_file(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TWOFOLD_MASTER_KEY is used even when a key file exists, and no file is written."""
    from_file = MasterKey.load_or_create(key_path)
    secret = secrets.token_bytes(32)
    monkeypatch.setenv(MASTER_KEY_ENV, encode(secret))
    from_env = MasterKey.load_or_create(key_path)
    assert from_env.derive("x") == MasterKey(secret).derive("x")
    assert from_env.derive("x") != from_file.derive("x")


def test_environment_key_creates_no_file(key_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the key in the environment nothing is written to disk."""
    monkeypatch.setenv(MASTER_KEY_ENV, encode(secrets.token_bytes(32)))
    MasterKey.load_or_create(key_path)
    assert not key_path.exists()


@pytest.mark.parametrize("length", [0, 16, 31], ids=["empty", "128-bit", "one-byte-short"])
def test_short_key_is_refused(length: int) -> None:
    """A secret under 256 bits raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="256 bits"):
        MasterKey(secrets.token_bytes(length))


def test_short_key_in_the_environment_is_refused(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 128-bit TWOFOLD_MASTER_KEY is refused, not padded or replaced."""
    monkeypatch.setenv(MASTER_KEY_ENV, encode(secrets.token_bytes(16)))
    with pytest.raises(ConfigurationError):
        MasterKey.load_or_create(key_path)


def test_short_key_in_the_file_is_refused(key_path: Path) -> None:
    """A key file holding under 256 bits is refused."""
    key_path.parent.mkdir(mode=0o700)
    key_path.write_text(encode(secrets.token_bytes(16)) + "\n", encoding="ascii")
    os.chmod(key_path, 0o600)
    with pytest.raises(ConfigurationError):
        MasterKey.load_or_create(key_path)


def test_key_with_characters_outside_base64url_is_refused(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TWOFOLD_MASTER_KEY that is not base64url is refused, not half-decoded."""
    monkeypatch.setenv(MASTER_KEY_ENV, "!!!!" + encode(secrets.token_bytes(32)))
    with pytest.raises(ConfigurationError):
        MasterKey.load_or_create(key_path)


def test_derive_gives_a_different_subkey_per_purpose() -> None:
    """Subkeys for different purposes are independent."""
    key = MasterKey(secrets.token_bytes(32))
    subkeys = {key.derive(purpose) for purpose in ("key-sealing", "csrf", "cookie", "")}
    assert len(subkeys) == 4


def test_derive_is_deterministic() -> None:
    """The same master key and purpose always give the same subkey."""
    secret = secrets.token_bytes(32)
    assert MasterKey(secret).derive("csrf") == MasterKey(secret).derive("csrf")
    assert MasterKey(secret).derive("csrf") != MasterKey(secrets.token_bytes(32)).derive("csrf")


@pytest.mark.parametrize("length", [16, 32, 64], ids=["16", "32", "64"])
def test_derive_honours_the_length(length: int) -> None:
    """derive returns exactly ``length`` bytes, and never the master secret itself."""
    secret = secrets.token_bytes(32)
    subkey = MasterKey(secret).derive("x", length)
    assert len(subkey) == length
    assert subkey != secret


def test_sealer_round_trip() -> None:
    """Sealed material opens to the original bytes under the same label."""
    sealer = MasterKey(secrets.token_bytes(32)).sealer()
    material = secrets.token_bytes(121)
    sealed = sealer.seal(material, "kid-1")
    assert material not in sealed
    assert sealer.open(sealed, "kid-1") == material


def test_sealing_twice_gives_different_ciphertexts() -> None:
    """Each seal uses a fresh nonce."""
    sealer = MasterKey(secrets.token_bytes(32)).sealer()
    assert sealer.seal(b"material", "kid") != sealer.seal(b"material", "kid")


def test_opening_with_another_label_is_refused() -> None:
    """Material sealed for one kid cannot be opened as another kid's (label is AAD)."""
    sealer = MasterKey(secrets.token_bytes(32)).sealer()
    sealed = sealer.seal(b"private key bytes", "kid-1")
    with pytest.raises(ConfigurationError, match="cannot be unsealed"):
        sealer.open(sealed, "kid-2")


def test_opening_with_another_master_key_is_refused() -> None:
    """Material sealed under one master key does not open under another."""
    sealed = MasterKey(secrets.token_bytes(32)).sealer().seal(b"private key bytes", "kid-1")
    with pytest.raises(ConfigurationError, match="master key does not match"):
        MasterKey(secrets.token_bytes(32)).sealer().open(sealed, "kid-1")


def test_tampered_material_is_refused() -> None:
    """A flipped bit in sealed material fails authentication."""
    sealer = MasterKey(secrets.token_bytes(32)).sealer()
    sealed = bytearray(sealer.seal(b"private key bytes", "kid-1"))
    sealed[-1] ^= 1
    with pytest.raises(ConfigurationError):
        sealer.open(bytes(sealed), "kid-1")


@pytest.mark.parametrize(
    "length", [0, 3, 7, 12, 27], ids=["empty", "3-bytes", "7-bytes", "nonce-only", "short-tag"]
)
def test_truncated_material_is_refused_as_configuration_error(length: int) -> None:
    """Sealed material shorter than a nonce raises ConfigurationError like any bad seal."""
    sealer = MasterKey(secrets.token_bytes(32)).sealer()
    with pytest.raises(ConfigurationError):
        sealer.open(b"\x00" * length, "kid-1")


def test_sealer_key_is_the_derived_key_sealing_subkey() -> None:
    """The sealer is keyed by derive("key-sealing"), not by the master secret."""
    key = MasterKey(secrets.token_bytes(32))
    sealed = key.sealer().seal(b"material", "kid")
    assert KeySealer(key.derive("key-sealing")).open(sealed, "kid") == b"material"


def test_secret_is_not_in_repr_or_str() -> None:
    """Neither repr() nor str() of a master key or its sealer shows key material."""
    secret = secrets.token_bytes(32)
    key = MasterKey(secret)
    shown = repr(key) + str(key) + repr(key.sealer()) + str(key.sealer())
    for form in (secret.hex(), encode(secret), repr(secret), key.derive("key-sealing").hex()):
        assert form not in shown
    assert repr(key) == "MasterKey(<hidden>)"


def test_instances_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """Several processes creating the key at once all end with the same key, never a
    half-written one."""
    import concurrent.futures

    path = tmp_path / "race" / "master.key"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: MasterKey.load_or_create(path).derive("x"), range(16)))
    assert len(set(keys)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]
