"""Throwaway PostgreSQL and Redis servers: each a private process on a loopback port of its
own, from the Debian binaries (``scripts/install-services`` installs them), removed with
its files when done. ``twofold bench`` measures stores it starts itself this way, and the
tests start theirs through here too (tests/services.py).

A server that is not installed, or does not start, raises :class:`Unavailable`: a
benchmark reports the store as skipped with the reason instead of failing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

__all__ = [
    "Postgres",
    "Redis",
    "Server",
    "ServerExited",
    "Unavailable",
    "end_process",
    "free_port",
    "throwaway_postgres",
    "throwaway_redis",
    "wait_for_port",
]

#: Tries to start a server before giving up.
START_ATTEMPTS = 3
INSTALL_HINT = "run scripts/install-services"


class Unavailable(Exception):
    """A server cannot be had here; ``reason`` says why, for a "skipped" line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServerExited(RuntimeError):
    """The server process ended while it was being waited for."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Return once something accepts connections on ``port``; raise if ``proc`` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerExited(f"the server on port {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def end_process(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` to the process group and wait; SIGKILL it after 30 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise Unavailable("running as root with neither a postgres nor a nobody user")


def installed(what: str, found: str | None) -> str:
    """``found`` (a path), or :class:`Unavailable` naming ``what``."""
    if found:
        return found
    raise Unavailable(f"{what} is not installed ({INSTALL_HINT})")


@dataclass
class Server:
    """A server process we started; ``stop`` is graceful, ``kill`` is SIGKILL."""

    port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "server.log"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _user(self) -> str | None:
        return None

    def start(self) -> None:
        """Start and wait for the port. A restart right after a stop can find what the
        old process held not yet released on a loaded machine (the process then exits at
        once): it is tried again, and a last failure names the server's own words."""
        for attempt in range(START_ATTEMPTS):
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(  # noqa: S603 - our own argument list
                    self._command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    user=self._user(),
                    start_new_session=True,
                )
            try:
                wait_for_port(self.port, self.proc)
                return
            except ServerExited as exc:
                if attempt == START_ATTEMPTS - 1:
                    tail = self.log.read_text(errors="replace")[-1500:]
                    raise ServerExited(f"{exc}; its log ends:\n{tail}") from None
                time.sleep(0.5 * (attempt + 1))

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.proc is not None:
            end_process(self.proc, signum)
        self.proc = None

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def postgres_binary(name: str) -> str:
    """The newest installed PostgreSQL's ``name`` (Debian keeps them off the PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return installed("PostgreSQL", found[-1] if found else shutil.which(name))


@dataclass
class Postgres(Server):
    """A private cluster: trust authentication on 127.0.0.1 only, no Unix socket."""

    user: str = "twofold"

    @classmethod
    def create(cls) -> Self:
        """A new cluster, started; :class:`Unavailable` when PostgreSQL is not installed."""
        initdb = postgres_binary("initdb")
        owner = unprivileged_user()
        directory = Path(tempfile.mkdtemp(prefix="twofold-pg-"))
        server = cls(free_port(), directory)
        if owner is not None:
            shutil.chown(directory, owner)
        subprocess.run(  # noqa: S603 - our own argument list
            [initdb, "-D", str(directory / "data"), "-U", server.user, "--auth=trust",
             "-E", "UTF8", "--no-sync", "--locale=C"],
            check=True, capture_output=True, user=owner,
        )  # fmt: skip
        server.start()
        return server

    def _user(self) -> str | None:
        return unprivileged_user()

    def start(self) -> None:
        """Start and wait until it accepts sessions: its port opens while it may still
        be starting up (or recovering) and refusing them."""
        try:
            import psycopg
        except ImportError:
            raise Unavailable("psycopg is not installed (pip install twofold[postgres])") from None
        super().start()
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected. SIGTERM is the smart one,
        which waits for every client to leave."""
        self._signal(signal.SIGINT)

    def _command(self) -> list[str]:
        return [
            postgres_binary("postgres"),
            "-D", str(self.directory / "data"),
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",
            "-c", "max_connections=300",
        ]  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        answer = subprocess.run(  # noqa: S603 - our own argument list
            [postgres_binary("psql"), "-X", "-q", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-d", self.url(database), "-c", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return answer.stdout.strip()

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database; its URL."""
        clause = f" TEMPLATE {template}" if template else ""
        self.psql(f"CREATE DATABASE {name}{clause}")
        return self.url(name)


@dataclass
class Redis(Server):
    """A private Redis that persists every write before answering (appendfsync always),
    as a deployment that keeps revocations in Redis must."""

    @classmethod
    def create(cls) -> Self:
        """A new server, started; :class:`Unavailable` when Redis is not installed."""
        redis_server_binary()
        server = cls(free_port(), Path(tempfile.mkdtemp(prefix="twofold-redis-")))
        server.start()
        return server

    def _command(self) -> list[str]:
        return [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--protected-mode", "no",
        ]  # fmt: skip

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


def redis_server_binary() -> str:
    return installed("Redis", shutil.which("redis-server"))


@contextlib.contextmanager
def _throwaway(create: Callable[[], Server], what: str) -> Iterator[Server]:
    try:
        server = create()
    except Unavailable:
        raise
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        raise Unavailable(f"{what} did not start: {exc}") from exc
    try:
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A private PostgreSQL for the block; yields its URL, removes it after."""
    with _throwaway(Postgres.create, "PostgreSQL") as server:
        assert isinstance(server, Postgres)
        yield server.url()


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """A private Redis for the block; yields its URL, removes it after."""
    with _throwaway(Redis.create, "Redis") as server:
        assert isinstance(server, Redis)
        yield server.url()
