"""The report of a run: ``report.md``, ``report.html`` (self-contained: no script, no
external asset; the plots are PNG files beside it, referenced relatively), the PNGs, and
``results.json`` with every figure.

Both documents are rendered from one :class:`Document` built from the results alone, so
they say the same thing. The output directory is only ever a report's: a directory that
holds anything else is refused rather than overwritten.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from twofold.bench.comparison import comparison
from twofold.bench.plots import Plot, draw_all
from twofold.bench.results import BenchResults, Throughput

__all__ = ["MARKER", "Document", "NotAReportDirectory", "build", "prepare_out", "write_report"]

#: Marks a directory as a report's, so that a later run may replace its files.
MARKER = ".twofold-bench"
_OURS = {"report.md", "report.html", "results.json", MARKER}


class NotAReportDirectory(Exception):
    """The output directory exists and holds something that is not a report."""


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    plots: tuple[Plot, ...] = ()


@dataclass(frozen=True)
class Document:
    title: str
    machine: tuple[str, ...]
    sections: tuple[Section, ...]


def prepare_out(out: Path) -> None:
    """Make ``out`` ready for a report: created if missing; if it holds a previous
    report, that report's files are removed; anything else is refused."""
    if out.exists() and not out.is_dir():
        raise NotAReportDirectory(f"{out} exists and is not a directory")
    if out.is_dir():
        entries = list(out.iterdir())
        if entries and not (out / MARKER).is_file():
            raise NotAReportDirectory(
                f"{out} is not empty and holds no previous report; choose another --out"
            )
        strangers = [e.name for e in entries if e.name not in _OURS and e.suffix != ".png"]
        if strangers:
            raise NotAReportDirectory(
                f"{out} holds files a report does not write ({', '.join(sorted(strangers)[:3])})"
                "; choose another --out"
            )
        for entry in entries:
            entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("A twofold bench report; the next run may replace it.\n")


# -- the document ------------------------------------------------------------------------


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _machine(results: BenchResults) -> tuple[str, ...]:
    m = results.machine
    load = ", ".join(f"{x:.2f}" for x in m.load_average)
    kind = "quick run (rough figures)" if m.quick else "full run"
    return (
        f"{m.date}; {kind} in {m.seconds:,.0f} s",
        f"{m.cpus} CPUs; Python {m.python}; {m.platform}",
        f"Load average at the start (1, 5, 15 min): {load}",
        f"HTTP load from {m.load_tool}",
    )


def _skipped(results: BenchResults) -> Section | None:
    if not results.skipped:
        return None
    return Section(
        "Skipped",
        ("What was not measured in this run, and why.",),
        (Table(("What", "Reason"), tuple((s.what, s.reason) for s in results.skipped)),),
    )


def _wire(results: BenchResults, plots: dict[str, Plot]) -> Section | None:
    if not results.wire:
        return None
    rows = tuple(
        (w.configuration, w.header, _n(w.credential), _n(w.request), _n(w.response))
        for w in results.wire
    )
    tables = [
        Table(
            (
                "Configuration",
                "Credential in",
                "Credential header (B)",
                "Request (B)",
                "Answer (B)",
            ),
            rows,
        )
    ]
    if results.claim_growth:
        counts = [count for count, _ in results.claim_growth[0].sizes]
        tables.append(
            Table(
                (
                    "Algorithm",
                    *(f"{count} role{'' if count == 1 else 's'} (B)" for count in counts),
                ),
                tuple(
                    (g.algorithm, *(_n(size) for _, size in g.sizes)) for g in results.claim_growth
                ),
            )
        )
    return Section(
        "Bytes on the wire per authenticated request",
        (
            "One GET /auth/me per configuration, written by hand on a TCP socket as a minimal "
            "client would send it; the answer is every byte read back. A session cookie has "
            "the same size whatever the store; a JWT grows with its claims — the second "
            "table signs the server's claim set with 1, 5 and 20 role names.",
        ),
        tuple(tables),
        _pick(plots, "bytes.png"),
    )


