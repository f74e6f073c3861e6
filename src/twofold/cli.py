"""The ``twofold`` command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from twofold.config import Settings, load_settings, prepare_data_dir
from twofold.errors import TwofoldError
from twofold.runtime import Runtime
from twofold.store.factory import sqlite_path
from twofold.store.records import User

_T = TypeVar("_T")

app = typer.Typer(help="Twofold: sessions and JWTs side by side.", no_args_is_help=True)
user_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")

console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="A TOML file of settings.", envvar="TWOFOLD_CONFIG")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Where keys and SQLite live.")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="Defaults to SQLite in the data directory.")
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except TwofoldError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from None


def _fail(exc: TwofoldError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.detail}")
    return typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the server (defaults: 127.0.0.1:8000, SQLite and keys under ./twofold-data)."""
    import uvicorn

    from twofold.http.app import create_app
    from twofold.logs import configure

    settings = _settings(config, host=host, port=port, data_dir=data_dir, database_url=database_url)
    # Start the core once before the server does: a bad data directory, master key or
    # database URL is then a one-line error here, not a traceback from inside uvicorn.
    _with_runtime(settings, _nothing)
    configure(settings.log_level, settings.log_format)
    console.print(
        f"Twofold listening on [bold]http://{settings.host}:{settings.port}[/bold] "
        f"(store: {_describe_store(settings)})"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


@app.command()
def migrate(
    data_dir: DataDirOption = None, database_url: DatabaseOption = None, config: ConfigOption = None
) -> None:
    """Bring the database schema to the current version."""
    from twofold.store.factory import store_from_url
    from twofold.store.migrate import current_revision, upgrade

    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    url = settings.effective_database_url
    try:
        store_from_url(url)  # refuses an unsupported scheme before Alembic tries a driver
        prepare_data_dir(settings.data_dir)
        upgrade(url)
    except TwofoldError as exc:
        raise _fail(exc) from None
    console.print(f"Schema at revision {current_revision(url)}.")


@user_app.command("add")
def user_add(
    email: str,
    role: Annotated[list[str] | None, typer.Option("--role", help="Repeat for more roles.")] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Create an account. The password is prompted for, or read from standard input."""
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    roles = tuple(dict.fromkeys(["user", *(role or [])]))

    async def add(runtime: Runtime) -> bool:
        return await runtime.authority.accounts.register(email, password, roles) is not None

    created = _with_runtime(settings, add)
    if not created:
        console.print("[red]error:[/red] that e-mail address is already registered.")
        raise typer.Exit(1)
    console.print(f"Created {email} with roles: {', '.join(roles)}.")


@user_app.command("list")
def user_list(
    data_dir: DataDirOption = None, database_url: DatabaseOption = None, config: ConfigOption = None
) -> None:
    """List accounts (tab-separated when the output is not a terminal)."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    url = settings.effective_database_url
    if url.startswith("sqlite:") and not sqlite_path(url).exists():
        console.print(f"[red]error:[/red] no database at {sqlite_path(url)}; pass --data-dir.")
        raise typer.Exit(1)

    async def users(runtime: Runtime) -> list[User]:
        return await runtime.authority.accounts.list(limit=10_000)

    rows = [
        (u.id, u.email, ",".join(u.roles), "locked" if u.locked else "active")
        for u in _with_runtime(settings, users)
    ]
    if not sys.stdout.isatty():
        for row in rows:
            typer.echo("\t".join(row))
        return
    table = Table("id", "e-mail", "roles", "state")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@app.command()
def openapi() -> None:
    """Print the OpenAPI document of the HTTP API."""
    import json

    from twofold.http.app import create_app

    document = create_app(Settings()).openapi()
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


async def _nothing(runtime: Runtime) -> None:
    return None


def _with_runtime(settings: Settings, action: Callable[[Runtime], Awaitable[_T]]) -> _T:
    """Run ``action`` against a started runtime; Twofold errors become one-line messages."""

    async def run() -> _T:
        runtime = await Runtime.start(settings)
        try:
            return await action(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(run())
    except TwofoldError as exc:
        raise _fail(exc) from None


def _describe_store(settings: Settings) -> str:
    url = settings.effective_database_url
    return url if url.startswith("sqlite:") else url.split(":", 1)[0]
