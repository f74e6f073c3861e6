"""The change-password and change-e-mail forms: the current password is asked for (P4),
the session continues under a new id and the old one is dead (S3, S7), errors re-render
the form, and every post needs CSRF proof (B1)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory
from tests.http.test_pages import (
    COOKIE,
    FOREIGN,
    alive,
    assert_well_formed_page,
    form_token,
    signed_in,
    submit,
)

NEW_PASSWORD = "a brand new passphrase for this account"


def me(client: httpx.Client) -> dict[str, object]:
    answer = client.get("/auth/me")
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


def logs_in(live: LiveServer, email: str, password: str) -> bool:
    with live.client() as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": password, "mode": "jwt"}
        )
    return answer.status_code == 200


# -- password --------------------------------------------------------------------------


def test_changing_the_password_renews_the_known_device_cookie(live: LiveServer) -> None:
    """The known-device cookie names the password epoch, so the old one dies with the
    change; the browser that made it gets a new one, as over the API."""
    email = live.register()
    with signed_in(live, email) as client:
        answer = submit(
            client,
            "/account/password",
            "/account/password",
            current_password=PASSWORD,
            new_password=NEW_PASSWORD,
        )
        assert answer.status_code == 303
        assert any(c.startswith("twofold_device=") for c in answer.headers.get_list("set-cookie"))


def test_changing_the_password_rotates_the_session(live: LiveServer) -> None:
    """Success: 303 to the profile with a new session cookie; the old cookie and every
    other device are logged out; the new password works, the old does not."""
    email = live.register()
    with signed_in(live, email, "Other") as other, signed_in(live, email) as client:
        old = client.cookies[COOKIE]
        answer = submit(
            client,
            "/account/password",
            "/account/password",
            current_password=PASSWORD,
            new_password=NEW_PASSWORD,
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/?changed=password"
        new = client.cookies[COOKIE]
        assert new != old
        assert not alive(live, old)
        assert not alive(live, other.cookies[COOKIE])
        assert alive(live, new)
        assert "password was changed" in client.get(answer.headers["location"]).text
    assert logs_in(live, email, NEW_PASSWORD)
    assert not logs_in(live, email, PASSWORD)


@pytest.mark.parametrize(
    ("current", "new", "status", "message"),
    [
        ("not my password", NEW_PASSWORD, 403, "The current password is incorrect."),
        (PASSWORD, "short", 400, "password"),
    ],
    ids=["wrong-current", "weak-new"],
)
def test_a_refused_password_change_rerenders_the_form(
    live: LiveServer, current: str, new: str, status: int, message: str
) -> None:
    email = live.register()
    with signed_in(live, email) as client:
        cookie = client.cookies[COOKIE]
        answer = submit(
            client,
            "/account/password",
            "/account/password",
            current_password=current,
            new_password=new,
        )
        assert answer.status_code == status
        assert_well_formed_page(answer)
        assert message in answer.text
        assert 'role="alert"' in answer.text
        assert current not in answer.text
        assert alive(live, cookie)
    assert logs_in(live, email, PASSWORD)


def test_a_throttled_password_change_says_when_to_retry(make_server: ServerFactory) -> None:
    """Guessing the current password through a stolen session is throttled like a login:
    429 with Retry-After (P3, P4)."""
    server = make_server(login_failures_per_account=1)
    email = server.register()
    with signed_in(server, email) as client:
        fields = {"current_password": "guess", "new_password": NEW_PASSWORD}
        first = submit(client, "/account/password", "/account/password", **fields)
        assert first.status_code == 403
        answer = submit(client, "/account/password", "/account/password", **fields)
    assert answer.status_code == 429
    assert answer.headers["retry-after"].isdigit()
    assert "Too many failed attempts" in answer.text


# -- e-mail ----------------------------------------------------------------------------


def test_changing_the_email_moves_the_account_and_rotates_the_session(
    live: LiveServer,
) -> None:
    email, new_email = live.register(), live.new_email()
    with signed_in(live, email) as client:
        old = client.cookies[COOKIE]
        answer = submit(
            client,
            "/account/email",
            "/account/email",
            current_password=PASSWORD,
            email=new_email,
        )
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/?changed=email"
        assert client.cookies[COOKIE] != old
        assert not alive(live, old)
        assert me(client)["email"] == new_email
        profile = client.get(answer.headers["location"])
        assert new_email in profile.text
        assert "e-mail address was changed" in profile.text
    assert logs_in(live, new_email, PASSWORD)
    assert not logs_in(live, email, PASSWORD)


@pytest.mark.parametrize(
    ("password", "address", "status", "message"),
    [
        ("not my password", "new", 403, "The current password is incorrect."),
        (PASSWORD, "not an address", 400, "not valid"),
        (PASSWORD, "taken", 409, "That address cannot be used."),
    ],
    ids=["wrong-password", "invalid-address", "taken-address"],
)
def test_a_refused_email_change_rerenders_the_form(
    live: LiveServer, password: str, address: str, status: int, message: str
) -> None:
    email = live.register()
    new_email = {"new": live.new_email(), "taken": live.register()}.get(address, address)
    with signed_in(live, email) as client:
        cookie = client.cookies[COOKIE]
        answer = submit(
            client, "/account/email", "/account/email", current_password=password, email=new_email
        )
        assert answer.status_code == status
        assert_well_formed_page(answer)
        assert message in answer.text
        assert f'value="{new_email}"' in answer.text  # what was typed stays
        assert alive(live, cookie)
        assert me(client)["email"] == email


# -- both ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "headers"),
    [(None, {}), ("A" * 43, {}), ("valid", FOREIGN)],
    ids=["missing-token", "wrong-token", "foreign-origin"],
)
@pytest.mark.parametrize("path", ["/account/password", "/account/email"], ids=["pw", "email"])
def test_credential_forms_need_csrf_proof(
    live: LiveServer, path: str, token: str | None, headers: dict[str, str]
) -> None:
    """Without the session's token or from another origin: 403, the form again with
    "The form expired", and nothing changed."""
    email = live.register()
    with signed_in(live, email) as client:
        cookie = client.cookies[COOKIE]
        real = form_token(client.get(path))
        fields = {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "email": live.new_email(),
        }
        if token is not None:
            fields["csrf_token"] = real if token == "valid" else token
        answer = client.post(path, data=fields, headers=headers)
        assert answer.status_code == 403
        assert "The form expired; please try again." in answer.text
        assert client.cookies[COOKIE] == cookie
        assert alive(live, cookie)
        assert me(client)["email"] == email
    assert logs_in(live, email, PASSWORD)


def test_a_form_from_before_a_relogin_is_refused(live: LiveServer) -> None:
    """A token is bound to its session: the form of an earlier session does not work in
    a later one."""
    email = live.register()
    with signed_in(live, email) as client:
        stale = form_token(client.get("/account/password"))
        # Logging in again (the login page itself sends a signed-in browser on).
        relogin = form_token(client.get("/register"))
        client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": relogin})
        answer = client.post(
            "/account/password",
            data={
                "csrf_token": stale,
                "current_password": PASSWORD,
                "new_password": NEW_PASSWORD,
            },
        )
    assert answer.status_code == 403
    assert logs_in(live, email, PASSWORD)
