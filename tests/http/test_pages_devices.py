"""The devices page: every session and token family listed, one revoked, all others
revoked, the current one revoked (S8), each only with CSRF proof (B1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer
from tests.http.test_pages import (
    COOKIE,
    FOREIGN,
    alive,
    assert_well_formed_page,
    form_token,
    signed_in,
    submit,
)


def devices(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """The caller's devices by user agent, from the JSON API."""
    answer = client.get("/auth/sessions")
    assert answer.status_code == 200, answer.text
    return {d["user_agent"]: d for d in answer.json()["sessions"]}


def token_family(live: LiveServer, email: str, user_agent: str) -> dict[str, str]:
    with live.client(headers={"User-Agent": user_agent}) as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"}
        )
    assert answer.status_code == 200, answer.text
    pair: dict[str, str] = answer.json()
    return pair


def refreshes(live: LiveServer, refresh_token: str) -> bool:
    with live.client() as client:
        answer = client.post("/auth/refresh", json={"refresh_token": refresh_token})
    return answer.status_code == 200


def test_the_page_lists_sessions_and_families_with_this_device_marked(
    live: LiveServer,
) -> None:
    """Both kinds are listed with device, address and times; only this browser is "This
    device", and it has no Revoke button."""
    email = live.register()
    token_family(live, email, "Api-Client/1.0")
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    with signed_in(live, email, "Other-Browser"), signed_in(live, email, agent) as client:
        page = client.get("/devices")
    assert page.status_code == 200
    assert_well_formed_page(page)
    text = page.text
    assert "Firefox on Linux" in text
    assert "Other-Browser" in text
    assert "Api-Client/1.0" in text
    assert text.count("Browser session") == 2
    assert text.count("Token family") == 1
    assert text.count(">This device<") == 1
    assert text.count(">Revoke</button>") == 2  # not on this device's row
    assert "127.0.0.1" in text
    assert '<time datetime="' in text
    assert "Log out all other devices" in text


def test_revoking_another_session_logs_it_out(live: LiveServer) -> None:
    """Revoke on another session's row: 303 back with a notice, and its cookie is dead."""
    email = live.register()
    with signed_in(live, email, "Victim") as other, signed_in(live, email, "Me") as me:
        target = devices(me)["Victim"]["id"]
        answer = submit(me, "/devices", f"/devices/{target}/revoke")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/devices?done=revoked"
        assert "set-cookie" not in answer.headers
        assert not alive(live, other.cookies[COOKIE])
        assert alive(live, me.cookies[COOKIE])
        after = me.get(answer.headers["location"])
        assert 'role="status"' in after.text
        assert "Victim" not in after.text


def test_revoking_a_token_family_stops_its_refresh(live: LiveServer) -> None:
    email = live.register()
    pair = token_family(live, email, "Api-Client")
    with signed_in(live, email) as me:
        target = devices(me)["Api-Client"]["id"]
        assert submit(me, "/devices", f"/devices/{target}/revoke").status_code == 303
    assert not refreshes(live, pair["refresh_token"])


def test_revoking_this_device_logs_out_and_clears_the_cookie(live: LiveServer) -> None:
    email = live.register()
    with signed_in(live, email, "Me") as me:
        cookie = me.cookies[COOKIE]
        target = devices(me)["Me"]["id"]
        answer = submit(me, "/devices", f"/devices/{target}/revoke")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    assert f'{COOKIE}="";' in answer.headers["set-cookie"]
    assert not alive(live, cookie)


def test_log_out_all_other_devices_keeps_this_one(live: LiveServer) -> None:
    email = live.register()
    pair = token_family(live, email, "Api-Client")
    with signed_in(live, email, "Other") as other, signed_in(live, email, "Me") as me:
        answer = submit(me, "/devices", "/devices/revoke-others")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/devices?done=others"
        assert not alive(live, other.cookies[COOKIE])
        assert alive(live, me.cookies[COOKIE])
        assert list(devices(me)) == ["Me"]
    assert not refreshes(live, pair["refresh_token"])


def test_another_users_device_cannot_be_revoked(live: LiveServer) -> None:
    """A handle of someone else's session is 404 on the page, and that session lives."""
    victim = live.register()
    with signed_in(live, victim, "Victim") as them:
        target = devices(them)["Victim"]["id"]
        with signed_in(live, live.register()) as me:
            answer = submit(me, "/devices", f"/devices/{target}/revoke")
        assert answer.status_code == 404
        assert 'role="alert"' in answer.text
        assert alive(live, them.cookies[COOKIE])


@pytest.mark.parametrize(
    ("token", "headers"),
    [(None, {}), ("A" * 43, {}), ("valid", FOREIGN)],
    ids=["missing-token", "wrong-token", "foreign-origin"],
)
def test_revoking_needs_csrf_proof(
    live: LiveServer, token: str | None, headers: dict[str, str]
) -> None:
    """Without the session's token, or from another origin, both forms answer 403 with
    the form again, and nothing ends (B1)."""
    email = live.register()
    with signed_in(live, email, "Other") as other, signed_in(live, email, "Me") as me:
        target = devices(me)["Other"]["id"]
        real = form_token(me.get("/devices"))
        fields = {} if token is None else {"csrf_token": real if token == "valid" else token}
        for action in (f"/devices/{target}/revoke", "/devices/revoke-others"):
            answer = me.post(action, data=fields, headers=headers)
            assert answer.status_code == 403
            assert "The form expired; please try again." in answer.text
        assert alive(live, other.cookies[COOKIE])


def test_posting_without_a_session_goes_to_login(live: LiveServer) -> None:
    with live.client() as client:
        answer = client.post("/devices/revoke-others", data={"csrf_token": "x"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"


def test_a_user_agent_is_shown_escaped(live: LiveServer) -> None:
    """A hostile User-Agent is text on the page, never markup (B3)."""
    email = live.register()
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with signed_in(live, email, hostile) as client:
        page = client.get("/devices")
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
