"""The revocation feed (`GET /oauth/revocations`) over a real socket: catch-up, resume,
prompt delivery, heartbeats, what is never sent, and who may read it (T9, O3)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ServerFactory, bearer, run_offline
from tests.http.test_oauth_api import add_client, basic
from twofold.authority import Origin
from twofold.errors import StoreUnavailable
from twofold.http.routes import feed as feed_route
from twofold.jose.b64 import b64url_decode

FEED = "/oauth/revocations"


@dataclass
class Event:
    name: str
    id: str | None
    data: dict[str, Any]
    arrived: float


class Feed:
    """Reads a feed answer event by event, parsing the lines itself (independently of
    the ``twofold.remote`` parser under test elsewhere)."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer = answer
        self._lines = answer.iter_lines()

    def next(self) -> Event | None:
        """The next event, or None when the stream ended."""
        name, event_id, data = "message", None, []
        for line in self._lines:
            if not line:
                if data:
                    return Event(name, event_id, json.loads("\n".join(data)), time.monotonic())
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
        return None

    def until(self, name: str) -> list[Event]:
        """Events up to and including the next one called ``name``."""
        seen = []
        while True:
            event = self.next()
            assert event is not None, f"the stream ended before a {name}"
            seen.append(event)
            if event.name == name:
                return seen

    def catch_up(self) -> tuple[Event, list[Event], Event]:
        """hello, the catch-up's revocations, and the heartbeat that ends it."""
        events = self.until("heartbeat")
        hello, *entries, beat = events
        assert hello.name == "hello"
        assert all(e.name == "revocation" for e in entries)
        return hello, entries, beat


@contextmanager
def feed(server: LiveServer, **kwargs: Any) -> Iterator[Feed]:
    with (
        server.client() as client,
        client.stream("GET", FEED, **kwargs) as answer,
    ):
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["cache-control"] == "no-store"
        yield Feed(answer)


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return payload


def logout(server: LiveServer, token: str) -> None:
    with server.client() as client:
        assert client.post("/auth/logout", headers=bearer(token)).status_code == 204


def append(server: LiveServer, kind: str, subject: str) -> None:
    """An entry written by this server itself, as its routes do."""
    revoker = server.runtime.authority.revoker
    server.call(getattr(revoker, kind)(subject))


def test_discovery_names_the_feed(live: LiveServer) -> None:
    with live.client() as client:
        document = client.get("/.well-known/openid-configuration").json()
    assert document["twofold_revocation_feed_endpoint"] == f"{live.url}{FEED}"


def test_catch_up_from_zero_lists_existing_entries(live: LiveServer) -> None:
    """A follower starting from nothing gets every unexpired entry, in seq order, then
    a heartbeat whose id is the hello's seq."""
    token = live.token_pair()["access_token"]
    logout(live, token)
    sid = claims_of(token)["sid"]
    with feed(live, params={"after": "0"}) as stream:
        hello, entries, beat = stream.catch_up()
    assert hello.id is None
    assert hello.data["heartbeat"] == 1.0
    settings = live.settings
    assert hello.data["horizon"] == settings.access_token_lifetime + settings.token_leeway
    assert any(e.data["kind"] == "family" and e.data["subject"] == sid for e in entries)
    seqs = [e.data["seq"] for e in entries]
    assert seqs == sorted(seqs)
    assert all(e.id == str(e.data["seq"]) for e in entries)
    assert set(entries[0].data) == {"seq", "kind", "subject", "at", "expires_at"}
    assert beat.id == str(hello.data["seq"]) == str(beat.data["seq"])
    assert hello.data["seq"] >= seqs[-1]


@pytest.mark.parametrize("how", ["last_event_id", "after"], ids=["Last-Event-ID", "after"])
def test_a_resumed_feed_sends_only_newer_entries(live: LiveServer, how: str) -> None:
    with feed(live) as stream:
        _, _, beat = stream.catch_up()
    position = beat.data["seq"]
    token = live.token_pair()["access_token"]
    logout(live, token)
    resume: dict[str, Any] = (
        {"headers": {"Last-Event-ID": str(position)}}
        if how == "last_event_id"
        else {"params": {"after": str(position)}}
    )
    with feed(live, **resume) as stream:
        _, entries, _ = stream.catch_up()
    assert entries
    assert all(e.data["seq"] > position for e in entries)
    assert claims_of(token)["sid"] in {e.data["subject"] for e in entries}


def test_last_event_id_wins_over_after(live: LiveServer) -> None:
    """An EventSource reconnects to the URL it started with, adding Last-Event-ID: the
    header is the newer position."""
    with feed(live) as stream:
        _, _, beat = stream.catch_up()
    position = beat.data["seq"]
    with feed(live, params={"after": "0"}, headers={"Last-Event-ID": str(position)}) as stream:
        _, entries, _ = stream.catch_up()
    assert all(e.data["seq"] > position for e in entries)


