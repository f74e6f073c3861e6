"""The Litestar example (examples/litestar_notes), run under uvicorn as a user would beside
a `twofold serve` on the same data directory: the server's session cookie and access tokens
are good in it, CSRF guards its cookie-authenticated changes, roles guard its admin route."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.processes import TwofoldProcess

EXAMPLE = Path(__file__).parents[2] / "examples" / "litestar_notes" / "app.py"


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the example's URL, the Twofold server's URL)."""
    data_dir = tmp_path_factory.mktemp("litestar") / "data"
    server = TwofoldProcess(data_dir).start()
    example = TwofoldProcess(data_dir, app=EXAMPLE)
    example.settings.update(public_url=example.url, issuer=server.url)
    example.start()
    yield example.url, server.url
    example.stop()
    server.stop()


def log_in(server_url: str, client: httpx.Client, mode: str) -> dict[str, str]:
    email = f"notes-{uuid.uuid4().hex[:10]}@example.com"
    registered = client.post(
        f"{server_url}/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    login = client.post(
        f"{server_url}/auth/login", json={"email": email, "password": PASSWORD, "mode": mode}
    )
    assert login.status_code == 200, login.text
    answer: dict[str, str] = login.json()
    return answer


def test_notes_with_the_servers_session_cookie(urls: tuple[str, str]) -> None:
    """A session made at the server reads and writes notes here; a write needs the CSRF
    token (B1) and the app's own origin."""
    app_url, server_url = urls
    with httpx.Client(base_url=app_url, timeout=10) as client:
        csrf = log_in(server_url, client, "session")["csrf_token"]
        assert client.get("/notes").json() == {"notes": []}
        refused = client.post("/notes", json={"text": "no proof"}, headers={"Origin": app_url})
        assert refused.status_code == 403
        headers = {"Origin": app_url, "X-CSRF-Token": csrf}
        added = client.post("/notes", json={"text": "first"}, headers=headers)
        assert added.status_code == 201, added.text
        assert client.get("/notes").json() == {"notes": ["first"]}


def test_notes_with_a_bearer_token(urls: tuple[str, str]) -> None:
    """An access token from the server works without CSRF proof; each user sees their own
    notes only."""
    app_url, server_url = urls
    with httpx.Client(timeout=10) as client:
        token = log_in(server_url, client, "jwt")["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        added = client.post(f"{app_url}/notes", json={"text": "mine"}, headers=headers)
        assert added.status_code == 201, added.text
        assert client.get(f"{app_url}/notes", headers=headers).json() == {"notes": ["mine"]}
        other = log_in(server_url, client, "jwt")["access_token"]
        theirs = client.get(f"{app_url}/notes", headers={"Authorization": f"Bearer {other}"})
        assert theirs.json() == {"notes": []}


def test_guards_refuse_with_json_errors(urls: tuple[str, str]) -> None:
    """No credential is 401, a user without the admin role 403, a bad token 401 — JSON."""
    app_url, server_url = urls
    anonymous = httpx.get(f"{app_url}/notes")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthenticated"
    with httpx.Client(timeout=10) as client:
        token = log_in(server_url, client, "jwt")["access_token"]
    admin = httpx.get(f"{app_url}/admin/stats", headers={"Authorization": f"Bearer {token}"})
    assert admin.status_code == 403
    assert admin.json()["error"] == "forbidden"
    forged = httpx.get(f"{app_url}/notes", headers={"Authorization": "Bearer e30.e30.AAAA"})
    assert forged.status_code == 401
    assert forged.json()["error"] == "invalid_token"
