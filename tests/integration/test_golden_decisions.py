"""No behaviour change: the golden walk's decisions, state outputs and stored rows are exactly those of the golden
run (tests/golden/decisions.jsonl.gz, made from the code before the performance work; tests/golden/README.md).

The walk (tests/golden/walk.py) runs ~300 decisions through the real handlers on a fresh database: every state's
output, every row of the tables a cycle writes, and which tables hold rows are compared, field by field. What is
left out, and why, is named in tests/golden/rows.py (``EXCLUDED``, ``EXCLUDED_KEYS``) and records.py (``PATHS``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ROOT
from tests.database import own_database
from tests.golden import compare
from tests.golden.records import walk_records
from tests.golden.rows import TABLES
from tests.golden.walk import run_walk

GOLDEN = compare.HERE / "decisions.jsonl.gz"
SECTIONS = ("step", *TABLES, "tables")


def section(key: str) -> str:
    return key.split(" ", 1)[0]


@pytest.fixture(scope="module")
def walked(postgres: str) -> dict[str, Any]:
    """The walk, once for the module, on a database of its own: {key: data}."""
    url = own_database(postgres, "ffe_golden")
    return {r["key"]: r["data"] for r in walk_records(run_walk(url, ROOT), url)}


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return compare.read(GOLDEN)[1]


@pytest.mark.parametrize("part", SECTIONS)
def test_the_walk_matches_the_golden_run(part: str, walked: dict[str, Any], golden: dict[str, Any]) -> None:
    """Each section, field by field. A state's output may carry a field the golden run's did not (what the states
    hand each other is no decision, and what RecordDecision stores of it is compared in its rows); a stored row may
    not: a new column is a change of what is stored."""
    expected = {k: v for k, v in golden.items() if section(k) == part}
    assert expected, f"the golden file has no {part!r} records"
    now = {k: v for k, v in walked.items() if section(k) == part}
    found = compare.mismatches(expected, now, additions=part == "step")
    assert not found, compare.report(found, f"run ({part})")


def test_the_walk_covers_what_it_is_meant_to(golden: dict[str, Any]) -> None:
    """The golden run itself has what the walk is for: every asset, fills, blocks of every kind, stale HOLDs of each
    reason, a failed asset (so a regenerated golden file that lost any of it fails here)."""
    records = [v["record"] for k, v in golden.items() if section(k) == "step"]
    decisions = [r for r in records if r["kind"] == "decision"]
    assert len(decisions) >= 250
    assert {r["asset"] for r in decisions} == {"BTCUSD", "ETHUSD", "EURUSD", "GBPUSD", "SPX"}
    assert [(r["asset"], r["error"], r["step"]) for r in records if r["kind"] == "failure"] == [
        ("XAUUSD", "InvalidInputError", "fetch")
    ]
    stale = {r["reason"].split(":")[0] for r in decisions if r["stale"]}
    assert {"stale data", "insufficient_history", "no_bars"} <= stale
    rules = {rule for r in decisions if r.get("risk") for rule in r["risk"]["reasons"]}
    assert {
        "already_ordered",
        "below_min_size",
        "daily_loss_kill_switch",
        "drawdown_kill_switch",
        "gross_exposure_cap",
        "nothing_to_sell",
        "position_cap",
        "var_limit",
    } <= rules
    orders = [v for k, v in golden.items() if section(k) == "paper_orders"]
    assert {o["status"] for o in orders} >= {"FILLED"} and {o["side"] for o in orders} == {"BUY", "SELL"}
