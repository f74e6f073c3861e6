"""The report rendered from a results object: both documents, the plots, the comparison
table at the end with its verdicts following the figures, and the output directory's
guard."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from twofold.bench.comparison import comparison
from twofold.bench.report import MARKER, NotAReportDirectory, prepare_out, write_report
from twofold.bench.results import (
    BenchResults,
    ClaimGrowth,
    Cost,
    Footprint,
    Machine,
    Revocation,
    Skipped,
    Throughput,
    Verification,
    WireBytes,
)
from twofold.bench.stats import Summary, summarize

PNG = b"\x89PNG\r\n\x1a\n"


def _summary(p50: float) -> Summary:
    return summarize([p50 * 0.9, p50, p50, p50 * 1.1, p50 * 3])


def _load(name: str, path: str, rps: float, instances: int = 1) -> Throughput:
    return Throughput(name, path, instances, 8, 1.0, int(rps), rps, _summary(5.0), 0, "builtin")


def results(*, jwt_bytes: int = 700, jwt_rps: float = 900.0) -> BenchResults:
    """A run's figures: two session stores, two JWT algorithms, one store skipped."""
    sessions, jwts = ("session/SQLite", "session/Redis"), ("JWT ES256", "JWT HS256")
    return BenchResults(
        machine=Machine(
            2, "3.11.7", "Linux", (0.5, 0.4, 0.3), "2026-01-01 00:00 UTC", True, "builtin", 42.0
        ),
        measured=(*sessions, *jwts),
        skipped=(Skipped("session/PostgreSQL", "PostgreSQL at 127.0.0.1:1 is not reachable"),),
        wire=(
            *(WireBytes(n, 272, 152, 587, "Cookie") for n in sessions),
            *(WireBytes(n, jwt_bytes, jwt_bytes - 120, 524, "Authorization") for n in jwts),
        ),
        claim_growth=(ClaimGrowth("ES256", ((1, 517), (5, 570), (20, 770))),),
        verification=(
            Verification("session/SQLite", _summary(40), "store read + session check"),
            Verification("session/Redis", _summary(300), "store read + session check"),
            Verification("JWT ES256", _summary(150), "signature + claims", "raw", _summary(130)),
            Verification("JWT HS256", _summary(20), "signature + claims", "raw", _summary(18)),
        ),
        throughput=(
            _load("session/SQLite", "/healthz", 1200),
            _load("session/SQLite", "/auth/me", 1000),
            _load("session/Redis", "/auth/me", 600),
            _load("session/Redis", "/auth/me", 1000, instances=2),
            _load("JWT ES256", "/auth/me", jwt_rps),
            _load("JWT ES256", "/auth/me", jwt_rps * 1.5, instances=2),
            _load("JWT HS256", "/auth/me", jwt_rps),
        ),
        footprints=(
            Footprint("session/SQLite", 496, "disk", "pages"),
            Footprint("session/Redis", 700, "memory", "INFO used_memory"),
        ),
        revocations=(
            Revocation("session/SQLite", _summary(4)),
            Revocation("session/Redis", _summary(6)),
            Revocation("JWT ES256", _summary(60), accepted_after=20),
        ),
        costs=(
            Cost("password login", _summary(40.0), 25.0, "argon2id"),
            Cost("refresh rotation", _summary(0.7), 1200.0, "SQLite"),
        ),
    )


def _comparison_table(markdown: str) -> list[list[str]]:
    section = markdown.split("## The articles' comparison, measured", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[2:]]


def test_the_report_ends_with_the_comparison_table_filled_in(tmp_path: Path) -> None:
    """Both documents and every plot are written; the Markdown ends with the articles'
    table, every measured row with figures for sessions and JWTs."""
    prepare_out(tmp_path / "out")
    written = write_report(results(), tmp_path / "out")
    names = {path.name for path in written}
    assert {"report.md", "report.html", "results.json"} <= names
    pngs = sorted(n for n in names if n.endswith(".png"))
    assert pngs == ["bytes.png", "latency.png", "revocation.png", "throughput.png",
                    "verification.png"]  # fmt: skip
    for name in pngs:
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG)
    markdown = (tmp_path / "out" / "report.md").read_text()
    last_heading = markdown.rsplit("\n## ", 1)[1]
    assert last_heading.startswith("The articles' comparison, measured")
    rows = _comparison_table(markdown)
    measured = [row for row in rows if row[2] != "—"]
    assert {row[0] for row in measured} == {
        "Token size", "Bandwidth", "Cost of each request's check", "Scalability",
        "State and storage", "Security (revocation)", "Renewal",
    }  # fmt: skip
    for row in measured:
        assert re.search(r"\d", row[2]), row
        assert re.search(r"\d", row[3]), row
    assert "| session/PostgreSQL | PostgreSQL at 127.0.0.1:1 is not reachable |" in markdown


def test_the_html_is_self_contained(tmp_path: Path) -> None:
    """No script, no stylesheet or image from elsewhere; images are the PNGs beside it."""
    prepare_out(tmp_path)
    write_report(results(), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images
    assert all((tmp_path / image).is_file() for image in images)
    assert "The articles&#39; comparison, measured" in page or "articles' comparison" in page


@pytest.mark.parametrize(
    ("jwt_bytes", "verdict"),
    [(700, "Borne out"), (280, "No real difference"), (200, "Not borne out")],
    ids=["larger", "same", "smaller"],
)
def test_the_token_size_verdict_follows_the_bytes(jwt_bytes: int, verdict: str) -> None:
    row = next(r for r in comparison(results(jwt_bytes=jwt_bytes)) if r.criterion == "Token size")
    assert row.verdict.startswith(verdict)


@pytest.mark.parametrize(
    ("jwt_rps", "verdict"),
    [(1500.0, "Borne out"), (1000.0, "Not borne out: within"), (500.0, "Not borne out: the best")],
    ids=["jwt-faster", "same", "sessions-faster"],
)
def test_the_scalability_verdict_follows_the_throughput(jwt_rps: float, verdict: str) -> None:
    row = next(r for r in comparison(results(jwt_rps=jwt_rps)) if r.criterion == "Scalability")
    assert row.verdict.startswith(verdict)


def test_rows_without_figures_are_left_out() -> None:
    """A run that measured no JWT (every one skipped) claims nothing about JWTs."""
    full = results()
    only_sessions = dataclasses.replace(
        full,
        wire=tuple(w for w in full.wire if w.header == "Cookie"),
        verification=full.verification[:2],
        throughput=full.throughput[:4],
        revocations=full.revocations[:2],
    )
    criteria = {row.criterion for row in comparison(only_sessions) if row.measured}
    assert criteria.isdisjoint({"Token size", "Bandwidth", "Scalability", "Security (revocation)"})


def test_a_directory_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotAReportDirectory):
        prepare_out(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_previous_report_is_replaced(tmp_path: Path) -> None:
    prepare_out(tmp_path)
    write_report(results(), tmp_path)
    assert (tmp_path / MARKER).is_file()
    prepare_out(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [MARKER]


def test_a_report_directory_with_other_files_is_refused(tmp_path: Path) -> None:
    """The marker alone does not let a run delete a file it never writes."""
    prepare_out(tmp_path)
    (tmp_path / "keep.csv").write_text("1,2")
    with pytest.raises(NotAReportDirectory):
        prepare_out(tmp_path)
    assert (tmp_path / "keep.csv").exists()
