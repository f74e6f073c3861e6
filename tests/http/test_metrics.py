"""GET /metrics over real sockets: what is counted, how it is labelled, and who may scrape
(C14; SECURITY.md O2: no id, token or address in the scrape)."""

from __future__ import annotations

import secrets

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request

from tests.conftest import PASSWORD, LiveServer, ServerFactory, bearer
from twofold.http.routes.metrics import is_direct_loopback

METRICS_TOKEN = "metrics-" + "s3cret" * 4

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(live: LiveServer, **headers: str) -> httpx.Response:
    with live.client() as client:
        return client.get("/metrics", headers=headers)


def samples(live: LiveServer) -> Samples:
    answer = scrape(live)
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(got: Samples, name: str, **labels: str) -> float:
    return got.get((name, frozenset(labels.items())), 0.0)


class Delta:
    """Samples before and after some requests: the shared server counts for every test."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.before = samples(live)
        self.after: Samples = {}

    def take(self) -> Delta:
        self.after = samples(self.live)
        return self

    def __call__(self, name: str, **labels: str) -> float:
        return value(self.after, name, **labels) - value(self.before, name, **labels)


def session_login(live: LiveServer, client: httpx.Client, email: str) -> str:
    """Log ``client`` in with a session; returns the CSRF token."""
    answer = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["csrf_token"]
    return token


@pytest.fixture
def delta(live: LiveServer) -> Delta:
    return Delta(live)


# -- what is counted -------------------------------------------------------------------


def test_logins_are_counted_by_mode_and_result(live: LiveServer, delta: Delta) -> None:
    """A session login, a JWT login, a wrong password and an unknown address each move
    their own series of twofold_logins_total."""
    email = live.register()
    with live.client() as client:
        session_login(live, client, email)
        wrong = client.post("/auth/login", json={"email": email, "password": "not it at all"})
        unknown = client.post(
            "/auth/login", json={"email": live.new_email(), "password": PASSWORD, "mode": "jwt"}
        )
    assert wrong.status_code == unknown.status_code == 401
    live.token_pair(email)
    delta.take()
    assert delta("twofold_logins_total", mode="session", result="succeeded") == 1
    # A wrong password and an unknown address look alike here too (P2).
    assert delta("twofold_logins_total", mode="session", result="failed") == 1
    assert delta("twofold_logins_total", mode="jwt", result="failed") == 1
    assert delta("twofold_logins_total", mode="jwt", result="succeeded") == 1


def test_auth_me_counts_session_and_jwt_authentications(live: LiveServer, delta: Delta) -> None:
    """/auth/me with a session cookie, with a Bearer token and with a forged token: accepted
    twice and refused once with the token's reason code."""
    email = live.register()
    access = live.token_pair(email)["access_token"]
    head, payload, signature = access.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    with live.client() as client:
        session_login(live, client, email)
        assert client.get("/auth/me").status_code == 200
    with live.client() as client:
        assert client.get("/auth/me", headers=bearer(access)).status_code == 200
        assert client.get("/auth/me", headers=bearer(forged)).status_code == 401
    delta.take()
    assert delta("twofold_authentications_total", mode="session", result="accepted") == 1
    assert delta("twofold_authentications_total", mode="jwt", result="accepted") == 1
    assert delta("twofold_authentications_total", mode="jwt", result="bad_signature") == 1
    assert delta("twofold_http_requests_total", route="/auth/me", method="GET", status="200") == 2
    assert delta("twofold_http_requests_total", route="/auth/me", method="GET", status="401") == 1
    assert delta("twofold_http_request_duration_seconds_count", route="/auth/me", method="GET") == 3
    # The session was read from the store, and that call was timed.
    assert (
        delta(
            "twofold_store_operation_duration_seconds_count",
            store="sqlite",
            operation="get_session_and_user",
        )
        >= 1
    )


