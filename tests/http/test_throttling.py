"""Login throttling over HTTP (SECURITY.md P3) and re-authentication (P4): per account and
per client address, a growing wait with Retry-After, and no way to lock a victim out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory, bearer

WRONG = "not the password at all"
FREE = 3


@pytest.fixture
def server(make_server: ServerFactory) -> LiveServer:
    return make_server(login_failures_per_account=FREE, login_failures_per_address=50)


def login(client: httpx.Client, email: str, password: str, mode: str = "jwt") -> httpx.Response:
    return client.post("/auth/login", json={"email": email, "password": password, "mode": mode})


def fail(server: LiveServer, email: str, times: int) -> None:
    with server.client() as client:
        for _ in range(times):
            assert login(client, email, WRONG).status_code == 401


def test_an_account_waits_after_its_free_failures_and_the_wait_doubles(
    server: LiveServer,
) -> None:
    email = server.register()
    fail(server, email, FREE)
    with server.client() as client:
        refused = login(client, email, PASSWORD)
        assert refused.status_code == 429
        assert refused.json()["error"] == "too_many_attempts"
        assert refused.headers["retry-after"] == "1"
        server.clock.advance(1)
        assert login(client, email, WRONG).status_code == 401
        assert login(client, email, PASSWORD).headers["retry-after"] == "2"
        server.clock.advance(2)
        assert login(client, email, WRONG).status_code == 401
        assert login(client, email, PASSWORD).headers["retry-after"] == "4"
        server.clock.advance(4)
        # The right password after the wait works, and clears the account's count.
        assert login(client, email, PASSWORD).status_code == 200
        assert login(client, email, WRONG).status_code == 401


def test_a_throttled_attempt_is_not_counted_and_costs_no_password_check(
    server: LiveServer,
) -> None:
    """Hammering during the wait neither lengthens it nor reaches Argon2 (the right
    password is refused unverified too)."""
    email = server.register()
    fail(server, email, FREE)
    with server.client() as client:
        for _ in range(20):
            assert login(client, email, WRONG).status_code == 429
        answer = login(client, email, PASSWORD)
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "1"
    server.clock.advance(1)
    with server.client() as client:
        assert login(client, email, PASSWORD).status_code == 200


def test_unknown_and_existing_accounts_are_throttled_alike(server: LiveServer) -> None:
    """P2 holds under throttling: the same statuses, bodies and headers."""
    known = server.register()
    unknown = server.new_email()
    answers = {}
    for email in (known, unknown):
        fail(server, email, FREE)
        with server.client() as client:
            answers[email] = login(client, email, WRONG)
    a, b = answers[known], answers[unknown]
    assert a.status_code == b.status_code == 429
    assert a.json() == b.json()
    assert a.headers["retry-after"] == b.headers["retry-after"]


def test_the_wait_is_capped_and_failures_are_forgotten(make_server: ServerFactory) -> None:
    server = make_server(login_failures_per_account=1, login_max_delay=5, login_failure_memory=60)
    email = server.register()
    with server.client() as client:
        for _ in range(8):
            assert login(client, email, WRONG).status_code == 401
            server.clock.advance(5)
        assert login(client, email, WRONG).status_code == 401
        assert login(client, email, PASSWORD).headers["retry-after"] == "5"
        server.clock.advance(61)
        # Forgotten: one failure is free again.
        assert login(client, email, WRONG).status_code == 401
        server.clock.advance(1)
        assert login(client, email, PASSWORD).status_code == 200


def test_one_address_guessing_at_many_accounts_is_throttled(make_server: ServerFactory) -> None:
    server = make_server(login_failures_per_account=100, login_failures_per_address=4)
    with server.client() as client:
        for _ in range(4):
            assert login(client, server.new_email(), WRONG).status_code == 401
        assert login(client, server.new_email(), WRONG).status_code == 429


def test_a_success_does_not_reset_the_address_count(make_server: ServerFactory) -> None:
    """Otherwise a client could log in to its own account between guesses at others."""
    server = make_server(login_failures_per_account=100, login_failures_per_address=3)
    own = server.register()
    with server.client() as client:
        for _ in range(2):
            assert login(client, server.new_email(), WRONG).status_code == 401
        assert login(client, own, PASSWORD).status_code == 200
        assert login(client, server.new_email(), WRONG).status_code == 401
        assert login(client, server.new_email(), WRONG).status_code == 429


def test_a_known_browser_is_not_locked_out_by_failures_from_elsewhere(
    server: LiveServer,
) -> None:
    """The victim's own browser, which has logged in before, carries the known-device
    cookie: an attacker's failures block the account for everyone else, not for it."""
    email = server.register()
    with server.client() as victim:
        assert login(victim, email, PASSWORD, mode="session").status_code == 200
        device = victim.cookies.get("twofold_device")
        assert device
        fail(server, email, FREE)
        with server.client() as stranger:
            assert login(stranger, email, PASSWORD).status_code == 429
        assert login(victim, email, PASSWORD, mode="session").status_code == 200


def test_a_known_device_cookie_is_bound_to_its_account(server: LiveServer) -> None:
    """Another account's device cookie, or a forged one, exempts nothing."""
    email, other = server.register(), server.register()
    with server.client() as client:
        assert login(client, other, PASSWORD, mode="session").status_code == 200
        device = client.cookies["twofold_device"]
    fail(server, email, FREE)
    for cookie in (device, "forged.value", device.split(".")[0] + ".AAAA"):
        with server.client(cookies={"twofold_device": cookie}) as client:
            assert login(client, email, PASSWORD).status_code == 429


