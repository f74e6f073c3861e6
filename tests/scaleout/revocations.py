"""Revoke through one instance and time how long each of the others takes to refuse.

A round logs a new user in (directly through the first instance, or through nginx) and
makes five revocations through one instance (or through nginx): a JWT logout, a session
logout, an emergency key rotation, a role change and a lock. Before each, every instance
and nginx must accept the credentials concerned; after it, every instance is polled
directly, every couple of milliseconds, until it refuses, and nginx is polled until a few
answers after the last instance refused.

A delay runs from the moment the revoking answer arrived to the moment the first refusing
answer of an instance arrived: an upper bound, which includes that poll's round trip. The
lower bound is when the last poll that was still accepted was sent (0 when the first poll
after the answer was already refused).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx

from .agent import NGINX, Agent, Credential, Outcome, Via, now

Kind = Literal["jwt-logout", "session-logout", "key-rotation", "role-change", "lock"]
KINDS: tuple[Kind, ...] = ("jwt-logout", "session-logout", "key-rotation", "role-change", "lock")

#: Pause between two polls of one instance until it refuses; slower afterwards (it is
#: then only checked to stay refused).
POLL_INTERVAL = 0.002
RECHECK_INTERVAL = 0.02
#: Give up on an instance that has not refused by then (seconds after the revocation).
DEADLINE = 2.0
#: Answers nginx must give after the last instance refused (two round-robin turns).
NGINX_AFTER = 6


@dataclass(frozen=True)
class Sample:
    via: Via
    sent: float
    received: float
    outcome: Outcome
    status: int
    request_id: str | None = None


@dataclass
class Watch:
    """Every answer to one credential after one revocation."""

    credential: Credential
    samples: list[Sample] = field(default_factory=list)

    def direct(self, instance: int) -> list[Sample]:
        return [s for s in self.samples if s.via == instance]


@dataclass
class Event:
    kind: Kind
    via: Via
    #: When the revoking answer arrived.
    at: float
    watches: list[Watch]
    request_id: str | None = None
    #: The instance that made the revocation (for ``via`` nginx: from nginx's log).
    revoker: int | None = None


async def _pause(seconds: float, stop: asyncio.Event) -> None:
    """Sleep, but wake up at once when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _poll(
    agent: Agent,
    watch: Watch,
    via: Via,
    lane: int,
    refused: asyncio.Event,
    stop: asyncio.Event,
    limit: float,
) -> None:
    """Poll one instance until ``stop``; set ``refused`` at its first refusal."""
    probe = agent.probe(via, lane)
    while not stop.is_set() and now() < limit:
        sent = now()
        answer = await probe.get("/auth/me", watch.credential.headers)
        outcome = watch.credential.outcome(answer.status, answer.body)
        watch.samples.append(Sample(via, sent, now(), outcome, answer.status))
        if outcome != "accepted":
            refused.set()
        await _pause(RECHECK_INTERVAL if refused.is_set() else POLL_INTERVAL, stop)


async def _poll_nginx(
    agent: Agent, watch: Watch, lane: int, all_refused: asyncio.Event, limit: float
) -> None:
    probe = agent.probe(NGINX, lane)
    after = 0
    while after < NGINX_AFTER and now() < limit:
        counted = all_refused.is_set()
        sent = now()
        answer = await probe.get("/auth/me", watch.credential.headers)
        outcome = watch.credential.outcome(answer.status, answer.body)
        request_id = answer.headers.get("x-request-id")
        watch.samples.append(Sample(NGINX, sent, now(), outcome, answer.status, request_id))
        after += counted
        await asyncio.sleep(POLL_INTERVAL)


