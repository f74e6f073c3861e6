"""A deployment of three ``twofold serve`` processes behind nginx, as docs/deployment.md
describes it: a fresh PostgreSQL database migrated with ``twofold migrate``, optionally a
Redis beside it, one master key file shared by instances that each have their own data
directory, one ``public_url`` (nginx's, over TLS), and the first admin made with
``twofold user add --role admin``. Everything started here is stopped on the way out,
whatever happened."""

from __future__ import annotations

import base64
import contextlib
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from redis import Redis as RedisClient

from tests.processes import TWOFOLD, TwofoldProcess, migrate
from tests.services import Nginx, Postgres, Redis, free_port

from .nginx import Certificate, loopback_block

ADMIN_EMAIL = "admin@example.com"
PASSWORD = "correct horse battery staple"
SIZE = 3
#: Seconds between reads of the revocation stream that are not woken by a push.
PULL_INTERVAL = 1.0


@dataclass(frozen=True)
class Deployment:
    """What the instances share besides PostgreSQL."""

    name: str
    redis: bool = False
    session_cache_ttl: float = 0.0


DEPLOYMENTS = (
    Deployment("postgres"),
    Deployment("postgres-redis", redis=True),
    Deployment("postgres-redis-cache", redis=True, session_cache_ttl=30.0),
)


@dataclass
class Cluster:
    deployment: Deployment
    instances: list[TwofoldProcess]
    nginx: Nginx
    certificate: Certificate
    access_log: Path

    @property
    def public_url(self) -> str:
        """What clients use, and every instance's ``public_url`` (hence the JWT issuer)."""
        return f"https://127.0.0.1:{self.nginx.port}"

    @property
    def addresses(self) -> list[str]:
        """How nginx names the instances (``$upstream_addr``)."""
        return [f"127.0.0.1:{instance.port}" for instance in self.instances]


def write_master_key(path: Path) -> None:
    """A new 256-bit master key (base64url), owner-only, as an operator makes one."""
    path.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() + "\n")
    path.chmod(0o600)


def twofold_cli(instance: TwofoldProcess, *args: str, stdin: str = "") -> str:
    """A ``twofold`` command with an instance's settings (its environment), as an operator
    would run it on that machine."""
    answer = subprocess.run(
        [str(TWOFOLD), *args],
        input=stdin,
        env=instance.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"twofold {' '.join(args)} failed: {answer.stderr[-2000:]}")
    return answer.stdout


def _create_database(postgres: Postgres, name: str) -> str:
    # Postgres.create() returns once the port is open, which can be before the server
    # accepts connections ("the database system is starting up").
    deadline = time.monotonic() + 15
    while True:
        try:
            return postgres.create_database(name)
        except subprocess.CalledProcessError as exc:
            if "starting up" not in str(exc.stderr) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def running_cluster(
    deployment: Deployment, postgres: Postgres, redis: Redis | None, workdir: Path
) -> Iterator[Cluster]:
    """Start the deployment; stop every process it started when the block ends."""
    database_url = _create_database(postgres, f"scaleout_{uuid.uuid4().hex[:12]}")
    key_file = workdir / "master.key"
    write_master_key(key_file)
    nginx_port = free_port()
    settings: dict[str, object] = {
        "database_url": database_url,
        "master_key_file": key_file,
        "public_url": f"https://127.0.0.1:{nginx_port}",
        # nginx runs on this machine: its X-Forwarded-For names the client.
        "trusted_proxies": "127.0.0.1",
        "session_cache_ttl": deployment.session_cache_ttl,
        # Without push an instance would read the stream only once a second (the poll
        # interval, and the heartbeat of a quarter of the staleness bound): propagation
        # in milliseconds can then only come from the push.
        "event_poll_interval": PULL_INTERVAL,
        "event_max_staleness": 4 * PULL_INTERVAL,
    }
    if deployment.redis:
        if redis is None:
            raise ValueError(f"{deployment.name} needs a Redis")
        # A database number of its own, emptied: a fresh store like the PostgreSQL one.
        db = 1 + DEPLOYMENTS.index(deployment)
        with RedisClient.from_url(redis.url(db)) as client:
            client.flushdb()
        settings["redis_url"] = redis.url(db)
    instances = [TwofoldProcess(workdir / f"instance{i}", dict(settings)) for i in range(SIZE)]
    migrate(database_url, workdir / "instance0")
    certificate = Certificate.create(workdir)
    access_log = workdir / "nginx-access.log"
    nginx: Nginx | None = None
    try:
        with ThreadPoolExecutor(SIZE + 1) as pool:
            started = [pool.submit(instance.start) for instance in instances]
            admin = pool.submit(
                twofold_cli, instances[0], "user", "add", ADMIN_EMAIL, "--role", "admin",
                stdin=PASSWORD + "\n",
            )  # fmt: skip
            admin.result()
            for future in started:
                future.result()
        addresses = [f"127.0.0.1:{instance.port}" for instance in instances]
        nginx = Nginx.create(loopback_block(addresses, certificate, access_log), port=nginx_port)
        yield Cluster(deployment, instances, nginx, certificate, access_log)
    finally:
        if nginx is not None:
            nginx.remove()
        for instance in instances:
            instance.stop()