def test_refreshes_and_reuse_detection_are_counted(live: LiveServer, delta: Delta) -> None:
    """A rotation counts as rotated; a token presented after its successor was used is
    reuse: counted, the family's end counted as a revocation."""
    first = live.token_pair()["refresh_token"]
    with live.client() as client:
        second = client.post("/auth/refresh", json={"refresh_token": first})
        assert second.status_code == 200
        third = client.post("/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
        assert third.status_code == 200
        reused = client.post("/auth/refresh", json={"refresh_token": first})
    assert reused.status_code == 401
    delta.take()
    assert delta("twofold_refreshes_total", result="rotated") == 2
    assert delta("twofold_refreshes_total", result="reuse") == 1
    assert delta("twofold_refresh_reuse_detections_total") == 1
    assert delta("twofold_revocations_total", kind="refresh_reuse") == 1


def test_logout_and_device_revocation_are_counted(live: LiveServer, delta: Delta) -> None:
    """A session logout counts as kind=logout; revoking another device as kind=device."""
    email = live.register()
    pair = live.token_pair(email)
    with live.client() as client:
        csrf = session_login(live, client, email)
        devices = client.get("/auth/sessions").json()["sessions"]
        (family,) = [d for d in devices if not d["current"]]
        answer = client.delete(f"/auth/sessions/{family['id']}", headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 204, answer.text
        assert client.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    with live.client() as client:
        assert client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 401
    delta.take()
    assert delta("twofold_revocations_total", kind="logout") == 1
    assert delta("twofold_revocations_total", kind="device") == 1
    assert delta("twofold_authentications_total", mode="jwt", result="revoked") == 1


# -- labels ------------------------------------------------------------------------------


def test_routes_are_labelled_by_template_never_by_path(live: LiveServer, delta: Delta) -> None:
    """The id in /auth/sessions/{device_id} and an unknown path or method never become
    label values (unbounded series would exhaust memory, and ids have no place there)."""
    handle = "s_" + secrets.token_urlsafe(12)
    stray = "/no-such-page/" + secrets.token_urlsafe(12)
    with live.client() as client:
        client.delete(f"/auth/sessions/{handle}")
        assert client.get(stray).status_code == 404
        client.request("PROPFIND", "/healthz")
    delta.take()
    count = "twofold_http_requests_total"
    assert delta(count, route="/auth/sessions/{device_id}", method="DELETE", status="401") == 1
    assert delta(count, route="unmatched", method="GET", status="404") == 1
    assert delta(count, route="/healthz", method="other", status="405") == 1
    text = scrape(live).text
    assert handle not in text
    assert stray not in text
    assert "PROPFIND" not in text


def test_the_scrape_holds_no_token_id_or_address(live: LiveServer) -> None:
    """After logins, refreshes, devices and logouts, no credential, id or e-mail address
    of any of them appears anywhere in the scrape (O2)."""
    email = live.register()
    pair = live.token_pair(email)
    with live.client() as client:
        refreshed = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        csrf = session_login(live, client, email)
        session_id = client.cookies["twofold_session"]
        me = client.get("/auth/me").json()
        devices = client.get("/auth/sessions").json()["sessions"]
        client.post("/auth/logout", headers={"X-CSRF-Token": csrf})
    text = scrape(live).text
    secrets_seen = [
        email,
        email.split("@")[0],
        me["id"],
        session_id,
        csrf,
        pair["access_token"],
        pair["access_token"].split(".")[1],
        pair["refresh_token"],
        refreshed.json()["refresh_token"],
        *(device["id"] for device in devices),
    ]
    for value_ in secrets_seen:
        assert value_ not in text


# -- who may scrape ----------------------------------------------------------------------


def test_a_loopback_scraper_gets_the_prometheus_text_format(live: LiveServer) -> None:
    """By default a direct loopback client may scrape; the answer is Prometheus text."""
    answer = scrape(live)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE twofold_http_requests_total counter" in answer.text


def test_a_scrape_through_a_proxy_is_refused_without_a_token(live: LiveServer) -> None:
    """A reverse proxy on the same host connects from loopback too: a request carrying a
    forwarding header is refused with a JSON 403, so the metrics never reach the internet
    through it. Fails if the loopback rule alone (or nothing) guarded the endpoint."""
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Proto", "Via"):
        answer = scrape(live, **{header: "https"})
        assert answer.status_code == 403, header
        assert answer.json()["error"] == "forbidden"
        assert "twofold_" not in answer.text


def test_a_client_behind_a_trusted_proxy_is_not_loopback(make_server: ServerFactory) -> None:
    """With trusted_proxies, the forwarded client address is what counts: refused."""
    server = make_server(trusted_proxies=["127.0.0.0/8"])
    answer = scrape(server, **{"X-Forwarded-For": "198.51.100.4"})
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        (("127.0.0.1", 4000), True),
        (("127.10.0.3", 4000), True),
        (("::1", 4000), True),
        (("::ffff:127.0.0.1", 4000), True),
        (("10.0.0.8", 4000), False),
        (("2001:db8::1", 4000), False),
        (("::ffff:192.0.2.1", 4000), False),
        (("not-an-address", 4000), False),
        (None, False),
    ],
    ids=[
        "v4",
        "v4-net",
        "v6",
        "v4-mapped",
        "private",
        "v6-remote",
        "mapped-remote",
        "name",
        "unix",
    ],
)
def test_only_loopback_addresses_count_as_local(
    client: tuple[str, int] | None, allowed: bool
) -> None:
    """The address rule on its own: loopback (v4, v6, v4-mapped) only; a Unix socket has
    no address (a proxy may sit on it) and is refused."""
    request = Request({"type": "http", "method": "GET", "headers": [], "client": client})
    assert is_direct_loopback(request) is allowed


def test_with_a_token_the_scrape_needs_it(make_server: ServerFactory) -> None:
    """With metrics_token set: no token or a wrong one is a JSON 401 with a Bearer
    challenge; the right one is served even through a proxy."""
    server = make_server(metrics_token=METRICS_TOKEN)
    missing = scrape(server)
    wrong = scrape(server, Authorization="Bearer " + METRICS_TOKEN[:-1] + "x")
    malformed = scrape(server, Authorization="Bearer two words")
    for answer in (missing, wrong, malformed):
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthenticated"
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "twofold_" not in answer.text
    right = scrape(
        server, Authorization=f"Bearer {METRICS_TOKEN}", **{"X-Forwarded-For": "203.0.113.9"}
    )
    assert right.status_code == 200
    assert "twofold_http_requests_total" in right.text
    assert METRICS_TOKEN not in right.text


def test_metrics_can_be_turned_off(make_server: ServerFactory) -> None:
    """metrics_enabled = false: /metrics is a JSON 404."""
    server = make_server(metrics_enabled=False)
    answer = scrape(server)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


def test_each_server_counts_its_own_requests(make_server: ServerFactory) -> None:
    """Two servers in one process keep separate registries."""
    first, second = make_server(), make_server()
    with first.client() as client:
        for _ in range(3):
            client.get("/healthz")
    count = "twofold_http_requests_total"
    assert value(samples(first), count, route="/healthz", method="GET", status="200") == 3
    assert value(samples(second), count, route="/healthz", method="GET", status="200") == 0
