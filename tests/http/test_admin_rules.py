"""Admin rules a demanding operator expects: no self-demotion, no-op changes change
nothing, bodies are JSON or nothing, paging parameters are checked, `current` is marked."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.conftest import PASSWORD, LiveServer, bearer, make_admin


def me(live: LiveServer, token: str) -> dict[str, Any]:
    with live.client() as client:
        answer = client.get("/auth/me", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_an_admin_cannot_remove_their_own_admin_role(live: LiveServer) -> None:
    token = live.token_pair(make_admin(live))["access_token"]
    own = me(live, token)["id"]
    with live.client() as client:
        answer = client.put(
            f"/admin/users/{own}/roles", json={"roles": ["user"]}, headers=bearer(token)
        )
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_request"
        # Nothing changed: still an admin, the token still works.
        assert client.get("/admin/users", headers=bearer(token)).status_code == 200


def test_setting_the_same_roles_again_revokes_and_audits_nothing(live: LiveServer) -> None:
    admin = live.token_pair(make_admin(live))["access_token"]
    user_token = live.token_pair(live.register())["access_token"]
    user_id = me(live, user_token)["id"]
    with live.client() as client:
        answer = client.put(
            f"/admin/users/{user_id}/roles", json={"roles": ["user"]}, headers=bearer(admin)
        )
        assert answer.status_code == 200
        assert answer.json()["roles"] == ["user"]
        assert client.get("/auth/me", headers=bearer(user_token)).status_code == 200
        events = client.get(
            "/admin/audit",
            params={"kind": "roles_changed", "user_id": user_id},
            headers=bearer(admin),
        ).json()["events"]
    assert events == []


def test_locking_twice_is_audited_once(live: LiveServer) -> None:
    admin = live.token_pair(make_admin(live))["access_token"]
    user_id = me(live, live.token_pair(live.register())["access_token"])["id"]
    with live.client() as client:
        for _ in range(2):
            answer = client.post(f"/admin/users/{user_id}/lock", headers=bearer(admin))
            assert answer.status_code == 200
            assert answer.json()["locked"] is True
        events = client.get(
            "/admin/audit",
            params={"kind": "account_locked", "user_id": user_id},
            headers=bearer(admin),
        ).json()["events"]
    assert len(events) == 1


def test_admin_bodies_must_be_json_when_present(live: LiveServer) -> None:
    admin = live.token_pair(make_admin(live))["access_token"]
    user_id = me(live, live.token_pair(live.register())["access_token"])["id"]
    with live.client() as client:
        answer = client.post(
            f"/admin/users/{user_id}/lock",
            content=b"x",
            headers={**bearer(admin), "Content-Type": "text/plain"},
        )
        assert answer.status_code == 415
        assert answer.json()["error"] == "unsupported_media_type"
        assert (
            client.get(f"/admin/users/{user_id}", headers=bearer(admin)).json()["locked"] is False
        )
        # No body at all is fine.
        assert client.post("/admin/keys/rotate", headers=bearer(admin)).status_code == 200


def test_unknown_audit_kind_is_422(live: LiveServer) -> None:
    admin = live.token_pair(make_admin(live))["access_token"]
    with live.client() as client:
        answer = client.get("/admin/audit", params={"kind": "nonsense"}, headers=bearer(admin))
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"


def test_who_is_logged_in_marks_the_callers_own_login(live: LiveServer) -> None:
    pair = live.token_pair(make_admin(live))
    with live.client() as client:
        listed = client.get(
            "/admin/sessions", params={"limit": 500}, headers=bearer(pair["access_token"])
        ).json()["sessions"]
    current = [entry for entry in listed if entry["current"]]
    payload = pair["access_token"].split(".")[1]
    sid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]
    assert [entry["id"] for entry in current] == [f"f_{sid}"]


def test_a_wrong_current_password_is_audited(live: LiveServer) -> None:
    admin = live.token_pair(make_admin(live))["access_token"]
    token = live.token_pair(live.register())["access_token"]
    user_id = me(live, token)["id"]
    with live.client() as client:
        answer = client.post(
            "/auth/password",
            json={"current_password": "not the password", "new_password": "a new long passphrase"},
            headers=bearer(token),
        )
        assert answer.status_code == 403
        events = client.get(
            "/admin/audit",
            params={"kind": "reauthentication_failed", "user_id": user_id},
            headers=bearer(admin),
        ).json()["events"]
    assert len(events) == 1
    assert "not the password" not in str(events)


def test_refresh_transport_is_for_jwt_mode_only(live: LiveServer) -> None:
    email = live.register()
    with live.client() as client:
        answer = client.post(
            "/auth/login",
            json={"email": email, "password": PASSWORD, "refresh_transport": "cookie"},
        )
    assert answer.status_code == 422
    assert "set-cookie" not in answer.headers


def test_discovery_names_no_token_endpoint(live: LiveServer) -> None:
    with live.client() as client:
        document = client.get("/.well-known/openid-configuration").json()
    assert "token_endpoint" not in document
    assert "grant_types_supported" not in document
    assert (
        document["twofold_refresh_endpoint"] == f"{live.settings.effective_public_url}/auth/refresh"
    )


def test_deeply_nested_json_is_invalid_json(live: LiveServer) -> None:
    """JSON nested past the parser's depth is refused like any invalid JSON: 400
    invalid_json, never a 500."""
    body = b'{"email": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # under the body limit
    with live.client() as client:
        answer = client.post(
            "/auth/login", content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_json"
