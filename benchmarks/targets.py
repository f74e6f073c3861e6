"""Every speed target of Twofold, measured on this machine and printed as one table.

Each target is a ratio against a baseline timed in the same run, or a rate, or a size
(``twofold.bench.targets.Target``); the machines are shared and noisy, so the baselines are
interleaved with what they are compared to and the median ratio of several rounds is kept.
Groups whose service cannot be started (Redis for the Redis targets) are reported as
skipped with the reason. The exit status is 0 whether or not a target is met: this is a
measurement, not a test.

    .venv/bin/python -m benchmarks.targets [--quick] [--only verification,http,stores]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from twofold.bench import http_targets, store_costs, verification
from twofold.bench.services import Unavailable
from twofold.bench.targets import RATIO, Target

GROUPS: dict[str, Callable[..., list[Target]]] = {
    "verification": verification.targets,
    "http": http_targets.targets,
    "stores": store_costs.targets,
}


def measure(names: Sequence[str], *, quick: bool, console: Console) -> list[Target]:
    measured: list[Target] = []
    for name in names:
        with console.status(f"measuring {name} targets"):
            try:
                measured.extend(GROUPS[name](quick=quick))
            except Unavailable as exc:
                console.print(f"[yellow]{name}: skipped[/]: {exc.reason}")
    return measured


def table(targets: Sequence[Target]) -> Table:
    out = Table(title="Twofold speed targets (ratios against same-run baselines)")
    for column in ("target", "measured", "limit", "met", "figures"):
        out.add_column(column)
    for target in targets:
        sign = "≤" if target.direction == "at_most" else "≥"
        out.add_row(
            target.name,
            _figure(target.measured, target.unit),
            f"{sign} {_figure(target.limit, target.unit)}",
            "[green]yes[/]" if target.met else "[red]no[/]",
            target.detail,
        )
    return out


def _figure(value: float, unit: str) -> str:
    if unit == RATIO:
        return f"{value:.2f}{RATIO}"
    if unit == "%":
        return f"{value:.0f}%"
    return f"{value:,.0f} {unit}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (a smoke run)")
    parser.add_argument(
        "--only",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(GROUPS),
        help=f"comma-separated groups of {', '.join(GROUPS)}",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.only if name not in GROUPS]
    if unknown or not args.only:
        parser.error(f"--only takes groups of {', '.join(GROUPS)}; not {', '.join(unknown)}")
    console = Console()
    console.print(table(measure(args.only, quick=args.quick, console=console)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
