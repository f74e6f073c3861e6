"""X-Forwarded-For and -Proto are believed from configured proxies only (C12): otherwise
a client could choose its own address in the audit log, the devices list and the login
throttle."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory, bearer
from twofold.config import Settings


def my_address(server: LiveServer, forwarded_for: str) -> str:
    email = server.register()
    with server.client() as client:
        login = client.post(
            "/auth/login",
            json={"email": email, "password": PASSWORD, "mode": "jwt"},
            headers={"X-Forwarded-For": forwarded_for},
        )
        token = login.json()["access_token"]
        devices = client.get("/auth/sessions", headers=bearer(token)).json()["sessions"]
    (current,) = [d for d in devices if d["current"]]
    address: str = current["client_address"]
    return address


def test_a_trusted_proxy_names_the_client(make_server: ServerFactory) -> None:
    server = make_server(trusted_proxies=["127.0.0.0/8"])
    assert my_address(server, "203.0.113.9") == "203.0.113.9"


def test_the_right_most_untrusted_hop_is_the_client(make_server: ServerFactory) -> None:
    """A client may send its own X-Forwarded-For; a proxy that appends to it leaves the
    forged part on the left, where it is not read."""
    server = make_server(trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    assert my_address(server, "6.6.6.6, 203.0.113.9, 10.1.2.3") == "203.0.113.9"


def test_anyone_else_cannot_choose_their_address(
    make_server: ServerFactory, live: LiveServer
) -> None:
    for server in (live, make_server(trusted_proxies=["10.0.0.1"])):
        assert my_address(server, "203.0.113.9") == "127.0.0.1"


def test_a_spoofed_address_does_not_escape_the_address_throttle(
    make_server: ServerFactory,
) -> None:
    server = make_server(login_failures_per_account=100, login_failures_per_address=3)
    with server.client() as client:
        answers = [
            client.post(
                "/auth/login",
                json={"email": server.new_email(), "password": "wrong password here"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(5)
        ]
    assert answers == [401, 401, 401, 429, 429]


@pytest.mark.parametrize("entry", ["*", "proxy.example.com", "10.0.0.300", ""])
def test_trusted_proxies_must_be_addresses_or_networks(entry: str) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies=[entry])


@pytest.mark.parametrize("entry", ["0.0.0.0/0", "::/0"])
def test_trusting_every_address_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="every address"):
        Settings(trusted_proxies=[entry])


def test_an_ipv4_proxy_is_also_trusted_in_its_ipv6_mapped_form() -> None:
    """A proxy reaching a dual-stack socket arrives as ::ffff:a.b.c.d."""
    settings = Settings(trusted_proxies=["10.0.0.2", "10.1.0.0/16"])
    assert "::ffff:a00:2" in settings.trusted_proxies
    assert "::ffff:a01:0/112" in settings.trusted_proxies
