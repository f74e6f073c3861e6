"""The administrator's commands: ``keys``, ``sessions``, ``audit`` and ``client``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated

import typer
from rich.markup import escape

from twofold import audit
from twofold.cli.common import (
    CLI_ORIGIN,
    ConfigOption,
    DatabaseOption,
    DataDirOption,
    RedisOption,
    console,
    existing,
    format_time,
    is_terminal,
    print_rows,
    with_runtime,
)
from twofold.errors import NotFound
from twofold.runtime import Runtime

keys_app = typer.Typer(help="Rotate and list the signing keys.", no_args_is_help=True)
sessions_app = typer.Typer(help="See and end live sessions and tokens.", no_args_is_help=True)
client_app = typer.Typer(help="Register resource servers (introspection).", no_args_is_help=True)

USER_AGENT_WIDTH = 40


async def _emails(runtime: Runtime, user_ids: Iterable[str | None]) -> dict[str, str]:
    """E-mail addresses by user id, one read per distinct id; unknown ids are left out."""
    found: dict[str, str] = {}
    for user_id in {user_id for user_id in user_ids if user_id is not None}:
        user = await runtime.authority.accounts.get(user_id)
        if user is not None:
            found[user_id] = user.email
    return found


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
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """Sign with a new key; old keys verify until their tokens expire."""
    settings = existing(config, data_dir, database_url, redis_url)

    async def rotate(runtime: Runtime) -> tuple[str, str, tuple[str, ...]]:
        rotation, _ = await runtime.admin.rotate_keys(
            compromised=compromised, actor=None, origin=CLI_ORIGIN
        )
        return rotation.kid, rotation.alg, rotation.previous

    kid, alg, previous = with_runtime(settings, rotate)
    print_rows(("kid", "alg", "previous"), [(kid, alg, ",".join(previous))])


@keys_app.command("list")
def keys_list(
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """List signing keys, oldest first, with their state (never their material)."""
    settings = existing(config, data_dir, database_url, redis_url)

    async def keys(runtime: Runtime) -> list[tuple[str, str, str, str, str]]:
        return [
            (k.kid, k.alg, k.state, format_time(k.created_at), format_time(k.retire_after))
            for k in await runtime.keys.all()
        ]

    print_rows(("kid", "alg", "state", "created", "retire after"), with_runtime(settings, keys))


# -- sessions --------------------------------------------------------------------------


@sessions_app.command("list")
def sessions_list(
    limit: Annotated[int, typer.Option(min=1, help="Sessions and token families each.")] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """Who is logged in now, most recently active first (up to LIMIT sessions and LIMIT
    token families)."""
    settings = existing(config, data_dir, database_url, redis_url)

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
                format_time(d.last_seen_at),
                format_time(d.expires_at),
            )
            for d in live
        ]

    print_rows(
        ("id", "kind", "user", "address", "user agent", "last seen", "expires"),
        with_runtime(settings, devices),
        truncate={"user agent": USER_AGENT_WIDTH},
    )


@sessions_app.command("revoke")
def sessions_revoke(
    handle: Annotated[str, typer.Argument(help="The id shown by `sessions list`.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """End one session or token family (and the access tokens issued from it)."""
    settings = existing(config, data_dir, database_url, redis_url)

    async def revoke(runtime: Runtime) -> tuple[str, str]:
        device = await runtime.authority.revoke_device(
            handle, owner=None, actor=None, origin=CLI_ORIGIN
        )
        emails = await _emails(runtime, [device.user_id])
        return device.kind.replace("_", " "), emails.get(device.user_id, device.user_id)

    kind, owner = with_runtime(settings, revoke)
    console.print(f"Revoked the {kind} of {escape(owner)}.")


@sessions_app.command("end")
def sessions_end(
    user: Annotated[
        str | None, typer.Option("--user", help="End this user's (e-mail or id).")
    ] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Log every user out.")] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """End every session, token family and access token of one user, or of everyone."""
    if (user is None) == (not everyone):
        console.print("[red]error:[/red] give exactly one of --user or --all.")
        raise typer.Exit(2)
    settings = existing(config, data_dir, database_url, redis_url)

    async def end(runtime: Runtime) -> int:
        user_id = None if user is None else (await runtime.admin.find_user(user)).id
        return await runtime.admin.end_sessions(user_id, actor=None, origin=CLI_ORIGIN)

    ended = with_runtime(settings, end)
    whom = "every user" if user is None else escape(user)
    console.print(
        f"Ended {ended} sessions and token families of {whom}; their access tokens are refused."
    )


# -- audit log -------------------------------------------------------------------------


def _audit_kind(value: str | None) -> str | None:
    if value is not None and value not in audit.KINDS:
        raise typer.BadParameter(f"one of: {', '.join(sorted(audit.KINDS))}.")
    return value


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
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """Security events, newest first."""
    settings = existing(config, data_dir, database_url, redis_url)

    async def page(runtime: Runtime) -> list[tuple[str, ...]]:
        user_id = None if user is None else (await runtime.admin.find_user(user)).id
        events = await runtime.authority.audit.page(
            before=before, limit=limit, user_id=user_id, kind=kind
        )
        emails = await _emails(runtime, [u for e in events for u in (e.user_id, e.actor_id)])
        return [
            (
                str(e.seq),
                format_time(e.at),
                e.kind,
                emails.get(e.user_id, e.user_id) if e.user_id else "",
                emails.get(e.actor_id, e.actor_id) if e.actor_id else "",
                e.client_address or "",
                json.dumps(e.detail, separators=(",", ":"), sort_keys=True),
            )
            for e in events
        ]

    rows = with_runtime(settings, page)
    print_rows(("seq", "time", "kind", "user", "actor", "address", "detail"), rows)
    if len(rows) == limit:
        console.print(f"More: pass --before {rows[-1][0]} for the next page.")


# -- clients ---------------------------------------------------------------------------


@client_app.command("add")
def client_add(
    name: Annotated[str, typer.Argument(help="1-64 letters, digits, '.', '_' or '-'.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """Register a resource server; prints its id and secret (the secret only this once)."""
    settings = existing(config, data_dir, database_url, redis_url)

    async def add(runtime: Runtime) -> tuple[str, str]:
        new = await runtime.clients.add(name)
        await runtime.authority.audit.record(
            audit.CLIENT_ADDED, client=new.client.id, name=new.client.name
        )
        return new.client.id, new.secret

    client_id, secret = with_runtime(settings, add)
    if is_terminal():
        typer.echo(f"client id:     {client_id}\nclient secret: {secret}")
    else:
        typer.echo(f"{client_id}\t{secret}")
    console.print(
        "[yellow]warning:[/yellow] store the secret now; it is not kept and will not be "
        "shown again."
    )


@client_app.command("list")
def client_list(
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """List registered clients (never their secrets)."""
    settings = existing(config, data_dir, database_url, redis_url)

    async def clients(runtime: Runtime) -> list[tuple[str, str, str]]:
        return [(c.id, c.name, format_time(c.created_at)) for c in await runtime.clients.list()]

    print_rows(("id", "name", "created"), with_runtime(settings, clients))


@client_app.command("remove")
def client_remove(
    client: Annotated[str, typer.Argument(metavar="CLIENT_ID_OR_NAME")],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove a client (by id or name); its credentials stop working at once."""
    settings = existing(config, data_dir, database_url, redis_url)

    async def remove(runtime: Runtime) -> tuple[str, str]:
        found = next((c for c in await runtime.clients.list() if client in (c.id, c.name)), None)
        if found is None or not await runtime.clients.remove(found.id):
            raise NotFound("No such client.")
        await runtime.authority.audit.record(audit.CLIENT_REMOVED, client=found.id, name=found.name)
        return found.name, found.id

    name, client_id = with_runtime(settings, remove)
    console.print(f"Removed client {escape(name)} ({escape(client_id)}).")
