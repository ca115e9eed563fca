"""Scenario files (`ffe run --bars`) through the real cycle: template in moto, the real ASL and handlers, the
local inference endpoint and PostgreSQL. The examples under examples/ are run as shipped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ffe.adapters.scenario import Scenario, load_scenario
from ffe.local.aws import LocalCloud
from ffe.local.history import state_visits
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"
LAST_5M_BAR = datetime(2020, 1, 15, 11, 55, tzinfo=UTC)  # closes 12:00; the examples' as_of is minutes later
DAILY_AS_OF = datetime(2019, 6, 15, 0, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def cloud(postgres: str) -> Iterator[LocalCloud]:
    with LocalCloud(ROOT, postgres) as deployed:
        yield deployed


def run(cloud: LocalCloud, scenario: Scenario, as_of: datetime | None = None) -> dict[str, Any]:
    """What `ffe run --bars` does: serve the files to FetchMarketData, start the scenario's manual input."""
    cloud.serve_scenario(scenario.files)
    at = as_of or scenario.as_of
    assert at is not None
    arn = cloud.start_execution(scenario.cycle_input(at, f"scenario-{uuid.uuid4()}"))
    desc = cloud.wait(arn, timeout_s=120)
    with psycopg.connect(cloud.database_url, row_factory=dict_row) as conn:
        decisions = conn.execute("SELECT * FROM decisions WHERE execution_id = %s", (arn,)).fetchall()
        failures = conn.execute("SELECT * FROM failures WHERE execution_id = %s", (arn,)).fetchall()
    visited = {(v.name, v.asset) for v in state_visits(cloud.history(arn))}
    return {
        "status": desc["status"],
        "decisions": {d["asset"]: d for d in decisions},
        "failures": {f["asset"]: f for f in failures},
        "visited": visited,
    }


@pytest.mark.parametrize(("example", "minutes"), [("btcusd-5m-stale.json", 51), ("btcusd-5m-just-stale.json", 16)])
def test_5m_bars_older_than_the_limit_are_held(cloud: LocalCloud, example: str, minutes: int) -> None:
    result = run(cloud, load_scenario(EXAMPLES / example))
    assert result["status"] == "SUCCEEDED" and not result["failures"]
    d = result["decisions"]["BTCUSD"]
    assert (d["timeframe"], d["action"], d["confidence"], d["stale"]) == ("5m", "HOLD", 1.0, True)
    assert d["data_age_seconds"] == minutes * 60 and d["staleness_threshold_seconds"] == 15 * 60
    assert d["bar_time"] == LAST_5M_BAR and d["model"] == "staleness_gate"
    assert "stale" in d["reason"]
    assert (d["source"]["provider"], d["source"]["dataset"]) == ("scenario", f"scenario:{example}")
    assert d["source"]["simulated_clock"] is True  # aged against the cycle's as_of, not the wall clock
    assert ("Detect regime", "BTCUSD") not in result["visited"]  # stale data never reaches a model


def test_5m_bars_inside_the_limit_are_decided_by_the_endpoint(cloud: LocalCloud) -> None:
    result = run(cloud, load_scenario(EXAMPLES / "btcusd-5m-fresh.json"))
    assert result["status"] == "SUCCEEDED" and not result["failures"]
    d = result["decisions"]["BTCUSD"]
    assert (d["timeframe"], d["stale"], d["model"]) == ("5m", False, "inference_ensemble")
    assert d["data_age_seconds"] == 14 * 60 and d["staleness_threshold_seconds"] == 15 * 60
    assert d["bar_time"] == LAST_5M_BAR and d["source"]["provider"] == "scenario"
    assert {("Detect regime", "BTCUSD"), ("Infer decision", "BTCUSD")} <= result["visited"]


def test_daily_csv_directory_decides_each_asset_without_an_age_limit(cloud: LocalCloud) -> None:
    scenario = load_scenario(EXAMPLES / "daily")
    assert scenario.as_of is None  # CSV carries no as_of: `ffe run` takes it from --as-of
    result = run(cloud, scenario, as_of=DAILY_AS_OF)
    assert result["status"] == "SUCCEEDED" and not result["failures"]
    assert set(result["decisions"]) == {"BTCUSD", "ETHUSD"}
    for asset, d in result["decisions"].items():
        assert (d["timeframe"], d["stale"], d["model"]) == ("1d", False, "inference_ensemble")
        assert d["data_age_seconds"] == 300 and d["staleness_threshold_seconds"] is None
        assert d["bar_time"] == datetime(2019, 6, 14, tzinfo=UTC)
        assert d["source"]["dataset"] == f"scenario:{asset}.csv"


def test_malformed_bars_fail_their_asset_alone(cloud: LocalCloud, tmp_path: Path) -> None:
    for name in ("BTCUSD.csv", "ETHUSD.csv"):
        lines = (EXAMPLES / "daily" / name).read_text().splitlines()
        if name == "ETHUSD.csv":  # the last bar's close turns negative: well-formed, but not a bar
            cells = lines[-1].split(",")
            cells[6] = "-263.69"
            lines[-1] = ",".join(cells)
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    result = run(cloud, load_scenario(tmp_path), as_of=DAILY_AS_OF)
    assert result["status"] == "SUCCEEDED"
    assert set(result["decisions"]) == {"BTCUSD"} and result["decisions"]["BTCUSD"]["stale"] is False
    failure = result["failures"]["ETHUSD"]
    assert failure["error_class"] == "InvalidInputError" and "close must be positive" in failure["message"]
    assert ("Detect regime", "ETHUSD") not in result["visited"]


def test_bars_that_had_not_closed_by_as_of_are_left_out(cloud: LocalCloud) -> None:
    # as_of 11:58: the 11:55 bar is still forming, so the last bar the cycle sees is the 11:50 one, closed 3 min ago
    scenario = load_scenario(EXAMPLES / "btcusd-5m-fresh.json")
    result = run(cloud, scenario, as_of=datetime(2020, 1, 15, 11, 58, tzinfo=UTC))
    d = result["decisions"]["BTCUSD"]
    assert d["bar_time"] == datetime(2020, 1, 15, 11, 50, tzinfo=UTC) and d["data_age_seconds"] == 180
    assert d["stale"] is False
