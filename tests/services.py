"""Real PostgreSQL, Redis and nginx servers for the tests, each a private process on a
loopback port of its own, started and stopped here (``scripts/install-services`` installs
the Debian packages). Tests that break a server (stop it, kill it) start one of their own;
the rest share one per run (tests/conftest.py).

Outside CI a missing server skips the tests that need it; with ``CI=true`` it fails them.
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
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

IN_CI = os.environ.get("CI") == "true"


def require(what: str, found: str | None) -> str:
    """``found`` (a path), or skip (fail in CI) the test that needs ``what``."""
    if found:
        return found
    message = f"{what} is not installed (run scripts/install-services)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


#: Tries to start a server before giving up.
START_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerExited(RuntimeError):
    """The server process ended while it was being waited for."""


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
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


def _unprivileged() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root with neither a postgres nor a nobody user")


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
                self.proc = subprocess.Popen(
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


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@dataclass
class Postgres(Server):
    """A private cluster: trust authentication on 127.0.0.1 only, no Unix socket."""

    user: str = "twofold"

    @classmethod
    def create(cls) -> Postgres:
        initdb = require("PostgreSQL", _postgres_bin("initdb"))
        directory = Path(tempfile.mkdtemp(prefix="twofold-pg-"))
        server = cls(free_port(), directory)
        owner = _unprivileged()
        if owner is not None:
            shutil.chown(directory, owner)
        subprocess.run(
            [initdb, "-D", str(directory / "data"), "-U", server.user, "--auth=trust",
             "-E", "UTF8", "--no-sync", "--locale=C"],
            check=True, capture_output=True, user=owner,
        )  # fmt: skip
        server.start()
        return server

    def _user(self) -> str | None:
        return _unprivileged()

    def start(self) -> None:
        """Start and wait until it accepts sessions: its port opens while it may still
        be starting up (or recovering) and refusing them."""
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
            require("PostgreSQL", _postgres_bin("postgres")),
            "-D", str(self.directory / "data"),
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",
            "-c", "max_connections=300",
        ]  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        answer = subprocess.run(
            [require("PostgreSQL", _postgres_bin("psql")), "-X", "-q", "-A", "-t",
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
    def create(cls) -> Redis:
        require("Redis", shutil.which("redis-server"))
        server = cls(free_port(), Path(tempfile.mkdtemp(prefix="twofold-redis-")))
        server.start()
        return server

    def _command(self) -> list[str]:
        return [
            require("Redis", shutil.which("redis-server")),
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


def nginx_binary() -> str:
    return require("nginx", shutil.which("nginx") or shutil.which("/usr/sbin/nginx"))


@dataclass
class Nginx(Server):
    """nginx on loopback with the given ``http`` block contents."""

    @classmethod
    def create(cls, http_block: str, port: int | None = None) -> Nginx:
        nginx_binary()
        server = cls(port or free_port(), Path(tempfile.mkdtemp(prefix="twofold-nginx-")))
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (server.directory / sub).mkdir()
        d = server.directory
        (d / "nginx.conf").write_text(
            f"""daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{http_block.replace("$LISTEN", f"127.0.0.1:{server.port}")}
}}
"""
        )
        server.start()
        return server

    def _command(self) -> list[str]:
        return [
            nginx_binary(),
            "-e",
            "stderr",
            "-p",
            str(self.directory),
            "-c",
            str(self.directory / "nginx.conf"),
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
