"""Several ``twofold serve`` processes of one deployment (src/twofold/bench/instances.py)."""

from __future__ import annotations

from pathlib import Path

import httpx

from twofold.bench.instances import running_instances

PASSWORD = "correct horse battery staple"


def test_instances_share_store_and_keys(tmp_path: Path) -> None:
    """A token issued by one instance is accepted by another: same store, same keys."""
    with running_instances(count=2, data_dir=tmp_path / "data") as (first, second):
        assert first.port != second.port
        with httpx.Client(base_url=first.url) as client:
            client.post("/auth/register", json={"email": "a@example.com", "password": PASSWORD})
            login = client.post(
                "/auth/login",
                json={"email": "a@example.com", "password": PASSWORD, "mode": "jwt"},
            )
        assert login.status_code == 200
        token = login.json()["access_token"]
        me = httpx.get(f"{second.url}/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["email"] == "a@example.com"
        procs = [first.proc, second.proc]
    assert all(proc is not None and proc.poll() is not None for proc in procs)
    assert first.log.exists()


def test_stopped_instances_release_their_ports(tmp_path: Path) -> None:
    """After the block no process is left and the ports are free again."""
    with running_instances(count=1, data_dir=tmp_path / "data") as (instance,):
        assert httpx.get(f"{instance.url}/healthz").status_code == 200
    assert instance.proc is None
    try:
        httpx.get(f"{instance.url}/healthz", timeout=1)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the instance still answers after it was stopped")
