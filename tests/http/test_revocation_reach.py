"""Revocation reaches every process that shares the store, and survives a restart (T9).

Two servers on one SQLite data directory stand in for several instances; each follows the
revocation stream. Their clocks are frozen, so only propagation, never expiry, is at play,
and they share one issuer, as instances behind one public URL do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TypeVar

import httpx

from tests.conftest import LiveServer, bearer, run_offline, start_server, stop_server
from twofold.authority import Origin
from twofold.clock import FrozenClock
from twofold.runtime import Runtime

_T = TypeVar("_T")
SHARED: dict[str, object] = {"issuer": "http://twofold.test", "event_poll_interval": 0.05}


def me(server: LiveServer, token: str) -> httpx.Response:
    with server.client() as client:
        return client.get("/auth/me", headers=bearer(token))


def refused_within(server: LiveServer, token: str, seconds: float) -> float:
    """Seconds until ``server`` refuses ``token``; fails after ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if me(server, token).status_code == 401:
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"still accepted after {seconds} s")


def test_logout_on_one_instance_is_refused_on_the_other(tmp_path: Path) -> None:
    a, running_a = start_server(tmp_path / "data", FrozenClock(time.time()), **SHARED)
    b, running_b = start_server(tmp_path / "data", FrozenClock(time.time()), **SHARED)
    try:
        email = a.register()
        pair = a.token_pair(email)
        assert me(b, pair["access_token"]).status_code == 200  # shared keys and store
        with b.client() as client:
            out = client.post(
                "/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"}
            )
        assert out.status_code == 204
        assert me(b, pair["access_token"]).status_code == 401  # at once where it happened
        delay = refused_within(a, pair["access_token"], 2.0)
        assert delay < 1.0
    finally:
        stop_server(running_b)
        stop_server(running_a)


def test_a_compromised_key_rotated_from_the_cli_reaches_every_instance(tmp_path: Path) -> None:
    """Rotated by another process: both servers sign with the new key and refuse the old
    key's tokens within a moment, without a restart."""
    a, running_a = start_server(tmp_path / "data", FrozenClock(time.time()), **SHARED)
    b, running_b = start_server(tmp_path / "data", FrozenClock(time.time()), **SHARED)
    try:
        email = a.register()
        old = a.token_pair(email)["access_token"]
        old_kid = a.runtime.keyring.signing_key.kid
        run_offline(
            a.settings,
            lambda rt: rt.admin.rotate_keys(compromised=True, actor=None, origin=Origin()),
        )
        for server in (a, b):
            refused_within(server, old, 2.0)
            assert server.runtime.keyring.signing_key.kid != old_kid
            assert server.runtime.keyring.get(old_kid) is None
        new = a.token_pair(email)["access_token"]
        answer = me(b, new)
        assert answer.status_code == 200, answer.headers.get("www-authenticate")
    finally:
        stop_server(running_b)
        stop_server(running_a)


def test_a_lock_from_the_cli_reaches_the_server(tmp_path: Path) -> None:
    live, running = start_server(tmp_path / "data", FrozenClock(time.time()), **SHARED)
    try:
        email = live.register()
        pair = live.token_pair(email)

        async def lock(runtime: Runtime) -> None:
            user = await runtime.admin.find_user(email)
            await runtime.admin.lock(user.id, actor=None, origin=Origin())

        run_offline(live.settings, lock)
        assert refused_within(live, pair["access_token"], 2.0) < 1.0
    finally:
        stop_server(running)


def test_revocations_survive_a_restart(tmp_path: Path) -> None:
    clock = FrozenClock(time.time())
    a, running = start_server(tmp_path / "data", clock, **SHARED)
    email = a.register()
    pair = a.token_pair(email)
    with a.client() as client:
        client.post("/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"})
    stop_server(running)
    again, running = start_server(tmp_path / "data", clock, **SHARED)
    try:
        answer = me(again, pair["access_token"])
        assert answer.status_code == 401
        assert "revoked" in answer.headers["www-authenticate"]
    finally:
        stop_server(running)


def test_the_request_after_a_cli_lock_is_refused(tmp_path: Path) -> None:
    """`twofold user lock` returns once running servers have read the stream: the very
    next request with the user's token is refused, with no waiting by the caller."""
    from typer.testing import CliRunner

    from twofold.cli import app

    live, running = start_server(tmp_path / "data", FrozenClock(time.time()), **SHARED)
    try:
        email = live.register()
        pair = live.token_pair(email)
        result = CliRunner().invoke(
            app,
            ["user", "lock", email, "--data-dir", str(live.settings.data_dir)],
            env={
                "TWOFOLD_ARGON2_PROFILE": "owasp-minimum",
                "TWOFOLD_ISSUER": "http://twofold.test",
            },
        )
        assert result.exit_code == 0, result.output
        assert me(live, pair["access_token"]).status_code == 401
    finally:
        stop_server(running)
