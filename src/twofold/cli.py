"""The ``twofold`` command: the server, the schema, and the admin's accounts, keys,
sessions, clients and audit log."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from twofold import audit
from twofold.authority import Origin
from twofold.config import Settings, load_settings, prepare_data_dir
from twofold.errors import NotFound, TwofoldError
from twofold.runtime import Runtime
from twofold.store.factory import sqlite_path
from twofold.store.records import User

_T = TypeVar("_T")

app = typer.Typer(help="Twofold: sessions and JWTs side by side.", no_args_is_help=True)
user_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Rotate and list the signing keys.", no_args_is_help=True)
sessions_app = typer.Typer(help="See and end live sessions and tokens.", no_args_is_help=True)
client_app = typer.Typer(help="Register resource servers (introspection).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(keys_app, name="keys")
app.add_typer(sessions_app, name="sessions")
app.add_typer(client_app, name="client")

console = Console(stderr=True, soft_wrap=True)

# What the CLI does is done by whoever can read the data directory: no principal, and no
# network address to record.
CLI_ORIGIN = Origin()
USER_AGENT_WIDTH = 40

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="A TOML file of settings.", envvar="TWOFOLD_CONFIG")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Where keys and SQLite live.")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="Defaults to SQLite in the data directory.")
]
UserArgument = Annotated[str, typer.Argument(metavar="EMAIL_OR_ID", help="E-mail or user id.")]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except TwofoldError as exc:
        console.print(f"[red]error:[/red] {escape(exc.detail)}")
        raise typer.Exit(2) from None


def _existing(config: Path | None, data_dir: Path | None, database_url: str | None) -> Settings:
    """Settings for a command that reads or changes data: a data directory with no
    database is an error, not a new empty store made by mistake."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    url = settings.effective_database_url
    if url.startswith("sqlite:") and not sqlite_path(url).exists():
        console.print(f"[red]error:[/red] no database at {sqlite_path(url)}; pass --data-dir.")
        raise typer.Exit(1)
    return settings


def _fail(exc: TwofoldError) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(exc.detail)}")
    return typer.Exit(1)


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _print_rows(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    truncate: Mapping[str, int] | None = None,
) -> None:
    """A table on a terminal; one tab-separated line per row, whole values, otherwise.

    ``truncate`` shortens the named columns in the table only."""
    if not _is_terminal():
        for row in rows:
            # A user agent may hold a tab; one record must stay one line of fields.
            typer.echo("\t".join(" ".join(value.split()) for value in row))
        return
    widths = [(truncate or {}).get(column) for column in columns]
    # Fold rather than cut: ids and kids are copied from here into the next command.
    table = Table(*(Column(column, overflow="fold") for column in columns))
    for row in rows:
        table.add_row(
            *(Text(_shorten(value, width)) for value, width in zip(row, widths, strict=True))
        )
    Console().print(table)


def _shorten(value: str, width: int | None) -> str:
    return value if width is None or len(value) <= width else value[: width - 1] + "…"


