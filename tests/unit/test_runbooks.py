"""The runbooks keep their shape: every page has the five sections an on-call reader looks for, a query to
confirm with, and a row in the index (docs/runbooks/README.md) with its severity.

Which pages must exist is checked from the other side by test_runbook_links.py: every alarm's description
links one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.conftest import ROOT

RUNBOOKS = ROOT / "docs" / "runbooks"
SECTIONS = ["What it means", "How to confirm", "First three things to do", "How to recover", "When to escalate"]
SEVERITIES = {"critical", "warning"}
PAGES = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
_MARKDOWN = MarkdownIt("commonmark").enable("table")


def _sections(page: Path) -> dict[str, str]:
    """Each ``##`` heading's text and the Markdown below it, up to the next ``##``."""
    parts = re.split(r"^## (.+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _index() -> dict[str, str]:
    """page file name -> severity, from the index's tables."""
    rows: dict[str, str] = {}
    for line in (RUNBOOKS / "README.md").read_text(encoding="utf-8").splitlines():
        found = re.match(r"^\| \[[^\]]+\]\(([a-z0-9-]+\.md)\) \| (\w+) \|", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


def test_there_are_pages() -> None:
    assert len(PAGES) >= 20


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_page_has_the_five_sections_in_order(page: Path) -> None:
    sections = [s for s in _sections(page) if s in SECTIONS]
    assert sections == SECTIONS


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_page_confirms_with_a_query(page: Path) -> None:
    confirm = _sections(page)["How to confirm"]
    fences = [t for t in _MARKDOWN.parse(confirm) if t.type == "fence"]
    assert fences, f"{page.name}: How to confirm has no query"
    assert "Logs Insights" in confirm and "Console" in confirm


def test_the_index_lists_every_page_with_its_severity() -> None:
    index = _index()
    assert set(index) == {p.name for p in PAGES}
    assert set(index.values()) <= SEVERITIES
