"""TLS served directly: the self-signed development certificate, the operator's files
checked at start, and a real ``twofold serve`` over HTTPS (Secure, __Host- cookies, HSTS)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.conftest import PASSWORD
from tests.processes import TWOFOLD
from tests.services import end_process, free_port
from twofold.errors import ConfigurationError
from twofold.tls import TlsFiles, check, self_signed


def test_self_signed_names_this_machine_and_keeps_its_key_private(tmp_path: Path) -> None:
    files = self_signed(tmp_path / "tls")
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700


def test_self_signed_is_reused_and_made_again_near_its_end(tmp_path: Path) -> None:
    first = self_signed(tmp_path)
    made = first.cert.read_bytes()
    assert self_signed(tmp_path).cert.read_bytes() == made
    # Swap in a certificate that ends tomorrow: it is replaced at the next start.
    ending = tmp_path / "ending"
    ending.mkdir()
    _ending_cert(first, ending)
    shutil.copy(ending / "cert.pem", first.cert)
    shutil.copy(ending / "key.pem", first.key)
    renewed = x509.load_pem_x509_certificate(self_signed(tmp_path).cert.read_bytes())
    assert renewed.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(
        days=30
    )


def _ending_cert(template: TlsFiles, directory: Path) -> None:
    from cryptography.hazmat.primitives import hashes, serialization

    key = serialization.load_pem_private_key(template.key.read_bytes(), password=None)
    original = x509.load_pem_x509_certificate(template.cert.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.issuer)
        .public_key(original.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=80))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(template.key.read_bytes())


def test_missing_or_mismatched_files_are_one_line_errors(tmp_path: Path) -> None:
    a, b = self_signed(tmp_path / "a"), self_signed(tmp_path / "b")
    with pytest.raises(ConfigurationError, match="does not exist"):
        check(TlsFiles(tmp_path / "nope.pem", a.key))
    with pytest.raises(ConfigurationError, match="cannot be used") as caught:
        check(TlsFiles(a.cert, b.key))
    assert "BEGIN" not in str(caught.value)


def test_serve_refuses_a_certificate_without_its_key(tmp_path: Path) -> None:
    files = self_signed(tmp_path / "tls")
    answer = subprocess.run(
        [str(TWOFOLD), "serve", "--data-dir", str(tmp_path / "d"), "--tls-cert", str(files.cert)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("TWOFOLD_")},
    )
    assert answer.returncode != 0
    assert "tls_cert_file and tls_key_file go together" in answer.stdout + answer.stderr


def test_serve_over_https_with_the_development_certificate(tmp_path: Path) -> None:
    """A real server over a real TLS socket: the certificate verifies for 127.0.0.1, the
    session cookie is Secure with the __Host- prefix, and HSTS is sent; plain HTTP to the
    port gets no answer from the application."""
    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFOLD_")}
    env.update(TWOFOLD_ARGON2_PROFILE="owasp-minimum", TWOFOLD_HASH_WORKERS="1")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(TWOFOLD), "serve", "--tls-self-signed", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        cert = data / "tls" / "localhost-cert.pem"
        url = f"https://127.0.0.1:{port}"
        context = _wait_for_tls(proc, cert, url)
        with httpx.Client(base_url=url, verify=context, timeout=10) as client:
            health = client.get("/healthz")
            assert health.headers["strict-transport-security"].startswith("max-age=")
            email = "tls-user@example.com"
            assert (
                client.post(
                    "/auth/register", json={"email": email, "password": PASSWORD}
                ).status_code
                == 201
            )
            login = client.post(
                "/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
            )
            assert login.status_code == 200, login.text
            cookies = login.headers.get_list("set-cookie")
            (session,) = [c for c in cookies if c.startswith("__Host-twofold_session=")]
            assert "Secure" in session
            assert "HttpOnly" in session
            assert "Path=/" in session
            assert "Domain" not in session
            assert any(c.startswith("__Host-twofold_device=") for c in cookies)
            assert client.get("/auth/me").json()["email"] == email
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3)
    finally:
        end_process(proc, signal.SIGTERM)
        log.close()


def _wait_for_tls(proc: subprocess.Popen[bytes], cert: Path, url: str) -> ssl.SSLContext:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "twofold serve exited"
        if cert.exists():
            context = ssl.create_default_context(cafile=str(cert))
            try:
                if httpx.get(f"{url}/healthz", verify=context, timeout=1).status_code == 200:
                    return context
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise AssertionError("twofold serve did not answer over HTTPS")


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    files = self_signed(tmp_path / "tls")
    files.key.chmod(0o640)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        check(files)


def test_a_leftover_file_cannot_make_the_new_key_readable(tmp_path: Path) -> None:
    """The key is written through a fresh 0600 temporary file, never an old one."""
    directory = tmp_path / "tls"
    directory.mkdir(mode=0o755)
    for leftover in ("localhost-key.tmp", ".localhost-key.pem.tmp"):
        (directory / leftover).write_text("old")
        (directory / leftover).chmod(0o644)
    files = self_signed(directory)
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700
