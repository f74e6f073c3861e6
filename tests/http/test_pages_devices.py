"""The devices page: every session and token family listed, one revoked, all others
revoked, the current one revoked (S8), and tokens for other applications made (shown
once) and revoked, each only with CSRF proof (B1)."""

from __future__ import annotations

import re
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
from twofold.errors import InvalidToken


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


# -- tokens for other applications -----------------------------------------------------------


def make_token(client: httpx.Client, **fields: Any) -> httpx.Response:
    """Post the new-token form of the devices page with its CSRF token."""
    values: dict[str, Any] = {"name": "Backup script", "scope": ["read"], "expires_in": "604800"}
    values.update(fields)
    return submit(client, "/devices", "/devices/tokens", **values)


def shown_token(page: httpx.Response) -> str:
    match = re.search(r'id="new-token"[^>]*value="([^"]+)"', page.text)
    assert match, "the page shows no new token"
    return match.group(1)


def token_works(live: LiveServer, token: str) -> bool:
    async def check() -> bool:
        try:
            await live.runtime.authority.scoped_tokens.authenticate(token)
        except InvalidToken:
            return False
        return True

    return live.call(check())


def test_the_token_form_makes_a_token_and_shows_it_once(live: LiveServer) -> None:
    """The answer shows the new token with a warning; the list then names it, with its
    scopes and times, but never shows the token again."""
    with signed_in(live, live.register()) as me:
        form = me.get("/devices")
        assert "Tokens for other applications" in form.text
        assert 'name="scope" type="checkbox" value="read" checked' in form.text
        assert '<option value="2592000" selected>30 days</option>' in form.text
        answer = make_token(me, scope=["read", "write"])
        assert answer.status_code == 200, answer.text
        assert_well_formed_page(answer)
        token = shown_token(answer)
        assert "it will not be shown again" in answer.text
        later = me.get("/devices")
    assert token_works(live, token)
    secret = token.partition(".")[2]
    assert secret not in later.text
    assert 'id="new-token"' not in later.text
    assert "Backup script" in later.text
    assert "read write" in later.text
    assert ">never<" in later.text  # last used
    assert later.text.count(">Revoke token</button>") == 1
    assert_well_formed_page(later)


def test_revoking_a_token_through_the_form_ends_it(live: LiveServer) -> None:
    """Revoke token: 303 back with a notice, and the token no longer authenticates."""
    with signed_in(live, live.register()) as me:
        token = shown_token(make_token(me))
        token_id = token.partition(".")[0]
        answer = submit(me, "/devices", f"/devices/tokens/{token_id}/revoke")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/devices?done=token-revoked"
        after = me.get(answer.headers["location"])
    assert 'role="status"' in after.text
    assert "Backup script" not in after.text
    assert not token_works(live, token)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expires_in": str(91 * 86_400)}, "A token expires in"),
        ({"expires_in": "soon"}, "Choose when the token expires."),
        ({"scope": []}, "Choose one or more of the scopes"),
        ({"scope": ["admin"]}, "Choose one or more of the scopes"),
        ({"name": ""}, "A token&#39;s name"),
    ],
    ids=["beyond-max", "not-a-number", "no-scope", "unknown-scope", "no-name"],
)
def test_the_token_form_refuses_what_the_rules_refuse(
    live: LiveServer, fields: dict[str, Any], message: str
) -> None:
    """400 with the form again and the reason; no token is made."""
    with signed_in(live, live.register()) as me:
        answer = make_token(me, **fields)
        assert answer.status_code == 400
        assert 'role="alert"' in answer.text
        assert message in answer.text
        assert 'id="new-token"' not in answer.text
        assert devices_tokens(me) == []


def devices_tokens(client: httpx.Client) -> list[dict[str, Any]]:
    answer = client.get("/auth/scoped-tokens")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["tokens"]
    return found


@pytest.mark.parametrize(
    ("token", "headers"),
    [(None, {}), ("A" * 43, {}), ("valid", FOREIGN)],
    ids=["missing-token", "wrong-token", "foreign-origin"],
)
def test_the_token_forms_need_csrf_proof(
    live: LiveServer, token: str | None, headers: dict[str, str]
) -> None:
    """Without the session's token, or from another origin, neither form makes nor
    revokes anything: 403 with the form again (B1)."""
    with signed_in(live, live.register()) as me:
        existing = shown_token(make_token(me)).partition(".")[0]
        real = form_token(me.get("/devices"))
        fields = {} if token is None else {"csrf_token": real if token == "valid" else token}
        made = me.post(
            "/devices/tokens",
            data={**fields, "name": "Evil", "scope": "read", "expires_in": "604800"},
            headers=headers,
        )
        revoked = me.post(f"/devices/tokens/{existing}/revoke", data=fields, headers=headers)
        for answer in (made, revoked):
            assert answer.status_code == 403
            assert "The form expired; please try again." in answer.text
            assert 'id="new-token"' not in answer.text
        assert [t["id"] for t in devices_tokens(me)] == [existing]


def test_another_users_token_cannot_be_revoked_on_the_page(live: LiveServer) -> None:
    """A token id of someone else's is 404 on the page, and that token lives."""
    with signed_in(live, live.register()) as them:
        token = shown_token(make_token(them))
    with signed_in(live, live.register()) as me:
        answer = submit(me, "/devices", f"/devices/tokens/{token.partition('.')[0]}/revoke")
    assert answer.status_code == 404
    assert 'role="alert"' in answer.text
    assert token_works(live, token)
