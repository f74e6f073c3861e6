"""The master key: one secret from which every other server secret is derived.

It lives in a file with owner-only permissions (made on first start) or comes from the
environment (``TWOFOLD_MASTER_KEY``, base64url of 32 bytes) so that several instances can
share it. Signing keys are sealed with a key derived from it before they reach the store.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from twofold.errors import ConfigurationError

MASTER_KEY_ENV = "TWOFOLD_MASTER_KEY"
KEY_BYTES = 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class MasterKey:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < KEY_BYTES:
            raise ConfigurationError("The master key must hold at least 256 bits.")
        self._secret = secret

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        """From ``$TWOFOLD_MASTER_KEY``, else from ``path``, else a new one written to ``path``."""
        from_env = os.environ.get(MASTER_KEY_ENV)
        if from_env:
            return cls(_decode(from_env, MASTER_KEY_ENV))
        if path.exists():
            _check_private(path)
            return cls(_decode(path.read_text(encoding="ascii").strip(), str(path)))
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = secrets.token_bytes(KEY_BYTES)
        # Written whole to a private name, then linked into place: link() fails if the key
        # exists, so two instances starting at once agree on one key, and nobody ever reads
        # a half-written file.
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(base64.urlsafe_b64encode(secret).decode("ascii") + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(draft, path)
        except FileExistsError:
            return cls.load_or_create(path)
        finally:
            draft.unlink(missing_ok=True)
        return cls(secret)

    def derive(self, purpose: str, length: int = KEY_BYTES) -> bytes:
        """An independent subkey for one purpose (HKDF-SHA256)."""
        return HKDF(
            algorithm=hashes.SHA256(),
            length=length,
            salt=None,
            info=f"twofold/{purpose}".encode(),
        ).derive(self._secret)

    def sealer(self) -> KeySealer:
        return KeySealer(self.derive("key-sealing"))


class KeySealer:
    """AES-256-GCM for key material at rest; the ``label`` (the kid) is bound as AAD."""

    _NONCE = 12

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, label: str) -> bytes:
        nonce = secrets.token_bytes(self._NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, label.encode())

    def open(self, sealed: bytes, label: str) -> bytes:
        try:
            if len(sealed) < self._NONCE + 16:
                raise InvalidTag
            return self._aead.decrypt(sealed[: self._NONCE], sealed[self._NONCE :], label.encode())
        except InvalidTag:
            raise ConfigurationError(
                f"Key {label} cannot be unsealed: the master key does not match the store."
            ) from None


def _decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"The master key in {where} is not base64url.") from None


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(f"{path} is readable by others; run: chmod 600 {path}")
