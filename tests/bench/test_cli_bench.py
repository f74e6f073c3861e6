"""``twofold bench`` run as a user runs it: a subprocess writing a report. The figures
are not checked (the machines are shared and noisy), their presence and shape are: both
documents, valid PNGs, the comparison table with a figure in every measured cell, skips
with their reasons, and exit code 2 with a message for bad options."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from twofold.bench.instances import TWOFOLD

PNG = b"\x89PNG\r\n\x1a\n"
#: What one quick run may take on a busy two-core machine (it aims at a minute).
RUN_TIMEOUT = 400
MEASURED_ROWS = {
    "Token size",
    "Bandwidth",
    "Cost of each request's check",
    "Scalability",
    "State and storage",
    "Security (revocation)",
    "Renewal",
}


def bench(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TWOFOLD), "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def comparison_rows(markdown: str) -> dict[str, list[str]]:
    section = markdown.split("## The articles' comparison, measured", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ")][2:]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    return {row[0]: row for row in cells}


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "report"
    done = bench("--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return out


@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_a_quick_run_writes_both_documents_and_the_plots(quick_report: Path) -> None:
    for name in ("report.md", "report.html", "results.json"):
        assert (quick_report / name).is_file(), name
    pngs = sorted(p.name for p in quick_report.glob("*.png"))
    assert pngs == ["bytes.png", "latency.png", "revocation.png", "throughput.png",
                    "verification.png"]  # fmt: skip
    for png in quick_report.glob("*.png"):
        assert png.read_bytes().startswith(PNG), png.name
    page = (quick_report / "report.html").read_text()
    assert "<script" not in page.lower()
    assert all((quick_report / src).is_file() for src in re.findall(r'<img src="([^"]+)"', page))


@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_the_comparison_table_ends_the_report_with_figures(quick_report: Path) -> None:
    """Every measured row has a number for sessions and for JWTs; the machine is named."""
    markdown = (quick_report / "report.md").read_text()
    assert markdown.rsplit("\n## ", 1)[1].startswith("The articles' comparison, measured")
    assert re.search(r"\d+ CPUs; Python 3\.\d+", markdown)
    rows = comparison_rows(markdown)
    assert set(rows) >= MEASURED_ROWS
    for criterion in MEASURED_ROWS:
        _, _, sessions, jwt, verdict = rows[criterion]
        assert re.search(r"\d", sessions), rows[criterion]
        assert re.search(r"\d", jwt), rows[criterion]
        assert verdict


@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_every_configuration_is_measured_or_skipped_with_a_reason(quick_report: Path) -> None:
    markdown = (quick_report / "report.md").read_text()
    for name in ("session/SQLite", "session/PostgreSQL", "session/Redis",
                 "JWT HS256", "JWT ES256", "JWT EdDSA", "JWT RS256"):  # fmt: skip
        measured = f"| {name} | Cookie |" in markdown or f"| {name} | Authorization |" in markdown
        skipped = re.search(rf"^\| {re.escape(name)} \| \S.+ \|$", markdown, re.M)
        assert measured or skipped, name


@pytest.mark.timeout(RUN_TIMEOUT)
def test_an_unreachable_postgres_is_skipped_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = bench("--quick", "--only", "footprint", "--postgres-url",
                 "postgresql://127.0.0.1:1/x", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    markdown = (out / "report.md").read_text()
    line = next(line for line in markdown.splitlines() if line.startswith("| session/PostgreSQL |"))
    assert "127.0.0.1:1" in line
    assert "not reachable" in line
    assert "| session/SQLite | disk |" in markdown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--load-tool", "ab"], "--load-tool must be one of"),
        (["--only", "everything"], "--only: unknown section"),
        (["--postgres-url", "mysql://127.0.0.1/x"], "--postgres-url must start with"),
        (["--redis-url", "http://127.0.0.1:6379"], "--redis-url must start with"),
        (["--postgres-url", "postgresql://u@127.0.0.1:notaport/db"], "--postgres-url: Port"),
        (["--redis-url", "redis://127.0.0.1:99999/0"], "--redis-url: Port"),
        (["--redis-url", "redis://[::1"], "--redis-url: Invalid IPv6 URL"),
        (["--frobnicate"], "No such option"),
    ],
    ids=[
        "load-tool",
        "only",
        "postgres-url",
        "redis-url",
        "postgres-port",
        "redis-port",
        "redis-ipv6",
        "unknown-option",
    ],
)
def test_bad_options_exit_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    done = bench(*args, "--out", str(tmp_path / "out"), timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_out_directory_holding_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("mine")
    done = bench("--quick", "--out", str(tmp_path), timeout=60)
    assert done.returncode == 2
    assert "choose another --out" in done.stderr
    assert (tmp_path / "thesis.tex").read_text() == "mine"
