"""Data that must never count as fresh, through the real state machine (moto), real handlers and real Postgres.

The replay provider is wrapped to return the shapes of issue 12 §3: a forming bar, a gap of a year, a series
too short for the champion's regime path. The gate holds each before any model runs, and the record says
which rule and its numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ffe.adapters.models import load_bundle
from ffe.adapters.replay import ReplayProvider
from ffe.domain.features import FeatureParams
from ffe.local.aws import LocalCloud
from ffe.local.history import state_visits
from ffe.local.runner import DEFAULT_AS_OF
from tests.conftest import ROOT

REAL_FETCH = ReplayProvider.fetch


@pytest.fixture(scope="module")
def cloud(postgres: str) -> Iterator[LocalCloud]:
    with LocalCloud(ROOT, postgres) as deployed:
        yield deployed


def run(cloud: LocalCloud, assets: list[str]) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str]]]:
    """One 1h cycle at DEFAULT_AS_OF: the decisions by asset, and the (state, asset) pairs visited."""
    event = cloud.scheduled_event("1h", DEFAULT_AS_OF)
    arn = cloud.start_execution({**cloud.schedules["1h"].input_for(event), "assets": assets})
    assert cloud.wait(arn, timeout_s=120)["status"] == "SUCCEEDED"
    with psycopg.connect(cloud.database_url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM decisions WHERE execution_id = %s", (arn,)).fetchall()
    return {r["asset"]: r for r in rows}, {(v.name, v.asset) for v in state_visits(cloud.history(arn))}


def serve(monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]) -> None:
    """Replay, with the series of the assets in ``change`` rewritten by their function."""

    def fetch(self, asset, timeframe, as_of, lookback, asset_class=None):
        series = REAL_FETCH(self, asset, timeframe, as_of, lookback)
        return replace(series, bars=change[asset](list(series.bars))) if asset in change else series

    monkeypatch.setattr(ReplayProvider, "fetch", fetch)


def test_gappy_and_short_series_are_held_before_any_model(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    need = FeatureParams().warmup - 1 + load_bundle("bundled").meta.roll_bars
    # Given BTCUSD as 119 bars from a year earlier plus the fresh bar, and ETHUSD cut to 51 bars
    year = timedelta(days=365)
    serve(
        monkeypatch,
        {
            "BTCUSD": lambda bars: [replace(b, time=b.time - year) for b in bars[:-1]] + bars[-1:],
            "ETHUSD": lambda bars: bars[-51:],
        },
    )
    # When the cycle runs
    decisions, visited = run(cloud, ["BTCUSD", "ETHUSD"])
    # Then both are HOLDs of the gate, naming the rule and its numbers, and no model saw them
    btc, eth = decisions["BTCUSD"], decisions["ETHUSD"]
    for d in (btc, eth):
        assert (d["action"], d["confidence"], d["stale"], d["model"]) == ("HOLD", 1.0, True, "staleness_gate")
        assert ("Hold on stale data", d["asset"]) in visited
        assert ("Detect regime", d["asset"]) not in visited and ("Infer decision", d["asset"]) not in visited
    assert btc["reason"].startswith("gappy_data: ") and "tolerance 3 (crypto trades around the clock)" in btc["reason"]
    assert btc["data_age_seconds"] == 60.0  # the last bar is fresh: the gap, not the age, holds it
    assert eth["reason"].startswith(f"insufficient_history: only 51 bars, at least {need} needed (the regime path")


def test_a_forming_bar_is_dropped_and_the_decision_says_so(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the provider also returns the bar that opened at 12:00 (as_of is 12:01): still forming
    serve(monkeypatch, {"BTCUSD": lambda bars: [*bars, replace(bars[-1], time=bars[-1].time + timedelta(hours=1))]})
    # When the cycle runs
    decisions, visited = run(cloud, ["BTCUSD"])
    # Then the decision is made on the completed bars (the last closed at 12:00) and records the drop
    d = decisions["BTCUSD"]
    assert d["source"]["forming_bars_dropped"] == 1
    assert d["bar_time"] == DEFAULT_AS_OF.replace(minute=0) - timedelta(hours=1) and d["data_age_seconds"] == 60.0
    assert d["model"] == "inference_ensemble" and ("Infer decision", "BTCUSD") in visited


def test_the_deployed_gate_reads_the_stage_allowance_and_the_champion_detect_regime_reads(cloud: LocalCloud) -> None:
    gate, regime = cloud.function_environment("check-staleness"), cloud.function_environment("detect-regime")
    assert str(gate["DAILY_MAX_MISSING_SESSIONS"]) == "3"  # moto keeps the Number parameter as a number
    assert gate["MODEL_STORE"] == regime["MODEL_STORE"]