def test_a_new_revocation_arrives_within_100_ms(live: LiveServer) -> None:
    """The connection wakes when the entry is applied, not at the next heartbeat."""
    with feed(live) as stream:
        stream.catch_up()
        token = live.token_pair()["access_token"]
        sid = claims_of(token)["sid"]
        answered: list[float] = []

        def log_out() -> None:
            logout(live, token)
            answered.append(time.monotonic())

        thread = threading.Thread(target=log_out)
        thread.start()
        while True:
            event = stream.next()
            assert event is not None
            if event.name == "revocation" and event.data["subject"] == sid:
                break
        thread.join()
    delay = event.arrived - answered[0]
    assert delay < 0.1, f"arrived {delay * 1000:.0f} ms after the logout answered"


def test_an_entry_written_by_another_process_arrives_promptly(
    make_server: ServerFactory,
) -> None:
    """Entries this instance follows (the CLI, other instances) wake the feed too."""
    server = make_server(event_poll_interval=0.02)
    with feed(server) as stream:
        stream.catch_up()
        started = time.monotonic()
        run_offline(server.settings, lambda rt: rt.authority.revoker.token("jti-cli", 9e9))
        written = time.monotonic()
        event = stream.until("revocation")[-1]
    assert event.data["subject"] == "jti-cli"
    assert event.arrived - written < 0.5, f"{event.arrived - started:.3f} s"


def test_a_key_entry_is_sent_only_once_the_jwks_has_the_change(
    make_server: ServerFactory,
) -> None:
    """A follower answers a key entry by reading the JWKS: the instance serving the feed
    has reloaded its keys by then, even when the feed read the entry before this
    instance's own follower did (here it polls only every 10 s)."""
    server = make_server(event_poll_interval=10, event_max_staleness=60)
    old_kid = server.runtime.keyring.signing_key.kid
    with feed(server) as stream:
        stream.catch_up()
        run_offline(
            server.settings,
            lambda rt: rt.admin.rotate_keys(compromised=True, actor=None, origin=Origin()),
        )
        event = stream.until("revocation")[-1]
        with server.client() as client:
            kids = {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}
    assert event.data["kind"] == "key"
    assert event.data["subject"] in kids
    assert old_kid not in kids


def test_session_entries_are_never_sent(make_server: ServerFactory) -> None:
    """A session entry concerns session caches only; the heartbeat id moves past it."""
    server = make_server()
    append(server, "family", "fam-before")
    append(server, "sessions", "some-user")
    with feed(server) as stream:
        hello, entries, beat = stream.catch_up()
        assert "session" not in {e.data["kind"] for e in entries}
        assert entries[-1].data["subject"] == "fam-before"
        assert beat.data["seq"] == entries[-1].data["seq"] + 1  # the session entry's
        assert hello.data["seq"] == beat.data["seq"]
        append(server, "sessions", "some-user")
        append(server, "family", "fam-after")
        events = stream.until("revocation")
    assert [e.data["subject"] for e in events if e.name == "revocation"] == ["fam-after"]


def test_heartbeats_come_every_second(make_server: ServerFactory) -> None:
    server = make_server()
    with feed(server) as stream:
        _, _, first = stream.catch_up()
        beats = [first] + [stream.until("heartbeat")[-1] for _ in range(2)]
    gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(beats)]
    assert all(0.8 < gap < 1.5 for gap in gaps), gaps
    assert all(b.id == str(b.data["seq"]) for b in beats)


def test_the_stream_ends_when_the_store_cannot_be_read(make_server: ServerFactory) -> None:
    """No heartbeat without a read: the stream ends, and a new connection gets a 503
    until the store is back (O3)."""
    server = make_server()
    store = server.runtime.session_store
    original = store.revocations_after

    async def broken(*args: object, **kwargs: object) -> Any:
        raise StoreUnavailable("down")

    with feed(server) as stream:
        stream.catch_up()
        store.revocations_after = broken  # type: ignore[method-assign]
        try:
            started = time.monotonic()
            while (event := stream.next()) is not None:
                assert event.name != "heartbeat"
            assert time.monotonic() - started < 1.5
            with server.client() as client:
                answer = client.get(FEED)
            assert answer.status_code == 503
            assert answer.json()["error"] == "store_unavailable"
        finally:
            store.revocations_after = original  # type: ignore[method-assign]
    with feed(server) as stream:
        stream.catch_up()