def _verification(results: BenchResults, plots: dict[str, Plot]) -> Section | None:
    if not results.verification:
        return None
    rows = tuple(
        (
            v.configuration,
            v.what,
            _n(v.latency_us.p50, 1),
            _n(v.latency_us.p99, 1),
            _n(v.latency_us.count),
            "—" if v.baseline_us is None else f"{v.baseline_name}: {_n(v.baseline_us.p50, 1)}",
        )
        for v in results.verification
    )
    return Section(
        "In-process verification latency",
        (
            "Microseconds to recognise a credential in-process, without HTTP. Sessions: "
            "Authority.session_principal on the real store (the id's SHA-256 looked up, the "
            "record and the user checked; no session cache, so every check reads the store). "
            "JWTs: the access-token codec's signature and claim checks, interleaved with the "
            "raw primitive of the same bytes as a baseline.",
        ),
        (
            Table(
                ("Configuration", "What", "p50 (µs)", "p99 (µs)", "Samples", "Baseline p50 (µs)"),
                rows,
            ),
        ),
        _pick(plots, "verification.png"),
    )


def _baseline(results: BenchResults, figure: Throughput) -> Throughput | None:
    """The /healthz figure of the same servers, if it was measured (a quick run measures
    it on the first servers only): another server's would not be a baseline."""
    return next(
        (
            t
            for t in results.throughput
            if t.path == "/healthz"
            and t.instances == figure.instances
            and t.configuration == figure.configuration
        ),
        None,
    )


def _throughput(results: BenchResults, plots: dict[str, Plot]) -> Section | None:
    if not results.throughput:
        return None
    rows = []
    for t in results.throughput:
        base = _baseline(results, t) if t.path == "/auth/me" else None
        share = "—" if base is None or base.rps == 0 else f"{t.rps / base.rps:.0%}"
        rows.append(
            (
                t.configuration,
                t.path,
                str(t.instances),
                _n(t.rps),
                _n(t.latency_ms.p50, 2),
                _n(t.latency_ms.p99, 2),
                _n(t.requests),
                _n(t.errors),
                share,
            )
        )
    return Section(
        "HTTP throughput and latency under load",
        (
            "Every request from this machine to 127.0.0.1, so the load generator takes CPU "
            "from the servers; the /healthz baseline of the same servers shows what HTTP and "
            "the framework cost alone. Two instances share the store and this machine's "
            "cores: they show whether the store becomes the limit, not how a cluster of "
            "machines would scale. A quick run measures /healthz on the first servers only "
            "(the others show — in the last column).",
            "The servers run with their defaults, as deployed: a session is read from its "
            "store on every request (no session cache), while an access token is verified "
            "once and then remembered by its exact text (access_token_cache_size), so the "
            "load generator's repeated token pays the expiry and revocation checks, not the "
            "signature. A real client also sends one token for its whole lifetime; the "
            "in-process table above shows the full check a new token costs.",
        ),
        (
            Table(
                (
                    "Configuration",
                    "Path",
                    "Instances",
                    "req/s",
                    "p50 (ms)",
                    "p99 (ms)",
                    "Requests",
                    "Errors",
                    "Of /healthz",
                ),
                tuple(rows),
            ),
        ),
        tuple(p for p in (plots.get("throughput.png"), plots.get("latency.png")) if p),
    )


def _footprint(results: BenchResults) -> Section | None:
    if not results.footprints:
        return None
    rows = tuple(
        (f.configuration, f.kind, _n(f.bytes_per_session), f.detail) for f in results.footprints
    )
    return Section(
        "Store footprint per session",
        (
            "Bytes one session adds to its store: the store's size before and after many "
            "sessions made through the real session code, divided by their number (disk for "
            "SQLite and PostgreSQL, memory for Redis).",
        ),
        (Table(("Configuration", "Kind", "Bytes per session", "How"), rows),),
    )


