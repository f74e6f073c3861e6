"""The nginx configuration of docs/deployment.md, made runnable on loopback.

The documentation is the one source of truth: the block between its markers is read
here, and only the instance addresses, the port, the certificate and the log path are
replaced, each of which must appear exactly once, so that the documented block and the
tested block cannot drift apart.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEPLOYMENT_DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"

_BLOCK = re.compile(
    r"<!-- nginx-begin[^>]*-->\s*```nginx\n(?P<block>.*?)```\s*<!-- nginx-end -->", re.DOTALL
)
#: The example instances of the documented upstream, in order.
DOC_INSTANCES = ("10.0.0.11:8000", "10.0.0.12:8000", "10.0.0.13:8000")
DOC_LISTEN = "listen 443 ssl;"
DOC_CERTIFICATE = "/etc/ssl/twofold/fullchain.pem"
DOC_CERTIFICATE_KEY = "/etc/ssl/twofold/privkey.pem"
DOC_ACCESS_LOG = "/var/log/nginx/twofold.access.log"


def documented_block(doc: Path = DEPLOYMENT_DOC) -> str:
    """The nginx ``http``-level block of docs/deployment.md, as written there."""
    found = _BLOCK.search(doc.read_text(encoding="utf-8"))
    if found is None:
        raise ValueError(f"no nginx block between the markers in {doc}")
    return found.group("block")


_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False,
    crl_sign=False, encipher_only=False, decipher_only=False,
)  # fmt: skip


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1: nginx serves it, clients trust it."""

    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twofold test")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_KEY_USAGE, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        certificate = cls(directory / "cert.pem", directory / "key.pem")
        certificate.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        certificate.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        certificate.key.chmod(0o600)
        return certificate


def loopback_block(
    instances: list[str], certificate: Certificate, access_log: Path, block: str | None = None
) -> str:
    """The documented block with loopback instances, ``$LISTEN`` (filled in by
    ``tests.services.Nginx``), the test certificate and a private access log."""
    upstream = zip(DOC_INSTANCES, instances, strict=True)
    replacements = {
        DOC_LISTEN: "listen $LISTEN ssl;",
        DOC_CERTIFICATE: str(certificate.cert),
        DOC_CERTIFICATE_KEY: str(certificate.key),
        DOC_ACCESS_LOG: str(access_log),
        **{f"server {doc} ": f"server {ours} " for doc, ours in upstream},
    }
    text = documented_block() if block is None else block
    for old, new in replacements.items():
        if text.count(old) != 1:
            raise ValueError(f"{old!r} must appear exactly once in the documented block")
        text = text.replace(old, new)
    return text


@dataclass(frozen=True)
class LogLine:
    """One request as nginx logged it: which instance answered, with what."""

    request_id: str
    status: int
    upstream: str | None


_LOG_LINE = re.compile(r'" (?P<status>\d{3}) .*rid=(?P<rid>\w+) upstream="(?P<upstream>[^"]*)"')


def read_access_log(path: Path) -> dict[str, LogLine]:
    """Request id -> the logged request. ``upstream`` is the instance that gave the
    answer (the last one tried), or None when nginx answered by itself."""
    lines: dict[str, LogLine] = {}
    if not path.exists():
        return lines
    for raw in path.read_text(encoding="utf-8").splitlines():
        found = _LOG_LINE.search(raw)
        if found is None:
            continue
        tried = [a.strip() for a in found.group("upstream").split(",") if a.strip() != "-"]
        upstream = tried[-1].split(" : ")[-1] if tried else None
        rid = found.group("rid")
        lines[rid] = LogLine(rid, int(found.group("status")), upstream)
    return lines
