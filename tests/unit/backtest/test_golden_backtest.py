"""No behaviour change in the backtester: each bundled real series, whole, with the meta-controller and the naive
router, gives exactly the golden run's per-bar decisions, positions and equity and its summary metrics
(tests/golden/backtests.jsonl.gz, made from the code before the performance work; tests/golden/README.md)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.golden import compare
from tests.golden.backtests import SERIES, backtest_records

GOLDEN = compare.HERE / "backtests.jsonl.gz"


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return compare.read(GOLDEN)[1]


@pytest.mark.parametrize("asset", SERIES)
def test_the_backtest_matches_the_golden_run(asset: str, golden: dict[str, Any]) -> None:
    now = {r["key"]: r["data"] for r in backtest_records(asset)}
    expected = {k: v for k, v in golden.items() if k == f"backtest {asset}" or k.startswith(f"backtest {asset} ")}
    assert len(expected) == 3, f"the golden file has no backtest of {asset} and its two strategies"
    found = compare.mismatches(expected, now)
    assert not found, compare.report(found, f"backtest of {asset}")
