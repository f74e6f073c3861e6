"""Three ``twofold serve`` processes sharing one store behind nginx (C13, T9): what one
instance issues, every instance accepts; what one instance revokes, every other instance
refuses within milliseconds (pushed, not polled), and nginx never answers 200 for a
credential once the instance behind it has refused it.

Run once per deployment: PostgreSQL alone, PostgreSQL + Redis, and PostgreSQL + Redis
with the session cache. ``-s`` shows the measured propagation figures;
``benchmarks/propagation.py`` measures the same with more rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from .agent import NGINX, Agent, bearer, nginx_client
from .cluster import DEPLOYMENTS, PASSWORD, Cluster, running_cluster
from .figures import figures, resolve, revoker_refused_at_once, table, wrong_answers
from .nginx import read_access_log
from .revocations import KINDS, accepted_everywhere, one_round

#: Five revocations a round: 30 per deployment, each timed on the two other instances.
ROUNDS = 6
#: The issue's 100 ms, on the median: a shared CI machine can stall any one process for
#: a few hundred ms, so the tail is reported, not asserted, beyond WORST_BOUND. Only push
#: meets it: without push an instance reads the stream on its heartbeat (every 0.5 s) or
#: once a second (cluster.PULL_INTERVAL), a median of 250 ms or more.
P50_BOUND = 0.1
WORST_BOUND = 1.0
#: A restart costs seconds; nginx's failover does not depend on the store, so it and the
#: catch-up after a restart run once, where the most parts are (Redis stream, cache).
ONCE = "run on the last deployment only (a restart costs seconds)"


@pytest.fixture(scope="module", params=DEPLOYMENTS, ids=[d.name for d in DEPLOYMENTS])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The deployment, running for this module's tests; every process stops after them."""
    deployment = request.param
    postgres = request.getfixturevalue("postgres_server")
    redis = request.getfixturevalue("redis_server") if deployment.redis else None
    workdir = tmp_path_factory.mktemp(deployment.name)
    with running_cluster(deployment, postgres, redis, workdir) as running:
        yield running


async def test_every_instance_accepts_what_another_issued(cluster: Cluster) -> None:
    """Sessions and tokens made through instance 1 or through nginx work on every
    instance, directly and through nginx, and a refresh through one works on another."""
    async with Agent.open(cluster) as agent:
        for login_via in (0, NGINX):
            email = await agent.register(login_via)
            session = await agent.login(email, "session", login_via)
            token = await agent.login(email, "jwt", login_via)
            await accepted_everywhere(agent, session)
            await accepted_everywhere(agent, token)
            refreshed = await agent.client(1).post(
                "/auth/refresh", json={"refresh_token": token.refresh_token}
            )
            assert refreshed.status_code == 200, refreshed.text
            pair = refreshed.json()
            again = await agent.client(2).get("/auth/me", headers=bearer(pair["access_token"]))
            assert again.json()["email"] == email
        through_nginx = [await agent.client(NGINX).get("/readyz") for _ in range(3)]
    assert [a.json() for a in through_nginx] == [{"status": "ready"}] * 3
    # Over TLS at nginx, with public_url on https: HSTS and the request id come back.
    assert through_nginx[0].headers["strict-transport-security"].startswith("max-age=")
    assert through_nginx[0].headers["x-request-id"]
    served = {line.upstream for line in read_access_log(cluster.access_log).values()}
    assert served == set(cluster.addresses), "round robin reaches all three instances"


async def test_revocations_reach_every_instance_at_once(cluster: Cluster) -> None:
    """Logout (session and JWT), lock, role change and emergency key rotation through one
    instance are refused by the others within milliseconds, by the revoking instance on
    the very next request, and never accepted again through nginx afterwards."""
    async with Agent.open(cluster) as agent:
        events = [event for n in range(ROUNDS) for event in await one_round(agent, n)]
    log = read_access_log(cluster.access_log)
    resolve(events, log, cluster.addresses)
    size = len(cluster.instances)
    by_kind = figures(events, size)
    print(f"\n{table(cluster.deployment.name, by_kind)}")

    assert {e.kind for e in events} == set(KINDS)
    assert len(events) >= 30
    assert all(e.revoker is not None for e in events), "nginx logged every revocation"
    late = [(e.kind, e.via) for e in events if not revoker_refused_at_once(e)]
    assert not late, f"the revoking instance accepted after answering: {late}"
    wrong = [(e.kind, w) for e in events for w in wrong_answers(e, log, cluster.addresses)]
    assert not wrong, f"accepted after a refusal on the same instance, or failed: {wrong}"
    overall = by_kind["all"]
    assert len(overall.delays) == sum(len(e.watches) for e in events) * (size - 1)
    assert all(math.isfinite(d) for d in overall.upper), "an instance never refused"
    assert overall.worst < WORST_BOUND, table(cluster.deployment.name, by_kind)
    assert overall.p50 < P50_BOUND, table(cluster.deployment.name, by_kind)


async def test_a_dead_instance_is_skipped_and_catches_up_when_back(cluster: Cluster) -> None:
    """nginx keeps answering when an instance dies (SIGKILL); what was revoked while it
    was down is refused by it on its first request after it is back."""
    if cluster.deployment != DEPLOYMENTS[-1]:
        pytest.skip(ONCE)
    async with Agent.open(cluster) as agent:
        email = await agent.register(0)
        session = await agent.login(email, "session", 0)
        token = await agent.login(email, "jwt", 0)
        await accepted_everywhere(agent, token)
        dead = cluster.instances[2]
        dead.kill()
        try:
            answers = [await agent.me(token, NGINX) for _ in range(6)]
            assert [a.status_code for a in answers] == [200] * 6
            assert (await agent.logout(token, 0)).status_code == 204
            assert (await agent.logout(session, 1)).status_code == 204
            answers = [await agent.me(token, NGINX) for _ in range(6)]
            assert [a.status_code for a in answers] == [401] * 6
        finally:
            dead.start()
        assert (await agent.me(token, 2)).status_code == 401
        assert (await agent.me(session, 2)).status_code == 401


async def test_client_address_behind_nginx_is_the_clients(cluster: Cluster) -> None:
    """The device list shows the address of the client, not of the proxy."""
    client_ip = "127.0.0.7"
    account = {"email": "far-away@example.com", "password": PASSWORD}
    async with nginx_client(cluster, local_address=client_ip) as client:
        assert (await client.post("/auth/register", json=account)).status_code == 201
        login = await client.post("/auth/login", json={**account, "mode": "jwt"})
        devices = await client.get("/auth/sessions", headers=bearer(login.json()["access_token"]))
    (current,) = [d for d in devices.json()["sessions"] if d["current"]]
    assert current["client_address"] == client_ip
