"""Shared fixtures: settings in a temporary data directory, a frozen clock, and a live
server on a real loopback socket."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from twofold.clock import FrozenClock
from twofold.config import Settings
from twofold.http.app import create_app
from twofold.http.deps import Web
from twofold.passwords import ARGON2_PROFILES, PasswordHasher
from twofold.runtime import Runtime
from twofold.store.migrate import upgrade
from twofold.store.sqlite import SQLiteStore

from .services import Postgres, Redis

PASSWORD = "correct horse battery staple"

_T = TypeVar("_T")


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for tests: the cheapest Argon2 profile the product allows, quiet logs."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "argon2_profile": "owasp-minimum",
        "hash_workers": 1,
        "log_level": "warning",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def hasher() -> Iterator[PasswordHasher]:
    """A password hasher with the cheapest profile the product allows."""
    hasher = PasswordHasher(ARGON2_PROFILES["owasp-minimum"])
    yield hasher
    hasher.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A real PostgreSQL server for the run (tests that stop or kill one start their own)."""
    server = Postgres.create()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    """A real Redis server for the run, persisting every write (appendfsync always)."""
    server = Redis.create()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per run (migrating is slower than copying)."""
    path = tmp_path_factory.mktemp("template") / "twofold.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def db_path(tmp_path: Path, migrated_template: Path) -> Path:
    """A fresh copy of the migrated database for one test."""
    path = tmp_path / "twofold.db"
    # Closing the last connection checkpointed the WAL into the file: the file is all.
    shutil.copyfile(migrated_template, path)
    return path


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open SQLite store on the test's own database."""
    store = SQLiteStore(db_path)
    await store.open()
    yield store
    await store.close()


@dataclass
class LiveServer:
    url: str
    clock: FrozenClock
    settings: Settings
    app: FastAPI
    loop: asyncio.AbstractEventLoop

    def call(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run ``work`` on the server's event loop (the store's read connection belongs
        to that thread) and return its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)

    @property
    def runtime(self) -> Runtime:
        web: Web = self.app.state.web
        return web.runtime

    def client(self, **kwargs: object) -> httpx.Client:
        # Plain HTTP on loopback: without verify=False httpx builds a TLS context per client
        # (~50 ms), which dominated the HTTP tests' time.
        kwargs.setdefault("verify", False)
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]

    def new_email(self) -> str:
        return f"user-{uuid.uuid4().hex[:12]}@example.com"

    def token_pair(self, email: str | None = None) -> dict[str, str]:
        """A JWT-mode login (of a new account unless ``email`` is given): the answer's
        ``access_token``, ``token_type``, ``expires_in`` and ``refresh_token``."""
        with self.client() as client:
            answer = client.post(
                "/auth/login",
                json={"email": email or self.register(), "password": PASSWORD, "mode": "jwt"},
            )
        assert answer.status_code == 200, answer.text
        pair: dict[str, str] = answer.json()
        return pair

    def register(self, email: str | None = None, password: str = PASSWORD) -> str:
        email = email or self.new_email()
        with self.client() as client:
            answer = client.post("/auth/register", json={"email": email, "password": password})
        assert answer.status_code == 201, answer.text
        return email


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_offline(settings: Settings, action: Callable[[Runtime], Awaitable[_T]]) -> _T:
    """Run ``action`` in a runtime of its own on the same store, as the CLI does (its
    revocations reach running servers through the stream)."""

    async def run() -> _T:
        runtime = await Runtime.start(settings)
        try:
            return await action(runtime)
        finally:
            await runtime.close()

    return asyncio.run(run())


def make_admin(live: LiveServer) -> str:
    """A new account with the admin role on ``live``; returns its e-mail address."""
    email = live.register()

    async def promote(runtime: Runtime) -> None:
        user = await runtime.admin.find_user(email)
        await runtime.authority.accounts.set_roles(user.id, ["user", "admin"])

    run_offline(live.settings, promote)
    return email


@dataclass
class Running:
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop


def start_server(
    data_dir: Path, clock: FrozenClock, **overrides: object
) -> tuple[LiveServer, Running]:
    sock = loopback_socket()
    port = sock.getsockname()[1]
    settings = make_settings(data_dir, port=port, **overrides)
    app = create_app(settings, clock=clock)
    running = serve_in_thread(app, sock)
    live = LiveServer(
        url=f"http://127.0.0.1:{port}", clock=clock, settings=settings, app=app, loop=running.loop
    )
    return live, running


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def serve_in_thread(app: Any, sock: socket.socket) -> Running:
    """Serve an ASGI app with uvicorn on ``sock`` in a thread of its own (its own loop)."""
    server = uvicorn.Server(
        # As `twofold serve` runs it: forwarding headers are the app's business
        # (trusted_proxies), not uvicorn's, which by default believes 127.0.0.1.
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            loop="asyncio",
            proxy_headers=False,
        )
    )
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return Running(server, thread, loop)


def stop_server(running: Running) -> None:
    running.server.should_exit = True
    running.thread.join(timeout=30)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the whole run; tests make their own accounts and never rewind time."""
    clock = FrozenClock(time.time())
    # Every test calls from 127.0.0.1 and the clock stands still: the per-address login
    # throttle would soon refuse them all. Servers of a test's own keep the default.
    live, running = start_server(
        tmp_path_factory.mktemp("live"), clock, login_failures_per_address=100_000
    )
    yield live
    stop_server(running)


@pytest.fixture
def fresh_live(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of the test's own, for tests that move its clock far or break its parts."""
    clock = FrozenClock(time.time())
    live, running = start_server(tmp_path / "data", clock)
    yield live
    stop_server(running)


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with settings of the test's choosing; all stop at the end."""
    started: list[Running] = []

    def make(**overrides: object) -> LiveServer:
        live, running = start_server(
            tmp_path / f"data{len(started)}", FrozenClock(time.time()), **overrides
        )
        started.append(running)
        return live

    yield make
    for running in started:
        stop_server(running)
