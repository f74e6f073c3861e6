"""What every ``twofold`` command shares: the options that locate the data, loading
settings, running the core once, and printing errors and rows."""

from __future__ import annotations

import asyncio
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

from twofold.authority import Origin
from twofold.config import Settings, load_settings
from twofold.errors import TwofoldError
from twofold.runtime import Runtime
from twofold.store.factory import sqlite_path

_T = TypeVar("_T")

console = Console(stderr=True, soft_wrap=True)

# What the CLI does is done by whoever can read the data directory: no principal, and no
# network address to record.
CLI_ORIGIN = Origin()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="A TOML file of settings.", envvar="TWOFOLD_CONFIG")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Where keys and SQLite live.")
]
RedisOption = Annotated[
    str | None,
    typer.Option("--redis-url", help="Keep sessions and the revocation stream in this Redis."),
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="Defaults to SQLite in the data directory.")
]
UserArgument = Annotated[str, typer.Argument(metavar="EMAIL_OR_ID", help="E-mail or user id.")]


def settings_from(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except TwofoldError as exc:
        console.print(f"[red]error:[/red] {escape(exc.detail)}")
        raise typer.Exit(2) from None


def existing(
    config: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    redis_url: str | None = None,
) -> Settings:
    """Settings for a command that reads or changes data: a data directory with no
    database is an error, not a new empty store made by mistake. ``redis_url`` must be
    the servers' own: sessions and the revocation stream live there."""
    settings = settings_from(
        config, data_dir=data_dir, database_url=database_url, redis_url=redis_url
    )
    url = settings.effective_database_url
    if url.startswith("sqlite:") and not sqlite_path(url).exists():
        console.print(f"[red]error:[/red] no database at {sqlite_path(url)}; pass --data-dir.")
        raise typer.Exit(1)
    return settings


def fail(exc: TwofoldError) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(exc.detail)}")
    return typer.Exit(1)


def with_runtime(settings: Settings, action: Callable[[Runtime], Awaitable[_T]]) -> _T:
    """Run ``action`` against a started runtime; Twofold errors become one-line messages."""

    async def run() -> _T:
        runtime = await Runtime.start(settings)
        try:
            result = await action(runtime)
            if runtime.authority.revoker.appended:
                # Running servers read the revocation stream every event_poll_interval:
                # return only once they have, so that the request after this command is
                # already refused (scripts rely on it).
                await asyncio.sleep(2 * settings.event_poll_interval)
            return result
        finally:
            await runtime.close()

    try:
        return asyncio.run(run())
    except TwofoldError as exc:
        raise fail(exc) from None


def is_terminal() -> bool:
    return sys.stdout.isatty()


def print_rows(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    truncate: Mapping[str, int] | None = None,
) -> None:
    """A table on a terminal; one tab-separated line per row, whole values, otherwise.

    ``truncate`` shortens the named columns in the table only."""
    if not is_terminal():
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


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
