"""``twofold user``: create, list, lock and unlock accounts, and set their roles."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from twofold.cli.common import (
    CLI_ORIGIN,
    ConfigOption,
    DatabaseOption,
    DataDirOption,
    RedisOption,
    UserArgument,
    console,
    existing,
    print_rows,
    settings_from,
    with_runtime,
)
from twofold.config import Settings
from twofold.runtime import Runtime
from twofold.store.records import User

user_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    email: str,
    role: Annotated[list[str] | None, typer.Option("--role", help="Repeat for more roles.")] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """Create an account. The password is prompted for, or read from standard input."""
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = settings_from(
        config, data_dir=data_dir, database_url=database_url, redis_url=redis_url
    )
    roles = tuple(dict.fromkeys(["user", *(role or [])]))

    async def add(runtime: Runtime) -> bool:
        return await runtime.authority.accounts.register(email, password, roles) is not None

    created = with_runtime(settings, add)
    if not created:
        console.print("[red]error:[/red] that e-mail address is already registered.")
        raise typer.Exit(1)
    console.print(f"Created {escape(email)} with roles: {', '.join(roles)}.")


@user_app.command("list")
def user_list(
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """List accounts (tab-separated when the output is not a terminal)."""
    settings = existing(config, data_dir, database_url, redis_url)

    async def users(runtime: Runtime) -> list[User]:
        return await runtime.authority.accounts.list(limit=10_000)

    print_rows(
        ("id", "e-mail", "roles", "state"),
        (
            (u.id, u.email, ",".join(u.roles), "locked" if u.locked else "active")
            for u in with_runtime(settings, users)
        ),
    )


@user_app.command("lock")
def user_lock(
    user: UserArgument,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """Lock an account and end its sessions and tokens at once."""
    locked = _set_locked(user, True, existing(config, data_dir, database_url, redis_url))
    console.print(f"Locked {escape(locked.email)}; its sessions and tokens are ended.")


@user_app.command("unlock")
def user_unlock(
    user: UserArgument,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """Unlock an account."""
    unlocked = _set_locked(user, False, existing(config, data_dir, database_url, redis_url))
    console.print(f"Unlocked {escape(unlocked.email)}.")


def _set_locked(user: str, locked: bool, settings: Settings) -> User:
    async def change(runtime: Runtime) -> User:
        found = await runtime.admin.find_user(user)
        action = runtime.admin.lock if locked else runtime.admin.unlock
        return await action(found.id, actor=None, origin=CLI_ORIGIN)

    return with_runtime(settings, change)


@user_app.command("roles")
def user_roles(
    user: UserArgument,
    role: Annotated[list[str], typer.Option("--role", help="Repeat for more roles.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
) -> None:
    """Set an account's roles to exactly those given; tokens issued before are refused."""
    settings = existing(config, data_dir, database_url, redis_url)

    async def set_roles(runtime: Runtime) -> User:
        found = await runtime.admin.find_user(user)
        return await runtime.admin.set_roles(found.id, role, actor=None, origin=CLI_ORIGIN)

    changed = with_runtime(settings, set_roles)
    typer.echo(",".join(changed.roles))
    console.print(f"Roles of {escape(changed.email)}: {', '.join(changed.roles)}.")
