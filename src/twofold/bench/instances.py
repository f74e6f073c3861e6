"""``twofold serve`` as real processes on loopback ports: one for a throughput figure,
several on one store for the figures that cross instances (a revocation made on one and
refused by another). Settings go in as ``TWOFOLD_*`` environment variables, exactly as an
operator would give them; each process logs to a file of its own.

The tests start their processes through here too (tests/processes.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from twofold.bench.services import end_process, free_port

__all__ = [
    "TWOFOLD",
    "Instance",
    "migrate",
    "running_instances",
    "start_instances",
    "stop_instances",
]

#: The ``twofold`` command of the running interpreter's environment.
TWOFOLD = Path(sys.executable).with_name("twofold")

#: Settings every instance gets unless overridden: the cheapest Argon2 profile the product
#: allows, one hash worker, quiet logs.
DEFAULT_SETTINGS: Mapping[str, object] = {
    "argon2_profile": "owasp-minimum",
    "hash_workers": 1,
    "log_level": "warning",
}


def _twofold_command() -> list[str]:
    # `python -m twofold` where the console script is not beside the interpreter.
    return [str(TWOFOLD)] if TWOFOLD.exists() else [sys.executable, "-m", "twofold"]


def migrate(database_url: str, data_dir: Path) -> None:
    """``twofold migrate`` for a server database (SQLite migrates itself at start)."""
    subprocess.run(  # noqa: S603 - our own argument list
        [*_twofold_command(), "migrate", "--database-url", database_url,
         "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
    )  # fmt: skip


@dataclass
class Instance:
    """One ``twofold serve`` on 127.0.0.1 with its own port; ``settings`` are option
    names (``database_url``) mapped to values. Instances of one deployment share
    ``data_dir`` (the master key, hence the signing keys) and the store."""

    data_dir: Path
    settings: dict[str, object] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    #: HTTPS with the self-signed certificate `twofold serve --tls-self-signed` makes (and
    #: keeps) in the data directory, for localhost, 127.0.0.1 and ::1.
    tls: bool = False
    #: Run this ASGI app ("examples/rails_login/app.py") under uvicorn instead of
    #: ``twofold serve``, with the same environment: an app of a user's own.
    app: Path | None = None
    #: Answers 200 once the process is ready.
    ready_path: str = "/healthz"
    #: Further environment variables, e.g. ``{"TWOFOLD_HASH_WORKERS": "2"}``.
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"twofold-{self.port}.log"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFOLD_")}
        values: dict[str, object] = {
            **DEFAULT_SETTINGS,
            **({"tls_self_signed": "true"} if self.tls else {}),
            **self.settings,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": self.data_dir,
        }
        env.update({f"TWOFOLD_{name.upper()}": str(value) for name, value in values.items()})
        env.update(self.env)
        return env

    def command(self) -> list[str]:
        if self.app is None:
            return [*_twofold_command(), "serve"]
        return [
            *(sys.executable, "-m", "uvicorn", f"{self.app.stem}:app"),
            *("--app-dir", str(self.app.parent), "--host", "127.0.0.1", "--port", str(self.port)),
            *("--no-proxy-headers", "--no-access-log"),
        ]

    def start(self, timeout: float = 30) -> Instance:
        """Start the process and return once ``ready_path`` answers 200."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own argument list
                self.command(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"twofold serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                # No certificate check: plain HTTP needs no TLS context (building one costs
                # ~40 ms per poll), and the self-signed certificate would not pass one.
                ready = httpx.get(f"{self.url}{self.ready_path}", timeout=1, verify=False)  # noqa: S501
                if ready.status_code == 200:
                    return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"twofold serve did not answer in {timeout} s")

    def stop(self) -> None:
        """SIGTERM and wait (a graceful shutdown)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.proc is not None:
            end_process(self.proc, signum)
        self.proc = None


def start_instances(
    *,
    count: int,
    data_dir: Path,
    database_url: str | None = None,
    redis_url: str | None = None,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
    timeout: float = 30,
) -> list[Instance]:
    """``count`` instances of one deployment: the same data directory (so the same master
    key and signing keys), the same store and the same public URL (the token issuer: the
    first instance's unless ``settings`` name one). Without ``database_url`` the store is the
    SQLite database in ``data_dir``; a server database is migrated first. ``settings``
    are option names mapped to values, ``env`` raw environment variables; both override
    :data:`DEFAULT_SETTINGS`. If one fails to start, those already started are stopped."""
    if count < 1:
        raise ValueError("count must be at least 1")
    shared: dict[str, object] = dict(settings or {})
    if database_url is not None:
        shared["database_url"] = database_url
        if not database_url.startswith("sqlite"):
            migrate(database_url, data_dir)
    if redis_url is not None:
        shared["redis_url"] = redis_url
    instances = [Instance(data_dir, settings=shared, env=dict(env or {})) for _ in range(count)]
    # One public URL, hence one token issuer, for the deployment: the first instance's.
    shared.setdefault("public_url", instances[0].url)
    started: list[Instance] = []
    try:
        # One after the other: the first creates the master key and the signing keys the
        # others then read, instead of several racing to create them.
        for instance in instances:
            started.append(instance.start(timeout))
    except BaseException:
        stop_instances(started)
        raise
    return started


def stop_instances(instances: Iterable[Instance]) -> None:
    """Stop each (SIGTERM, then SIGKILL after 30 s); logs stay in their files."""
    for instance in instances:
        instance.stop()


@contextlib.contextmanager
def running_instances(
    *,
    count: int,
    data_dir: Path,
    database_url: str | None = None,
    redis_url: str | None = None,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
    timeout: float = 30,
) -> Iterator[list[Instance]]:
    """:func:`start_instances` for the block, :func:`stop_instances` after it."""
    instances = start_instances(
        count=count,
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        env=env,
        settings=settings,
        timeout=timeout,
    )
    try:
        yield instances
    finally:
        stop_instances(instances)