def _revocation(results: BenchResults, plots: dict[str, Plot]) -> Section | None:
    if not results.revocations:
        return None
    rows = tuple(
        (
            r.configuration,
            _n(r.delay_ms.p50, 1),
            _n(r.delay_ms.max, 1),
            _n(r.delay_ms.count),
            _n(r.accepted_after),
        )
        for r in results.revocations
    )
    return Section(
        "Revocation delay across instances",
        (
            "A logout at instance A; instance B polled every 2 ms with the same credential "
            "until it refused. Sessions are refused as soon as the record is gone from the "
            "shared store; a JWT as soon as B has the revocation, pushed (PostgreSQL, Redis) "
            "or polled (SQLite, every 0.1 s by default).",
        ),
        (
            Table(
                ("Configuration", "p50 (ms)", "max (ms)", "Logouts", "Polls still accepted"), rows
            ),
        ),
        _pick(plots, "revocation.png"),
    )


def _costs(results: BenchResults) -> Section | None:
    if not results.costs:
        return None
    rows = tuple(
        (
            c.name,
            _n(c.latency_ms.p50, 2),
            _n(c.latency_ms.p99, 2),
            "—" if c.per_second is None else _n(c.per_second),
            c.detail,
        )
        for c in results.costs
    )
    return Section(
        "Login and refresh cost",
        (
            "What getting a credential costs, in-process: a password login (Argon2id) and a "
            "refresh-token rotation on SQLite.",
        ),
        (Table(("Operation", "p50 (ms)", "p99 (ms)", "Per second", "How"), rows),),
    )


def _comparison(results: BenchResults) -> Section:
    rows = comparison(results)
    return Section(
        "The articles' comparison, measured",
        (
            "The claims of the seed articles on sessions and JWTs, with this run's figures. "
            "The verdicts follow from the figures by fixed rules (within 10 % counts as the "
            "same); rows that are not measurements are kept and marked.",
        ),
        (
            Table(
                (
                    "Criterion",
                    "The articles say",
                    "Sessions (measured)",
                    "JWTs (measured)",
                    "Verdict",
                ),
                tuple((r.criterion, r.claim, r.sessions, r.jwt, r.verdict) for r in rows),
            ),
        ),
    )


def _pick(plots: dict[str, Plot], name: str) -> tuple[Plot, ...]:
    return (plots[name],) if name in plots else ()


def build(results: BenchResults, plots: Sequence[Plot] = ()) -> Document:
    """The report of ``results``, with ``plots`` (already drawn) placed in their sections;
    it always ends with the comparison table."""
    by_file = {plot.file: plot for plot in plots}
    sections = [
        _skipped(results),
        _wire(results, by_file),
        _verification(results, by_file),
        _throughput(results, by_file),
        _footprint(results),
        _revocation(results, by_file),
        _costs(results),
        _comparison(results),
    ]
    return Document(
        "Sessions and JWTs, measured on this machine",
        _machine(results),
        tuple(s for s in sections if s is not None),
    )


# -- rendering ---------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(document: Document) -> str:
    lines = [f"# {document.title}", ""]
    lines += [f"- {line}" for line in document.machine]
    for section in document.sections:
        lines += ["", f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        for table in section.tables:
            lines.append("| " + " | ".join(_cell(h) for h in table.headers) + " |")
            lines.append("|" + "|".join(" --- " for _ in table.headers) + "|")
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
            lines.append("")
        for plot in section.plots:
            lines += [f"![{plot.title}]({plot.file})", "", f"*{plot.caption}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def html(document: Document) -> str:
    environment = Environment(
        loader=PackageLoader("twofold.bench", "templates"),
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
    )
    return environment.get_template("report.html").render(document=document)


def _json(results: BenchResults) -> str:
    return json.dumps(dataclasses.asdict(results), indent=2, ensure_ascii=False) + "\n"


def write_report(results: BenchResults, out: Path) -> list[Path]:
    """Draw the plots and write both documents and the figures' JSON into ``out``
    (prepared with :func:`prepare_out`); the files written."""
    plots = draw_all(results, out)
    document = build(results, plots)
    written = [out / plot.file for plot in plots]
    for name, text in (
        ("report.md", markdown(document)),
        ("report.html", html(document)),
        ("results.json", _json(results)),
    ):
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written
