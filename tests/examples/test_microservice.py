"""The microservice example (examples/microservice) as a process of its own beside a real
`twofold serve`: it verifies with the JWKS and the revocation feed only, refuses a revoked
user's token within a second of the revocation (T9), refuses forgeries (T1-T3), and fails
closed while the server is gone, recovering when it is back (O3)."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.jose.forge import sign_raw
from tests.processes import TWOFOLD, TwofoldProcess
from twofold.jose.b64 import b64url_decode, b64url_encode
from twofold.jose.keys import JoseKey

EXAMPLE = Path(__file__).parents[2] / "examples" / "microservice" / "app.py"
SERVER_SETTINGS: dict[str, object] = {"token_audiences": "orders"}
#: The verifier's default bound, which the example keeps.
MAX_STALENESS = 3.0


@dataclass
class Deployment:
    server: TwofoldProcess
    service: TwofoldProcess


def deploy(tmp: Path) -> Deployment:
    server = TwofoldProcess(tmp / "data", dict(SERVER_SETTINGS)).start()
    service = TwofoldProcess(tmp / "service", {"issuer": server.url}, app=EXAMPLE)
    return Deployment(server, service.start())


def tear_down(deployment: Deployment) -> None:
    # The service first: the server's graceful stop waits for open feed connections.
    deployment.service.stop()
    deployment.server.stop()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = deploy(tmp_path_factory.mktemp("microservice"))
    yield deployment
    tear_down(deployment)


class User:
    """An account on the server with a browser-like session of its own."""

    def __init__(self, server: TwofoldProcess) -> None:
        self.server = server
        self.email = f"orders-{uuid.uuid4().hex[:10]}@example.com"
        self.password = PASSWORD
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answer = client.post(
                "/auth/register", json={"email": self.email, "password": self.password}
            )
            assert answer.status_code == 201, answer.text

    def session(self) -> Session:
        client = httpx.Client(base_url=self.server.url, timeout=10)
        answer = client.post(
            "/auth/login", json={"email": self.email, "password": self.password, "mode": "session"}
        )
        assert answer.status_code == 200, answer.text
        headers = {"X-CSRF-Token": answer.json()["csrf_token"], "Origin": self.server.url}
        return Session(client, headers)

    def login_token(self) -> str:
        with httpx.Client(base_url=self.server.url, timeout=10) as client:
            answer = client.post(
                "/auth/login", json={"email": self.email, "password": self.password, "mode": "jwt"}
            )
        token: str = answer.json()["access_token"]
        return token


@dataclass
class Session:
    client: httpx.Client
    #: CSRF proof for the session's state-changing requests.
    proof: dict[str, str]

    def token(self, scope: str = "read") -> str:
        """An access token for the service, exchanged for this session."""
        answer = self.client.post(
            "/auth/token", json={"audience": "orders", "scope": scope}, headers=self.proof
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["audience"] == "orders"
        token: str = answer.json()["access_token"]
        return token

    def post(self, path: str, body: dict[str, str] | None = None) -> httpx.Response:
        return self.client.post(path, json=body or {}, headers=self.proof)

    def close(self) -> None:
        self.client.close()


def orders(service: TwofoldProcess, token: str | None, client: httpx.Client | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if client is not None:
        return client.get("/orders", headers=headers).status_code
    return httpx.get(f"{service.url}/orders", headers=headers, timeout=10).status_code


def seconds_until_refused(service: TwofoldProcess, token: str, limit: float = 2.0) -> float:
    """Seconds (polling every 2 ms) until the service refuses ``token``."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=service.url, timeout=5) as client:
        started = time.perf_counter()
        while (answer := client.get("/orders", headers=headers)).status_code == 200:
            if time.perf_counter() - started > limit:
                raise AssertionError(f"still accepted after {limit} s")
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
    assert answer.status_code == 401
    assert "revoked" in answer.headers["www-authenticate"]
    return elapsed


# -- revocations, one way each ----------------------------------------------------------


def log_out(user: User, session: Session) -> None:
    assert session.post("/auth/logout").status_code == 204


def log_out_everywhere(user: User, session: Session) -> None:
    """From another session of the same user: "log out all other sessions"."""
    other = user.session()
    try:
        assert other.client.delete("/auth/sessions", headers=other.proof).status_code == 200
    finally:
        other.close()


def change_password(user: User, session: Session) -> None:
    new = f"{PASSWORD} {uuid.uuid4().hex[:6]}"
    answer = session.post(
        "/auth/password", {"current_password": user.password, "new_password": new}
    )
    assert answer.status_code == 200, answer.text
    user.password = new


def lock_from_the_cli(user: User, session: Session) -> None:
    """`twofold user lock` in a process of its own: the server follows the stream."""
    subprocess.run(
        [str(TWOFOLD), "user", "lock", user.email],
        env=user.server.environment(),
        check=True,
        capture_output=True,
    )


REVOCATIONS: dict[str, Callable[[User, Session], None]] = {
    "logout": log_out,
    "logout-everywhere": log_out_everywhere,
    "password-change": change_password,
    "cli-lock": lock_from_the_cli,
}


