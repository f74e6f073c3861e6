"""Two user revocations within one second (T9), found by the scale-out test's rounds (a
role change, then a lock of the same user a few hundred milliseconds later).

A user revocation cuts at the next whole second, and tokens issued after it are stamped
``iat`` = that cut so that they pass; a second cut in the same second must therefore go
past the first, or the tokens issued between the two survive it. Nothing here needs
separate processes: servers in this process with a frozen clock show it.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import LiveServer, bearer, make_admin, start_server, stop_server
from twofold.clock import FrozenClock


def test_a_lock_right_after_a_role_change_refuses_tokens_issued_between(
    fresh_live: LiveServer,
) -> None:
    """A token issued after a role change is refused once the user is locked, even
    within the same second."""
    live = fresh_live
    admin = bearer(live.token_pair(make_admin(live))["access_token"])
    victim = live.register()
    with live.client() as client:
        me = client.get("/auth/me", headers=bearer(live.token_pair(victim)["access_token"]))
        path = f"/admin/users/{me.json()['id']}"
        changed = client.put(f"{path}/roles", headers=admin, json={"roles": ["user", "auditor"]})
        assert changed.status_code == 200, changed.text
        between = bearer(live.token_pair(victim)["access_token"])
        assert client.get("/auth/me", headers=between).status_code == 200
        locked = client.post(f"{path}/lock", headers=admin)
        assert locked.status_code == 200, locked.text
        answer = client.get("/auth/me", headers=between)
    assert answer.status_code == 401, "a locked user's token issued after the role change"


def test_a_lock_through_another_instance_in_the_same_second_refuses_tokens_issued_between(
    tmp_path: Path,
) -> None:
    """The same through two instances: the lock goes through one that has not yet read
    the role change's cut from the stream (a window of the propagation time: milliseconds
    with push, up to event_poll_interval with SQLite; here widened to seconds)."""
    clock = FrozenClock(time.time())
    shared = {"public_url": "http://twofold.test"}
    a, running_a = start_server(tmp_path / "data", clock, **shared)
    b, running_b = start_server(
        tmp_path / "data", clock, event_poll_interval=10, event_max_staleness=20, **shared
    )
    try:
        admin = bearer(a.token_pair(make_admin(a))["access_token"])
        victim = a.register()
        with a.client() as through_a, b.client() as through_b:
            me = through_a.get("/auth/me", headers=bearer(a.token_pair(victim)["access_token"]))
            path = f"/admin/users/{me.json()['id']}"
            roles = {"roles": ["user", "auditor"]}
            assert through_a.put(f"{path}/roles", headers=admin, json=roles).status_code == 200
            between = bearer(a.token_pair(victim)["access_token"])
            assert through_b.post(f"{path}/lock", headers=admin).status_code == 200
            time.sleep(5 * a.settings.event_poll_interval)  # a reads b's cut
            answer = through_a.get("/auth/me", headers=between)
        assert answer.status_code == 401, "a locked user's token issued after the role change"
    finally:
        stop_server(running_b)
        stop_server(running_a)
