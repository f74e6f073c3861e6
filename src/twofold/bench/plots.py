"""The report's figures: PNG files drawn with matplotlib's Agg backend (no display).

Each :class:`Plot` carries its caption: the unit and how the figure was measured, so a
figure copied out of the report still says what it shows. A figure with nothing to show
(every configuration skipped) is not drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from twofold.bench.results import BenchResults

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["MissingMatplotlib", "Plot", "draw_all"]

_SESSION = "#3b6ea8"
_JWT = "#c2692a"
_GREY = "#9a9a9a"


class MissingMatplotlib(RuntimeError):
    """matplotlib is not installed: ``pip install 'twofold[bench]'``."""


@dataclass(frozen=True)
class Plot:
    #: File name, relative to the report.
    file: str
    title: str
    caption: str


#: Said under every plot: the bars are coloured by mechanism.
_COLOURS = " Blue bars are sessions, orange bars JWTs."


def _colour(name: str) -> str:
    return _SESSION if name.startswith("session/") else _JWT


def _pyplot() -> object:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingMatplotlib(
            "matplotlib is needed for the report's plots: pip install 'twofold[bench]'"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(path: Path, draw: Callable[[Axes], None], *, width: float = 8.0) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(width, 4.2), dpi=100)
    try:
        draw(axes)
        axes.grid(axis="y", alpha=0.3)
        axes.set_axisbelow(True)
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)


def _throughput(results: BenchResults, out: Path) -> Plot | None:
    me = [t for t in results.throughput if t.path == "/auth/me" and t.instances == 1]
    if not me:
        return None
    names = [t.configuration for t in me]
    many = {
        t.configuration: t.rps
        for t in results.throughput
        if t.path == "/auth/me" and t.instances > 1
    }
    baselines = [t.rps for t in results.throughput if t.path == "/healthz" and t.instances == 1]

    def draw(axes: Axes) -> None:
        positions = range(len(names))
        axes.bar(
            [p - 0.2 for p in positions],
            [t.rps for t in me],
            width=0.4,
            color=[_colour(n) for n in names],
            label="/auth/me, 1 instance",
        )
        axes.bar(
            [p + 0.2 for p in positions],
            [many.get(n, 0.0) for n in names],
            width=0.4,
            color=[_colour(n) for n in names],
            alpha=0.5,
            label="/auth/me, 2 instances",
        )
        if baselines:
            axes.axhline(
                max(baselines), color=_GREY, linestyle="--", label="/healthz, 1 instance (best)"
            )
        axes.set_xticks(list(positions), names, rotation=20, ha="right")
        axes.set_ylabel("requests per second")
        axes.legend(fontsize="small")

    _figure(out / "throughput.png", draw)
    tool = me[0].tool
    return Plot(
        "throughput.png",
        "HTTP throughput",
        f"Requests per second of GET /auth/me with a valid credential ({tool}, "
        f"{me[0].connections} connections, {me[0].seconds:.1f} s each, from this machine to "
        "127.0.0.1), on one instance and on two sharing the store where it allows; the dashed "
        "line is GET /healthz on one instance of the same build (no credential, no store)."
        + _COLOURS,
    )


def _latency(results: BenchResults, out: Path) -> Plot | None:
    me = [t for t in results.throughput if t.path == "/auth/me" and t.instances == 1]
    if not me:
        return None

    def draw(axes: Axes) -> None:
        positions = list(range(len(me)))
        axes.bar(
            [p - 0.2 for p in positions],
            [t.latency_ms.p50 for t in me],
            width=0.4,
            color=[_colour(t.configuration) for t in me],
            label="p50",
        )
        axes.bar(
            [p + 0.2 for p in positions],
            [t.latency_ms.p99 for t in me],
            width=0.4,
            color=[_colour(t.configuration) for t in me],
            alpha=0.5,
            label="p99",
        )
        axes.set_xticks(positions, [t.configuration for t in me], rotation=20, ha="right")
        axes.set_ylabel("milliseconds")
        axes.legend(fontsize="small")

    _figure(out / "latency.png", draw)
    return Plot(
        "latency.png",
        "HTTP latency under load",
        "Milliseconds per GET /auth/me (p50 and p99) during the one-instance load above: "
        "time from sending a request to reading its answer, queueing included." + _COLOURS,
    )


def _bytes(results: BenchResults, out: Path) -> Plot | None:
    if not results.wire:
        return None
    wires = results.wire

    def draw(axes: Axes) -> None:
        positions = list(range(len(wires)))
        axes.bar(
            positions,
            [w.request - w.credential for w in wires],
            width=0.6,
            color=_GREY,
            label="request without the credential",
        )
        axes.bar(
            positions,
            [w.credential for w in wires],
            width=0.6,
            bottom=[w.request - w.credential for w in wires],
            color=[_colour(w.configuration) for w in wires],
            label="credential header",
        )
        axes.plot(positions, [w.response for w in wires], "k_", markersize=28, label="answer")
        axes.set_xticks(positions, [w.configuration for w in wires], rotation=20, ha="right")
        axes.set_ylabel("bytes")
        axes.legend(fontsize="small")

    _figure(out / "bytes.png", draw)
    return Plot(
        "bytes.png",
        "Bytes on the wire per authenticated request",
        "Bytes of one GET /auth/me as written on the TCP socket (request line, Host, "
        "User-Agent, Accept, Connection and the credential: the Cookie a browser would send "
        "or the Authorization: Bearer header), split into the credential header and the "
        "rest; the black mark is the answer's size (status line, headers, JSON body)." + _COLOURS,
    )


def _verification(results: BenchResults, out: Path) -> Plot | None:
    checks = results.verification
    if not checks:
        return None

    def draw(axes: Axes) -> None:
        _pairs(
            axes,
            [v.configuration for v in checks],
            ("p50", [v.latency_us.p50 for v in checks]),
            ("p99", [v.latency_us.p99 for v in checks]),
        )
        axes.set_yscale("log")
        axes.set_ylabel("microseconds (log scale)")

    _figure(out / "verification.png", draw)
    return Plot(
        "verification.png",
        "In-process verification latency",
        "Microseconds to decide who a request is from, in this process, without HTTP: for a "
        "session the store lookup of the id's hash and the server's checks of the record and "
        "the user (SQLite on local disk, PostgreSQL and Redis over loopback TCP); for a JWT "
        "the signature and claim checks." + _COLOURS,
    )


def _revocation(results: BenchResults, out: Path) -> Plot | None:
    revocations = results.revocations
    if not revocations:
        return None

    def draw(axes: Axes) -> None:
        _pairs(
            axes,
            [r.configuration for r in revocations],
            ("p50", [r.delay_ms.p50 for r in revocations]),
            ("max", [r.delay_ms.max for r in revocations]),
        )
        axes.set_ylabel("milliseconds")

    _figure(out / "revocation.png", draw)
    return Plot(
        "revocation.png",
        "Revocation delay across instances",
        "Milliseconds from the answer to a logout at instance A until instance B first "
        "refused the same credential, polling B every 2 ms (an upper bound: one round trip "
        "included)." + _COLOURS,
    )


def draw_all(results: BenchResults, out: Path) -> list[Plot]:
    """Draw every figure the results have data for into ``out``; ``MissingMatplotlib``
    if matplotlib is not installed."""
    _pyplot()
    drawers = (_throughput, _latency, _bytes, _verification, _revocation)
    return [plot for draw in drawers if (plot := draw(results, out)) is not None]


def _pairs(
    axes: Axes,
    configurations: list[str],
    first: tuple[str, list[float]],
    second: tuple[str, list[float]],
) -> None:
    """Two bars per configuration in its colour, the second paler: e.g. p50 and p99."""
    positions = list(range(len(configurations)))
    colours = [_colour(c) for c in configurations]
    for (label, values), offset, alpha in ((first, -0.2, 1.0), (second, 0.2, 0.5)):
        axes.bar(
            [p + offset for p in positions],
            values,
            width=0.4,
            color=colours,
            alpha=alpha,
            label=label,
        )
    axes.set_xticks(positions, configurations, rotation=20, ha="right")
    axes.legend(fontsize="small")