def test_a_token_for_the_service_works(deployment: Deployment) -> None:
    user = User(deployment.server)
    session = user.session()
    try:
        answer = httpx.get(
            f"{deployment.service.url}/orders",
            headers={"Authorization": f"Bearer {session.token()}"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["orders"]
        assert orders(deployment.service, session.token(scope="write")) == 403  # no "read"
    finally:
        session.close()


def test_tokens_not_for_the_service_are_refused(deployment: Deployment) -> None:
    """A full login token names Twofold's own audience: not good here."""
    user = User(deployment.server)
    assert orders(deployment.service, user.login_token()) == 401
    assert orders(deployment.service, None) == 401


def revocation_delays(deployment: Deployment, *, rounds: int) -> dict[str, list[float]]:
    """Seconds from each revoking answer until the service refused the token, by kind of
    revocation (``rounds`` of each); also what ``benchmarks/remote_revocation.py`` runs."""
    delays: dict[str, list[float]] = {name: [] for name in REVOCATIONS}
    for _ in range(rounds):
        for name, revoke in REVOCATIONS.items():
            user = User(deployment.server)
            session = user.session()
            try:
                token = session.token()
                assert orders(deployment.service, token) == 200
                revoke(user, session)
                delays[name].append(seconds_until_refused(deployment.service, token))
            finally:
                session.close()
    return delays


def test_revocation_reaches_the_service_within_a_second(deployment: Deployment) -> None:
    """Logout, logout everywhere, password change and a CLI lock, three times each: the
    service refuses the token within 1 s of the server's answer (measured by polling every
    2 ms), without any call to the server per request."""
    delays = revocation_delays(deployment, rounds=3)
    everything = sorted(d for values in delays.values() for d in values)
    print(
        f"\nrevocation -> refusal at the microservice, n={len(everything)}: "
        f"p50 {statistics.median(everything) * 1000:.1f} ms, "
        f"max {everything[-1] * 1000:.1f} ms; "
        + ", ".join(f"{k} max {max(v) * 1000:.1f} ms" for k, v in delays.items())
    )
    assert everything[-1] < 1.0


def test_forged_tokens_are_refused(deployment: Deployment) -> None:
    """Another key under the server's kid, alg none, a key embedded in the header, and a
    tampered payload (T1-T3)."""
    user = User(deployment.server)
    session = user.session()
    try:
        token = session.token()
    finally:
        session.close()
    header_b64, payload_b64, signature = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    claims = json.loads(b64url_decode(payload_b64))
    other = JoseKey.generate("ES256", kid=header["kid"])
    tampered = {**claims, "sub": "someone-else"}
    forgeries = {
        "other-key": sign_raw(other, header, claims),
        "alg-none": b64url_encode(json.dumps({**header, "alg": "none"}).encode())
        + f".{payload_b64}.",
        "embedded-jwk": sign_raw(other, {**header, "jwk": other.public_jwk()}, claims),
        "tampered": f"{header_b64}.{b64url_encode(json.dumps(tampered).encode())}.{signature}",
    }
    assert orders(deployment.service, token) == 200
    refused = {name: orders(deployment.service, forged) for name, forged in forgeries.items()}
    assert refused == dict.fromkeys(forgeries, 401)


def test_a_compromised_key_rotation_reaches_the_service(tmp_path: Path) -> None:
    """`twofold keys rotate --compromised` from the CLI: the service drops the old key
    (its tokens refused within a second, through the feed's key entry and a JWKS read)
    and takes tokens signed with the new one."""
    deployment = deploy(tmp_path)
    try:
        user = User(deployment.server)
        session = user.session()
        old = session.token()
        assert orders(deployment.service, old) == 200
        subprocess.run(
            [str(TWOFOLD), "keys", "rotate", "--compromised"],
            env=deployment.server.environment(),
            check=True,
            capture_output=True,
        )
        headers = {"Authorization": f"Bearer {old}"}
        started = time.perf_counter()
        while (
            answer := httpx.get(f"{deployment.service.url}/orders", headers=headers)
        ).status_code == 200:
            assert time.perf_counter() - started < 1.0
            time.sleep(0.002)
        assert answer.status_code == 401
        assert "unknown_key" in answer.headers["www-authenticate"]
        new = session.token()
        assert (
            json.loads(b64url_decode(new.split(".")[0]))["kid"]
            != json.loads(b64url_decode(old.split(".")[0]))["kid"]
        )
        assert orders(deployment.service, new) == 200
        session.close()
    finally:
        tear_down(deployment)


def test_the_service_fails_closed_while_the_server_is_gone(tmp_path: Path) -> None:
    """The server crashes: within max_staleness + 1 s the service answers 503 (never a
    200 it cannot vouch for), and serves again by itself once the server is back."""
    deployment = deploy(tmp_path)
    try:
        user = User(deployment.server)
        session = user.session()
        token = session.token()
        session.close()
        assert orders(deployment.service, token) == 200
        port = deployment.server.port
        deployment.server.kill()
        started = time.monotonic()
        with httpx.Client(base_url=deployment.service.url, timeout=5) as client:
            while (status := orders(deployment.service, token, client)) == 200:
                assert time.monotonic() - started < MAX_STALENESS + 1
                time.sleep(0.01)
        assert status == 503
        assert time.monotonic() - started < MAX_STALENESS + 1
        health = httpx.get(f"{deployment.service.url}/healthz", timeout=5)
        assert health.status_code == 503

        deployment.server = TwofoldProcess(
            tmp_path / "data", dict(SERVER_SETTINGS), port=port
        ).start()
        back = time.monotonic()
        while orders(deployment.service, token) != 200:
            assert time.monotonic() - back < 5, "the service did not recover"
            time.sleep(0.05)
    finally:
        tear_down(deployment)
