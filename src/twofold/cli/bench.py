"""``twofold bench``: sessions and JWTs measured on this machine, written up as a report.

The heavy imports (the runtime, matplotlib) wait until the command runs, so that the rest
of the CLI starts as fast as before.
"""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, get_args
from urllib.parse import urlsplit

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from twofold.cli.common import console

if TYPE_CHECKING:
    from twofold.bench.run import BenchOptions

__all__ = ["bench"]

LOAD_TOOLS = ("auto", "wrk", "builtin")
SECTIONS = ("wire", "verification", "http", "revocation", "footprint", "costs")


def _usage(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


def _options(
    quick: bool,
    postgres_url: str | None,
    redis_url: str | None,
    load_tool: str,
    only: list[str] | None,
) -> BenchOptions:
    from twofold.bench.run import SECTIONS as KNOWN
    from twofold.bench.run import BenchOptions
    from twofold.bench.scenarios.http_load import LoadTool

    if load_tool not in get_args(LoadTool):
        raise _usage(f"--load-tool must be one of {', '.join(LOAD_TOOLS)}, not {load_tool!r}")
    if load_tool == "wrk":
        from twofold.bench.load import wrk_path

        if wrk_path() is None:
            raise _usage("--load-tool wrk: wrk is not installed (apt-get install wrk)")
    sections = set(only or KNOWN)
    unknown = sorted(sections - set(KNOWN))
    if unknown:
        raise _usage(f"--only: unknown section {unknown[0]!r}; known: {', '.join(KNOWN)}")
    for option, url, schemes in (
        ("--postgres-url", postgres_url, ("postgresql://", "postgres://")),
        ("--redis-url", redis_url, ("redis://", "rediss://")),
    ):
        if url is None:
            continue
        if not url.startswith(schemes):
            raise _usage(f"{option} must start with {' or '.join(schemes)}")
        try:
            urlsplit(url).port  # noqa: B018 - parsing it is the check
        except ValueError as exc:  # a bad port or a broken [IPv6] host
            raise _usage(f"{option}: {exc}") from None
    return BenchOptions(
        quick=quick,
        postgres_url=postgres_url,
        redis_url=redis_url,
        load_tool=load_tool,  # type: ignore[arg-type]  # checked against LoadTool above
        sections=frozenset(sections),  # type: ignore[arg-type]  # checked against SECTIONS
    )


class _Bar:
    """The run's steps as a Rich progress bar on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("starting", total=None)
        self._started = False

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def step(self, description: str) -> None:
        if self._started:
            self._progress.advance(self._task)
        self._started = True
        self._progress.update(self._task, description=description)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Short samples: the whole run in about a minute.")
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the report (made, or a previous one).")
    ] = Path("twofold-bench"),
    postgres_url: Annotated[
        str | None,
        typer.Option(
            "--postgres-url",
            help="An empty PostgreSQL database to measure; default: a throwaway server.",
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url", help="An empty Redis database to measure; default: a throwaway server."
        ),
    ] = None,
    load_tool: Annotated[
        str, typer.Option("--load-tool", help="auto (wrk when installed), wrk or builtin.")
    ] = "auto",
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help=f"Measure only these sections (repeatable): {', '.join(SECTIONS)}.",
        ),
    ] = None,
) -> None:
    """Measure sessions (SQLite, PostgreSQL, Redis) and JWTs (HS256, ES256, EdDSA, RS256)
    on this machine and write a report with plots: bytes per request, verification
    latency, HTTP throughput, store footprint, revocation delay, login and refresh cost."""
    options = _options(quick, postgres_url, redis_url, load_tool, only)
    if importlib.util.find_spec("matplotlib") is None:
        console.print(
            "[red]error:[/red] the report's plots need matplotlib: pip install 'twofold\\[bench]'"
        )
        raise typer.Exit(1)
    from twofold.bench.report import NotAReportDirectory, prepare_out, write_report
    from twofold.bench.run import run

    try:
        prepare_out(out)
    except (NotAReportDirectory, OSError) as exc:
        raise _usage(str(exc)) from None
    # A terminal closed or a `kill`: unwind like Ctrl-C, so the servers, the throwaway
    # PostgreSQL and Redis and their directories are stopped and removed on the way out.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        try:
            results = run(options, _Bar(progress))
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]: everything it started is stopped.")
            raise typer.Exit(130) from None
        progress.update(progress.task_ids[0], description="writing the report")
        written = write_report(results, out)
    console.print(
        f"Measured {len(results.measured)} configurations in {results.machine.seconds:,.0f} s"
        + (f"; {len(results.skipped)} skipped (see the report)." if results.skipped else ".")
    )
    report = next(path for path in written if path.name == "report.html")
    console.print(f"Report: {escape(str(report))} and {escape(str(report.with_suffix('.md')))}")
