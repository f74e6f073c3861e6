"""Registration and login over HTTP: no enumeration, clear errors for bad input."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.conftest import PASSWORD, LiveServer


def test_register_answers_201_and_the_normalised_address(live: LiveServer) -> None:
    """Registration is 201 with the canonical e-mail address."""
    local = live.new_email().split("@")[0]
    with live.client() as client:
        answer = client.post(
            "/auth/register", json={"email": f" {local.upper()}@Example.COM ", "password": PASSWORD}
        )
    assert answer.status_code == 201
    assert answer.json() == {"email": f"{local}@example.com", "status": "accepted"}


def test_registering_a_taken_address_answers_the_same(live: LiveServer) -> None:
    """A second registration of one address is indistinguishable from the first (P2)."""
    email = live.new_email()
    with live.client() as client:
        first = client.post("/auth/register", json={"email": email, "password": PASSWORD})
        second = client.post(
            "/auth/register", json={"email": email, "password": "another fine passphrase"}
        )
        assert (
            client.post(
                "/auth/login", json={"email": email, "password": "another fine passphrase"}
            ).status_code
            == 401
        )
    assert (first.status_code, first.content) == (second.status_code, second.content)


def test_unknown_email_and_wrong_password_answer_alike(live: LiveServer) -> None:
    """Login with an unknown address and with a wrong password: same status, same body (P2)."""
    email = live.register()
    with live.client() as client:
        unknown = client.post("/auth/login", json={"email": live.new_email(), "password": PASSWORD})
        wrong = client.post("/auth/login", json={"email": email, "password": "wrong " + PASSWORD})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content == wrong.content
    assert unknown.json()["error"] == "invalid_credentials"


def test_unknown_email_costs_as_much_as_a_wrong_password(live: LiveServer) -> None:
    """An unknown address spends a full Argon2 verification, so timing does not tell (P2)."""
    email = live.register()

    def timed(address: str) -> float:
        with live.client() as client:
            started = time.perf_counter()
            client.post("/auth/login", json={"email": address, "password": "wrong " + PASSWORD})
            return time.perf_counter() - started

    unknown = statistics.median(timed(live.new_email()) for _ in range(7))
    wrong = statistics.median(timed(email) for _ in range(7))
    assert unknown > 0.5 * wrong, (unknown, wrong)


@pytest.mark.parametrize(
    ("password", "detail"),
    [
        pytest.param("short", "at least 8", id="too-short"),
        pytest.param("password123", "too common", id="common"),
        pytest.param("x" * 300, "at most 256", id="too-long"),
        pytest.param("aaaaaaaaaaaa", "too few", id="one-character"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(
    live: LiveServer, password: str, detail: str
) -> None:
    """Password rules follow SP 800-63B: length limits and a blocklist, a clear reason."""
    with live.client() as client:
        answer = client.post(
            "/auth/register", json={"email": live.new_email(), "password": password}
        )
    assert answer.status_code == 400
    assert answer.json()["error"] == "weak_password"
    assert detail in answer.json()["detail"]
    assert password not in answer.text


def test_a_long_unicode_passphrase_is_accepted(live: LiveServer) -> None:
    """No composition rules: a long passphrase in any script is fine."""
    email = live.register(password="Ünïcødé päss phrâse 🔐 ok")
    with live.client() as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": "Ünïcødé päss phrâse 🔐 ok"}
        )
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "email",
    [
        pytest.param("not-an-address", id="no-at"),
        pytest.param("a@@example.com", id="two-at"),
        pytest.param("a@" + "x" * 260 + ".com", id="too-long"),
        pytest.param("", id="empty"),
    ],
)
def test_invalid_addresses_are_refused(live: LiveServer, email: str) -> None:
    """A malformed e-mail address is a 4xx JSON error."""
    with live.client() as client:
        answer = client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code in (400, 422)
    assert answer.json()["error"] in ("invalid_email", "invalid_request")


BAD_BODIES = [
    pytest.param(b"{not json", "application/json", 400, "invalid_json", id="broken-json"),
    pytest.param(b"[]", "application/json", 422, "invalid_request", id="array"),
    pytest.param(b'"text"', "application/json", 422, "invalid_request", id="string"),
    pytest.param(b"", "application/json", 422, "invalid_request", id="empty"),
    pytest.param(b"\xff\xfe\x00", "application/json", 400, None, id="not-utf8"),
    pytest.param(
        b'{"email": 1, "password": 2}', "application/json", 422, "invalid_request", id="numbers"
    ),
    pytest.param(
        b'{"email": "a@example.com", "password": "x", "admin": true}',
        "application/json",
        422,
        "invalid_request",
        id="unknown-field",
    ),
    pytest.param(b"[" * 8000 + b"]" * 8000, "application/json", 400, None, id="deeply-nested"),
    pytest.param(
        b"email=a%40example.com&password=x",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
        id="form",
    ),
    pytest.param(
        b'{"email":"a@example.com"}', "text/plain", 415, "unsupported_media_type", id="text-plain"
    ),
    pytest.param(b"x" * 20_000, "application/json", 413, "body_too_large", id="oversized"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "error"), BAD_BODIES)
@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
def test_malformed_bodies_get_a_json_4xx(
    live: LiveServer, path: str, body: bytes, content_type: str, status: int, error: str | None
) -> None:
    """Malformed, mistyped and oversized bodies are refused with a JSON 4xx, never a 500."""
    with live.client() as client:
        answer = client.post(path, content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    if error:
        assert answer.json()["error"] == error


def test_validation_errors_never_echo_the_password(live: LiveServer) -> None:
    """An error about a request never repeats the submitted password."""
    secret = "S3cret-Value-" + "z" * 1100
    with live.client() as client:
        answer = client.post("/auth/login", json={"email": "a@example.com", "password": secret})
    assert answer.status_code == 422
    assert "S3cret-Value" not in answer.text


def test_unknown_routes_and_methods_answer_json(live: LiveServer) -> None:
    """404 and 405 are JSON errors too."""
    with live.client() as client:
        missing = client.get("/no/such/route")
        wrong_method = client.delete("/auth/me")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")


def test_health_and_readiness(live: LiveServer) -> None:
    """/healthz answers while the process lives; /readyz when the store answers; both
    answer HEAD, which many health checkers send."""
    with live.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        assert client.head("/healthz").status_code == 200
        assert client.head("/readyz").status_code == 200
