"""docs/integration.md shows code the examples run: every snippet marked
``<!-- from examples/... -->`` is found, as written, in that file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
GUIDE = ROOT / "docs" / "integration.md"
SNIPPET = re.compile(r"<!-- from (?P<path>\S+) -->\n```[a-z]*\n(?P<code>.*?)```", re.DOTALL)


def snippets() -> list[tuple[str, str]]:
    return [(m["path"], m["code"]) for m in SNIPPET.finditer(GUIDE.read_text())]


def test_guide_has_snippets_from_every_example() -> None:
    """Each example under examples/ is quoted at least once."""
    quoted = {Path(path).parts[1] for path, _ in snippets()}
    examples = {p.name for p in (ROOT / "examples").iterdir() if (p / "app.py").exists()}
    assert examples <= quoted


@pytest.mark.parametrize(("path", "code"), snippets(), ids=lambda value: str(value)[:40])
def test_snippet_is_in_its_example(path: str, code: str) -> None:
    """The snippet is a verbatim part of the example the tests run."""
    assert code in (ROOT / path).read_text(), f"docs/integration.md drifted from {path}"
