"""Serving HTTPS directly: checking the operator's certificate and key, and making a
self-signed certificate for development on this machine.

The certificate is made with ``cryptography`` (already a dependency for the signing keys);
there is no well-kept library that does only this, and it is a dozen calls.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from twofold.config import Settings
from twofold.errors import ConfigurationError

SELF_SIGNED_NAMES = ("localhost", "127.0.0.1", "::1")
SELF_SIGNED_DAYS = 90
# A certificate this close to its end is made again at start.
RENEW_BEFORE = datetime.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path


def tls_files(settings: Settings) -> TlsFiles | None:
    """The certificate and key to serve with, checked; None for plain HTTP."""
    if settings.tls_self_signed:
        return self_signed(settings.data_dir / "tls")
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    files = TlsFiles(settings.tls_cert_file, settings.tls_key_file)
    check(files)
    return files


def check(files: TlsFiles) -> None:
    """Refuse, in one line, a certificate or key that cannot be read or do not match, and
    a key that other users can read (as the master key is refused, SECURITY.md O1)."""
    try:
        mode = files.key.stat().st_mode
    except FileNotFoundError:
        raise ConfigurationError(f"The TLS file {files.key} does not exist.") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"The TLS key {files.key} is readable by other users; run: chmod 600 {files.key}"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(files.cert, files.key)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"The TLS file {exc.filename} does not exist.") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(
            f"The TLS certificate {files.cert} and key {files.key} cannot be used "
            f"({type(exc).__name__}: {getattr(exc, 'reason', None) or exc.strerror or 'invalid'})."
        ) from None


def self_signed(directory: Path) -> TlsFiles:
    """A certificate for localhost, 127.0.0.1 and ::1 under ``directory``, made on first use
    and again when it nears its end. Browsers warn about it: it is for development."""
    files = TlsFiles(directory / "localhost-cert.pem", directory / "localhost-key.pem")
    if files.cert.exists() and files.key.exists() and not _ending(files.cert):
        check(files)
        return files
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost (Twofold development)")])
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in SELF_SIGNED_NAMES[1:]]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(files.key, key_pem, 0o600)
    _write(files.cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def _ending(cert: Path) -> bool:
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError:
        return True
    return loaded.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < RENEW_BEFORE


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a new temporary file (made 0600 by mkstemp, never an old one or a
    link), so a crash never leaves half a key and the key is never readable by others."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