def _time(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _emails(runtime: Runtime, user_ids: Iterable[str | None]) -> dict[str, str]:
    """E-mail addresses by user id, one read per distinct id; unknown ids are left out."""
    found: dict[str, str] = {}
    for user_id in {user_id for user_id in user_ids if user_id is not None}:
        user = await runtime.authority.accounts.get(user_id)
        if user is not None:
            found[user_id] = user.email
    return found


# -- server and schema -----------------------------------------------------------------


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


@app.command()
def openapi() -> None:
    """Print the OpenAPI document of the HTTP API."""
    from twofold.http.app import create_app

    document = create_app(Settings()).openapi()
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


# -- accounts --------------------------------------------------------------------------


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
    console.print(f"Created {escape(email)} with roles: {', '.join(roles)}.")


@user_app.command("list")
def user_list(
    data_dir: DataDirOption = None, database_url: DatabaseOption = None, config: ConfigOption = None
) -> None:
    """List accounts (tab-separated when the output is not a terminal)."""
    settings = _existing(config, data_dir, database_url)

    async def users(runtime: Runtime) -> list[User]:
        return await runtime.authority.accounts.list(limit=10_000)

    _print_rows(
        ("id", "e-mail", "roles", "state"),
        (
            (u.id, u.email, ",".join(u.roles), "locked" if u.locked else "active")
            for u in _with_runtime(settings, users)
        ),
    )


@user_app.command("lock")
def user_lock(
    user: UserArgument,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Lock an account and end its sessions and tokens at once."""
    locked = _set_locked(user, True, _existing(config, data_dir, database_url))
    console.print(f"Locked {escape(locked.email)}; its sessions and tokens are ended.")


@user_app.command("unlock")
def user_unlock(
    user: UserArgument,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Unlock an account."""
    unlocked = _set_locked(user, False, _existing(config, data_dir, database_url))
    console.print(f"Unlocked {escape(unlocked.email)}.")


def _set_locked(user: str, locked: bool, settings: Settings) -> User:
    async def change(runtime: Runtime) -> User:
        found = await runtime.admin.find_user(user)
        action = runtime.admin.lock if locked else runtime.admin.unlock
        return await action(found.id, actor=None, origin=CLI_ORIGIN)

    return _with_runtime(settings, change)


@user_app.command("roles")
def user_roles(
    user: UserArgument,
    role: Annotated[list[str], typer.Option("--role", help="Repeat for more roles.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Set an account's roles to exactly those given; tokens issued before are refused."""
    settings = _existing(config, data_dir, database_url)

    async def set_roles(runtime: Runtime) -> User:
        found = await runtime.admin.find_user(user)
        return await runtime.admin.set_roles(found.id, role, actor=None, origin=CLI_ORIGIN)

    changed = _with_runtime(settings, set_roles)
    typer.echo(",".join(changed.roles))
    console.print(f"Roles of {escape(changed.email)}: {', '.join(changed.roles)}.")


# -- signing keys ----------------------------------------------------------------------


@keys_app.command("rotate")
def keys_rotate(
    compromised: Annotated[
        bool,
        typer.Option(
            "--compromised", help="Retire every old key now: its tokens stop working at once."
        ),
    ] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Sign with a new key; old keys verify until their tokens expire."""
    settings = _existing(config, data_dir, database_url)

    async def rotate(runtime: Runtime) -> tuple[str, str, tuple[str, ...]]:
        rotation, _ = await runtime.admin.rotate_keys(
            compromised=compromised, actor=None, origin=CLI_ORIGIN
        )
        return rotation.kid, rotation.alg, rotation.previous

    kid, alg, previous = _with_runtime(settings, rotate)
    _print_rows(("kid", "alg", "previous"), [(kid, alg, ",".join(previous))])


@keys_app.command("list")
def keys_list(
    data_dir: DataDirOption = None, database_url: DatabaseOption = None, config: ConfigOption = None
) -> None:
    """List signing keys, oldest first, with their state (never their material)."""
    settings = _existing(config, data_dir, database_url)

    async def keys(runtime: Runtime) -> list[tuple[str, str, str, str, str]]:
        return [
            (k.kid, k.alg, k.state, _time(k.created_at), _time(k.retire_after))
            for k in await runtime.keys.all()
        ]

    _print_rows(("kid", "alg", "state", "created", "retire after"), _with_runtime(settings, keys))


# -- sessions --------------------------------------------------------------------------


@sessions_app.command("list")
def sessions_list(
    limit: Annotated[int, typer.Option(min=1, help="Sessions and token families each.")] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Who is logged in now, most recently active first (up to LIMIT sessions and LIMIT
    token families)."""
    settings = _existing(config, data_dir, database_url)

    async def devices(runtime: Runtime) -> list[tuple[str, ...]]:
        live = await runtime.admin.live_devices(limit=limit, offset=offset)
        emails = await _emails(runtime, (d.user_id for d in live))
        return [
            (
                d.id,
                d.kind,
                emails.get(d.user_id, d.user_id),
                d.client_address or "",
                d.user_agent or "",
                _time(d.last_seen_at),
                _time(d.expires_at),
            )
            for d in live
        ]

    _print_rows(
        ("id", "kind", "user", "address", "user agent", "last seen", "expires"),
        _with_runtime(settings, devices),
        truncate={"user agent": USER_AGENT_WIDTH},
    )


@sessions_app.command("revoke")
def sessions_revoke(
    handle: Annotated[str, typer.Argument(help="The id shown by `sessions list`.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """End one session or token family (and the access tokens issued from it)."""
    settings = _existing(config, data_dir, database_url)

    async def revoke(runtime: Runtime) -> tuple[str, str]:
        device = await runtime.authority.revoke_device(
            handle, owner=None, actor=None, origin=CLI_ORIGIN
        )
        emails = await _emails(runtime, [device.user_id])
        return device.kind.replace("_", " "), emails.get(device.user_id, device.user_id)

    kind, owner = _with_runtime(settings, revoke)
    console.print(f"Revoked the {kind} of {escape(owner)}.")


@sessions_app.command("end")
def sessions_end(
    user: Annotated[
        str | None, typer.Option("--user", help="End this user's (e-mail or id).")
    ] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Log every user out.")] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """End every session, token family and access token of one user, or of everyone."""
    if (user is None) == (not everyone):
        console.print("[red]error:[/red] give exactly one of --user or --all.")
        raise typer.Exit(2)
    settings = _existing(config, data_dir, database_url)

    async def end(runtime: Runtime) -> int:
        user_id = None if user is None else (await runtime.admin.find_user(user)).id
        return await runtime.admin.end_sessions(user_id, actor=None, origin=CLI_ORIGIN)

    ended = _with_runtime(settings, end)
    whom = "every user" if user is None else escape(user)
    console.print(
        f"Ended {ended} sessions and token families of {whom}; their access tokens are refused."
    )


# -- audit log -------------------------------------------------------------------------


def _audit_kind(value: str | None) -> str | None:
    if value is not None and value not in audit.KINDS:
        raise typer.BadParameter(f"one of: {', '.join(sorted(audit.KINDS))}.")
    return value


@app.command("audit")
def audit_log(
    limit: Annotated[int, typer.Option(min=1, max=audit.MAX_PAGE, help="Events per page.")] = 50,
    before: Annotated[
        int | None,
        typer.Option(min=1, max=2**63 - 1, help="Only events older than this seq (the next page)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", metavar="EMAIL_OR_ID", help="Events of one user.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(callback=_audit_kind, help="Events of one kind.")
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Security events, newest first."""
    settings = _existing(config, data_dir, database_url)

    async def page(runtime: Runtime) -> list[tuple[str, ...]]:
        user_id = None if user is None else (await runtime.admin.find_user(user)).id
        events = await runtime.authority.audit.page(
            before=before, limit=limit, user_id=user_id, kind=kind
        )
        emails = await _emails(runtime, [u for e in events for u in (e.user_id, e.actor_id)])
        return [
            (
                str(e.seq),
                _time(e.at),
                e.kind,
                emails.get(e.user_id, e.user_id) if e.user_id else "",
                emails.get(e.actor_id, e.actor_id) if e.actor_id else "",
                e.client_address or "",
                json.dumps(e.detail, separators=(",", ":"), sort_keys=True),
            )
            for e in events
        ]

    rows = _with_runtime(settings, page)
    _print_rows(("seq", "time", "kind", "user", "actor", "address", "detail"), rows)
    if len(rows) == limit:
        console.print(f"More: pass --before {rows[-1][0]} for the next page.")


# -- clients ---------------------------------------------------------------------------


@client_app.command("add")
def client_add(
    name: Annotated[str, typer.Argument(help="1-64 letters, digits, '.', '_' or '-'.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Register a resource server; prints its id and secret (the secret only this once)."""
    settings = _existing(config, data_dir, database_url)

    async def add(runtime: Runtime) -> tuple[str, str]:
        new = await runtime.clients.add(name)
        await runtime.authority.audit.record(
            audit.CLIENT_ADDED, client=new.client.id, name=new.client.name
        )
        return new.client.id, new.secret

    client_id, secret = _with_runtime(settings, add)
    if _is_terminal():
        typer.echo(f"client id:     {client_id}\nclient secret: {secret}")
    else:
        typer.echo(f"{client_id}\t{secret}")
    console.print(
        "[yellow]warning:[/yellow] store the secret now; it is not kept and will not be "
        "shown again."
    )


@client_app.command("list")
def client_list(
    data_dir: DataDirOption = None, database_url: DatabaseOption = None, config: ConfigOption = None
) -> None:
    """List registered clients (never their secrets)."""
    settings = _existing(config, data_dir, database_url)

    async def clients(runtime: Runtime) -> list[tuple[str, str, str]]:
        return [(c.id, c.name, _time(c.created_at)) for c in await runtime.clients.list()]

    _print_rows(("id", "name", "created"), _with_runtime(settings, clients))


@client_app.command("remove")
def client_remove(
    client_id: Annotated[str, typer.Argument(metavar="CLIENT_ID")],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove a client; its credentials stop working at once."""
    settings = _existing(config, data_dir, database_url)

    async def remove(runtime: Runtime) -> str:
        names = {c.id: c.name for c in await runtime.clients.list()}
        if not await runtime.clients.remove(client_id):
            raise NotFound("No such client.")
        await runtime.authority.audit.record(
            audit.CLIENT_REMOVED, client=client_id, name=names.get(client_id)
        )
        return names.get(client_id, client_id)

    removed = _with_runtime(settings, remove)
    console.print(f"Removed client {escape(removed)} ({escape(client_id)}).")


# -- running the core ------------------------------------------------------------------


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