def test_a_stream_is_ended_after_its_lifetime(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections are cycled, so a graceful shutdown never waits on one for long."""
    monkeypatch.setattr(feed_route, "STREAM_LIFETIME", 1.5)
    server = make_server()
    with feed(server) as stream:
        started = time.monotonic()
        while stream.next() is not None:
            pass
    assert 1.4 < time.monotonic() - started < 3


def test_a_client_disconnect_ends_the_connection(make_server: ServerFactory) -> None:
    """The connection stops being told of entries once the client has gone."""
    server = make_server()
    observers = server.runtime.authority.revoker._observers
    baseline = len(observers)
    with feed(server) as stream:
        stream.catch_up()
        assert len(observers) == baseline + 1
    deadline = time.monotonic() + 2
    while len(observers) > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(observers) == baseline


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"after": "-1"}, {}),
        ({"after": "abc"}, {}),
        ({"after": "1.5"}, {}),
        ({"after": ""}, {}),
        ({"after": "9" * 40}, {}),
        ({}, {"Last-Event-ID": "x"}),
        ({}, {"Last-Event-ID": "-3"}),
        ({"after": "bad"}, {"Last-Event-ID": "3"}),
    ],
    ids=["negative", "text", "fraction", "empty", "huge", "id-text", "id-negative", "both"],
)
def test_a_bad_position_is_a_400(
    live: LiveServer, params: dict[str, str], headers: dict[str, str]
) -> None:
    with live.client() as client:
        answer = client.get(FEED, params=params, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


def test_a_private_feed_needs_client_credentials(make_server: ServerFactory) -> None:
    """revocation_feed_public=False: HTTP Basic client credentials, as for introspection."""
    server = make_server(revocation_feed_public=False)
    with server.client() as client:
        answer = client.get(FEED)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Basic")
        assert answer.json()["error"] == "invalid_client"
        wrong = client.get(FEED, headers=basic("tfc_nobody", "wrong"))
        assert wrong.status_code == 401
    with feed(server, headers=basic(*add_client(server))) as stream:
        stream.catch_up()


def test_a_public_feed_needs_nothing(live: LiveServer) -> None:
    with feed(live) as stream:
        stream.catch_up()


def test_a_position_past_the_end_restarts_from_the_beginning(live: LiveServer) -> None:
    """A follower whose position is past the stream's end (the store was replaced or
    restored from a backup) is told to reset and gets every entry from the start, so
    revocations under numbers it has already passed are not lost."""
    token = live.token_pair()["access_token"]
    logout(live, token)
    sid = claims_of(token)["sid"]
    with feed(live, headers={"Last-Event-ID": "999999999"}) as stream:
        hello, entries, beat = stream.catch_up()
    assert hello.data["reset"] is True
    assert hello.data["seq"] < 999999999
    assert sid in {e.data["subject"] for e in entries}
    assert int(beat.id or 0) <= hello.data["seq"]


def test_a_position_within_the_stream_is_not_reset(live: LiveServer) -> None:
    """An ordinary resume carries no reset."""
    with feed(live) as stream:
        hello, _, beat = stream.catch_up()
    assert "reset" not in hello.data
    with feed(live, params={"after": beat.data["seq"]}) as stream:
        assert "reset" not in stream.catch_up()[0].data


def test_a_catch_up_is_sent_a_batch_at_a_time(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up larger than a batch arrives whole, in order, read and sent batch by
    batch (never held in memory at once); the heartbeat comes only at its end."""
    monkeypatch.setattr(feed_route, "READ_BATCH", 3)
    server = make_server()
    for n in range(10):
        append(server, "family", f"batch-{n}")
    with feed(server) as stream:
        _, entries, beat = stream.catch_up()
    subjects = [e.data["subject"] for e in entries if e.data["subject"].startswith("batch-")]
    assert subjects == [f"batch-{n}" for n in range(10)]
    assert beat.data["seq"] == entries[-1].data["seq"]


def test_connections_are_bounded_per_address(make_server: ServerFactory) -> None:
    """A public feed cannot be made to hold unbounded connections: past the bound a new
    one is 503 busy with Retry-After, and a closed one frees its place."""
    server = make_server()
    gate = feed_route.FeedGate(total=10, per_address=2)
    server.app.state.feed_gate = gate
    with feed(server) as first, feed(server) as second:
        first.catch_up()
        second.catch_up()
        with server.client() as client:
            refused = client.get(FEED)
        assert refused.status_code == 503
        assert refused.json()["error"] == "busy"
        assert refused.headers["retry-after"] == "1"
    deadline = time.monotonic() + 5
    while True:  # the server notices the closed connections at its next send
        with server.client() as client, client.stream("GET", FEED) as answer:
            if answer.status_code == 200:
                break
        assert time.monotonic() < deadline, "closed feed connections were not released"
        time.sleep(0.2)
