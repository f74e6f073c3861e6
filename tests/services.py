"""Real PostgreSQL, Redis and nginx servers for the tests, each a private process on a
loopback port of its own, started and stopped here (``scripts/install-services`` installs
the Debian packages). Tests that break a server (stop it, kill it) start one of their own;
the rest share one per run (tests/conftest.py). PostgreSQL and Redis are those of
``twofold bench`` (src/twofold/bench/services.py); nginx is for the tests alone.

Outside CI a missing server skips the tests that need it; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Self

import pytest

from twofold.bench import services
from twofold.bench.services import (
    Server,
    ServerExited,
    Unavailable,
    end_process,
    free_port,
    wait_for_port,
)

__all__ = [
    "IN_CI",
    "Nginx",
    "Postgres",
    "Redis",
    "Server",
    "ServerExited",
    "end_process",
    "free_port",
    "nginx_binary",
    "require",
    "wait_for_port",
]

IN_CI = os.environ.get("CI") == "true"


def missing(message: str) -> NoReturn:
    """Skip (fail in CI) the test that needs what ``message`` says is missing."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require(what: str, found: str | None) -> str:
    """``found`` (a path), or skip (fail in CI) the test that needs ``what``."""
    if found:
        return found
    missing(f"{what} is not installed (run scripts/install-services)")


@dataclass
class Postgres(services.Postgres):
    """A private PostgreSQL; skips (fails in CI) the test when it is not installed."""

    @classmethod
    def create(cls) -> Self:
        try:
            return super().create()
        except Unavailable as exc:
            missing(exc.reason)


@dataclass
class Redis(services.Redis):
    """A private Redis; skips (fails in CI) the test when it is not installed."""

    @classmethod
    def create(cls) -> Self:
        try:
            return super().create()
        except Unavailable as exc:
            missing(exc.reason)


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
