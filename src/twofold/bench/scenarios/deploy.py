"""Start a configuration's instances side by side, not one after the other.

``twofold serve`` spends a few seconds of CPU importing before it listens. The instances
of one deployment must not race to create the master key and the signing key, which is
why :func:`twofold.bench.instances.start_instances` starts them in turn; here that state
is made first, in this process (a runtime opened and closed on the store, which also
brings the schema up to date), after which every instance only reads it and all of them
can start at once. On a two-core machine that halves the wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from twofold.bench.configurations import ALGORITHMS, CONFIGURATIONS, Configuration
from twofold.bench.instances import Instance, stop_instances
from twofold.bench.results import Skipped
from twofold.bench.scenarios.stores import StoreURL
from twofold.config import Settings
from twofold.runtime import Runtime
from twofold.store.migrate import upgrade

__all__ = ["Deployment", "plan_deployments", "start_deployment", "start_deployments"]


async def _prepare(settings: Settings) -> None:
    runtime = await Runtime.start(settings)
    await runtime.close()


def _prepared(deployment: Deployment) -> list[Instance]:
    """The deployment's state made (schema, master key, signing key) and its instances,
    not yet started."""
    shared: dict[str, object] = dict(deployment.settings)
    if deployment.database_url is not None:
        shared["database_url"] = deployment.database_url
    if deployment.redis_url is not None:
        shared["redis_url"] = deployment.redis_url
    deployment.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if deployment.database_url is not None and not deployment.database_url.startswith("sqlite"):
        upgrade(deployment.database_url)
    asyncio.run(_prepare(Settings.model_validate({**shared, "data_dir": deployment.data_dir})))
    instances = [Instance(deployment.data_dir, settings=shared) for _ in range(deployment.count)]
    # One public URL, hence one token issuer: the first instance's.
    shared.setdefault("public_url", instances[0].url)
    return instances


def start_deployments(
    deployments: Sequence[Deployment], *, timeout: float = 30
) -> list[list[Instance] | Exception]:
    """Every instance of every deployment started at once; for each deployment its
    running instances, or why they did not start (the others of it then stopped)."""
    prepared: list[list[Instance] | Exception] = []
    for deployment in deployments:
        try:
            prepared.append(_prepared(deployment))
        except Exception as exc:  # handed back: that deployment is skipped
            prepared.append(exc)
    waiting = [i for group in prepared if isinstance(group, list) for i in group]
    try:
        with ThreadPoolExecutor(max(1, len(waiting))) as pool:
            futures = {id(i): pool.submit(i.start, timeout) for i in waiting}
    except BaseException:
        stop_instances(waiting)  # interrupted: none may outlive the run
        raise
    started: list[list[Instance] | Exception] = []
    for group in prepared:
        if isinstance(group, Exception):
            started.append(group)
            continue
        failure = next(
            (f for f in (futures[id(i)].exception() for i in group) if f is not None), None
        )
        if failure is None:
            started.append(group)
        else:
            stop_instances(group)
            started.append(failure if isinstance(failure, Exception) else RuntimeError(failure))
    return started


def start_deployment(deployment: Deployment, *, timeout: float = 30) -> list[Instance]:
    """The deployment's instances, running (see :func:`start_deployments`)."""
    (result,) = start_deployments([deployment], timeout=timeout)
    if isinstance(result, Exception):
        raise result
    return result


@dataclass(frozen=True)
class Deployment:
    """Instances on one store that serve one or more configurations: the SQLite
    deployment signs with ES256, so it serves both ``session/SQLite`` and ``JWT ES256``
    (one server does both modes side by side)."""

    name: str
    configurations: tuple[Configuration, ...]
    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    settings: Mapping[str, object] = field(default_factory=dict)
    count: int = 2


def plan_deployments(
    work: Path,
    postgres: StoreURL,
    redis: StoreURL,
    *,
    jwt_instances: int,
    shared_store_instances: int,
) -> list[Deployment | Skipped]:
    """What to start for every configuration, in report order; a configuration whose
    store is missing comes back as a skip with the reason."""
    by_name = {c.name: c for c in CONFIGURATIONS}
    planned: list[Deployment | Skipped] = [
        Deployment(
            "sqlite",
            (by_name["session/SQLite"], by_name["JWT ES256"]),
            work / "sqlite",
            settings={"signing_algorithm": "ES256"},
        )
    ]
    if postgres.url is None:
        planned.append(Skipped("session/PostgreSQL", postgres.reason))
    else:
        planned.append(
            Deployment(
                "postgres",
                (by_name["session/PostgreSQL"],),
                work / "pg",
                postgres.url,
                count=shared_store_instances,
            )
        )
    if redis.url is None:
        planned.append(Skipped("session/Redis", redis.reason))
    else:
        # Redis keeps sessions and the revocation stream; accounts live beside it in
        # PostgreSQL where there is one (as docs/deployment.md describes), else in SQLite.
        # Beside PostgreSQL, the PostgreSQL deployment's directory: its master key
        # seals the signing keys kept in that database.
        data_dir = work / ("pg" if postgres.url is not None else "redis")
        planned.append(
            Deployment(
                "redis",
                (by_name["session/Redis"],),
                data_dir,
                postgres.url,
                redis.url,
                count=shared_store_instances,
            )
        )
    for algorithm in ALGORITHMS:
        if algorithm == "ES256":
            continue
        # The signing key's algorithm is fixed once the key exists: a directory each.
        planned.append(
            Deployment(
                f"jwt-{algorithm}",
                (by_name[f"JWT {algorithm}"],),
                work / f"jwt-{algorithm}",
                settings={"signing_algorithm": algorithm},
                count=jwt_instances,
            )
        )
    return planned