def test_a_stolen_known_device_cookie_is_throttled_too(server: LiveServer) -> None:
    email = server.register()
    with server.client() as client:
        assert login(client, email, PASSWORD).status_code == 200
        for _ in range(FREE):
            assert login(client, email, WRONG).status_code == 401
        assert login(client, email, PASSWORD).status_code == 429


def test_the_device_cookie_is_httponly_strict_and_long_lived(server: LiveServer) -> None:
    email = server.register()
    with server.client() as client:
        answer = login(client, email, PASSWORD, mode="session")
    (cookie,) = [c for c in answer.headers.get_list("set-cookie") if "twofold_device" in c]
    attributes = cookie.lower()
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    assert "domain=" not in attributes
    assert "max-age=31536000" in attributes


def test_reauthentication_failures_are_throttled(server: LiveServer) -> None:
    """A stolen session or token cannot be used to guess the password (P4 + P3)."""
    email = server.register()
    with server.client() as client:
        token = login(client, email, PASSWORD).json()["access_token"]
        change = {"current_password": WRONG, "new_password": "a brand new passphrase"}
        for _ in range(FREE):
            assert (
                client.post("/auth/password", json=change, headers=bearer(token)).status_code == 403
            )
        change["current_password"] = PASSWORD
        answer = client.post("/auth/password", json=change, headers=bearer(token))
        assert answer.status_code == 429
        assert "retry-after" in answer.headers
        # The same counter guards logging in.
        assert login(client, email, PASSWORD).status_code == 429


def test_throttling_is_audited_once_per_block(server: LiveServer) -> None:
    email = server.register()
    fail(server, email, FREE)
    server.clock.advance(1)
    fail(server, email, 1)

    async def events() -> list[str]:
        page = await server.runtime.authority.audit.page(kind="login_throttled", limit=10)
        return [event.kind for event in page]

    assert server.call(events()) == ["login_throttled"]


def test_a_burst_of_concurrent_guesses_gets_only_the_free_ones_checked(
    server: LiveServer,
) -> None:
    email = server.register()

    def guess(_: int) -> int:
        with server.client() as client:
            return login(client, email, WRONG).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(guess, range(20)))
    assert statuses.count(401) == FREE
    assert statuses.count(429) == 20 - FREE


def test_failing_from_one_address_does_not_hold_the_owner_off_elsewhere(
    make_server: ServerFactory,
) -> None:
    """The strict count is per account and address; across addresses the account waits
    at most a minute, and only after four times as many failures."""
    server = make_server(
        login_failures_per_account=FREE,
        login_failures_per_address=50,
        trusted_proxies=["127.0.0.1"],
    )
    email = server.register()

    def attempt(address: str, password: str) -> httpx.Response:
        with server.client(headers={"X-Forwarded-For": address}) as client:
            return login(client, email, password)

    for _ in range(FREE):
        assert attempt("203.0.113.66", WRONG).status_code == 401
    assert attempt("203.0.113.66", PASSWORD).status_code == 429
    assert attempt("198.51.100.7", PASSWORD).status_code == 200
    # Spread over many addresses the account-wide count catches up, with a short wait.
    server.clock.advance(1000)
    for n in range(4 * FREE):
        assert attempt(f"192.0.2.{n}", WRONG).status_code == 401
    refused = attempt("198.51.100.8", PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    for n in range(4 * FREE, 4 * FREE + 10):
        server.clock.advance(61)
        assert attempt(f"192.0.2.{n}", WRONG).status_code == 401
    assert attempt("198.51.100.8", PASSWORD).headers["retry-after"] == "60"


def test_a_password_change_retires_old_device_cookies(server: LiveServer) -> None:
    email = server.register()
    with server.client() as client:
        csrf = login(client, email, PASSWORD, mode="session").json()["csrf_token"]
        old_device = client.cookies["twofold_device"]
        changed = client.post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
            headers={"X-CSRF-Token": csrf},
        )
        assert changed.status_code == 200
        new_device = client.cookies["twofold_device"]
    assert new_device != old_device
    fail(server, email, FREE)
    with server.client(cookies={"twofold_device": old_device}) as client:
        assert login(client, email, "a brand new passphrase").status_code == 429
    with server.client(cookies={"twofold_device": new_device}) as client:
        assert login(client, email, "a brand new passphrase").status_code == 200


def test_probing_addresses_through_an_email_change_is_throttled(server: LiveServer) -> None:
    """An e-mail change to a taken address tells that the account exists; the answers
    are counted like failed logins, so they cannot be used to test address lists."""
    email = server.register()
    taken = [server.register() for _ in range(FREE)]
    with server.client() as client:
        token = login(client, email, PASSWORD).json()["access_token"]
    with server.client() as client:
        for address in taken:
            answer = client.post(
                "/auth/email",
                json={"current_password": PASSWORD, "email": address},
                headers=bearer(token),
            )
            assert answer.status_code == 409
        answer = client.post(
            "/auth/email",
            json={"current_password": PASSWORD, "email": server.new_email()},
            headers=bearer(token),
        )
        assert answer.status_code == 429
