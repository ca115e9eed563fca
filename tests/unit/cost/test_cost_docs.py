"""docs/cost.md shows what ``ffe cost`` prints: every table after a ``<!-- ffe cost ... -->`` line and the summary are
the command's output now (regenerate with ``.venv/bin/python -m ffe.cost.docs``)."""

from __future__ import annotations

from pathlib import Path

from ffe.cost.docs import BLOCK, SUMMARY, regenerated

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs/cost.md"


def test_the_page_holds_each_stage_at_20_500_and_10000_assets() -> None:
    commands = [m.group(1) for m in BLOCK.finditer(PAGE.read_text())]
    expected = [
        f"ffe cost --stage {stage} --assets {n} --cadence 15m"
        for stage in ("dev", "staging", "prod")
        for n in (20, 500, 10000)
    ]
    assert commands == expected
    assert SUMMARY.search(PAGE.read_text())


def test_the_tables_are_the_commands_output() -> None:
    text = PAGE.read_text()
    assert regenerated(text, ROOT) == text, "docs/cost.md is stale: run .venv/bin/python -m ffe.cost.docs"