async def watch_all(agent: Agent, credentials: Sequence[Credential], at: float) -> list[Watch]:
    """Poll every instance directly and nginx with each credential; done once every
    instance refuses every credential and nginx answered ``NGINX_AFTER`` more times."""
    limit = at + DEADLINE
    watches = [Watch(c) for c in credentials]
    stop = asyncio.Event()
    instances = range(len(agent.cluster.instances))
    flags = [[asyncio.Event() for _ in instances] for _ in watches]
    all_refused = asyncio.Event()

    async def until_all_refused() -> None:
        for flag in (f for per_watch in flags for f in per_watch):
            await flag.wait()
        all_refused.set()

    pollers = [
        asyncio.create_task(_poll(agent, w, i, n, flags[n][i], stop, limit))
        for n, w in enumerate(watches)
        for i in instances
    ]
    waiter = asyncio.create_task(until_all_refused())
    try:
        await asyncio.gather(
            *(_poll_nginx(agent, w, n, all_refused, limit) for n, w in enumerate(watches))
        )
    finally:
        stop.set()
        waiter.cancel()
        failures = await asyncio.gather(*pollers, return_exceptions=True)
    for failure in failures:
        if isinstance(failure, BaseException):
            raise failure
    return watches


async def accepted_everywhere(agent: Agent, credential: Credential, lane: int = 0) -> None:
    """The credential works on every instance directly and through nginx (one turn of
    its round robin). Polls ``lane``'s connections, which warms them for a watch."""

    async def check(via: Via, times: int) -> None:
        for _ in range(times):
            answer = await agent.probe(via, lane).get("/auth/me", credential.headers)
            outcome = credential.outcome(answer.status, answer.body)
            assert outcome == "accepted", (via, answer.status, answer.body)

    size = len(agent.cluster.instances)
    await asyncio.gather(*(check(i, 1) for i in range(size)), check(NGINX, size))


Revocation = Callable[[Via], Awaitable[httpx.Response]]


async def revoke(
    agent: Agent, kind: Kind, via: Via, action: Revocation, credentials: Sequence[Credential]
) -> Event:
    for lane, credential in enumerate(credentials):
        await accepted_everywhere(agent, credential, lane)
    answer = await action(via)
    at = now()
    assert answer.status_code in (200, 204), (kind, answer.status_code, answer.text)
    watches = await watch_all(agent, credentials, at)
    request_id = answer.headers.get("x-request-id") if via == NGINX else None
    revoker = via if isinstance(via, int) else None
    return Event(kind, via, at, watches, request_id, revoker)


async def one_round(agent: Agent, number: int) -> list[Event]:
    """Five revocations of a new user's credentials (see the module docstring). The
    compromised key goes first, as it ends every token; logins run at once where they
    can (a password hash each). The lock follows the role change as in the bank
    scenario, usually within the same second: the user's second cut must go past the
    first (tests/scaleout/test_same_second_revocations.py)."""
    login_via: Via = 0 if number % 2 == 0 else NGINX
    size = len(agent.cluster.instances)
    via: Via = number % size if (number // size) % 2 == 0 else NGINX
    user = await agent.register(login_via)

    def login(mode: Literal["session", "jwt"]) -> Awaitable[Credential]:
        return agent.login(user, mode, login_via)

    token = await login("jwt")
    rotate = {"compromised": True}
    events = [
        await revoke(
            agent,
            "key-rotation",
            via,
            lambda v: agent.as_admin("POST", "/admin/keys/rotate", v, rotate),
            [token],
        )
    ]
    logins = await asyncio.gather(login("jwt"), login("session"), login("session"), login("jwt"))
    token, session, changed = logins[0], logins[1], logins[2:]
    events.append(await revoke(agent, "jwt-logout", via, lambda v: agent.logout(token, v), [token]))
    events.append(
        await revoke(agent, "session-logout", via, lambda v: agent.logout(session, v), [session])
    )
    roles = {"roles": ["user", "auditor"]}
    path = f"/admin/users/{token.user_id}"
    events.append(
        await revoke(
            agent,
            "role-change",
            via,
            lambda v: agent.as_admin("PUT", f"{path}/roles", v, roles),
            changed,
        )
    )
    again = await asyncio.gather(login("session"), login("jwt"))
    events.append(
        await revoke(agent, "lock", via, lambda v: agent.as_admin("POST", f"{path}/lock", v), again)
    )
    return events
