"""The whole cycle: template deployed into moto, the real ASL executed, real handlers, real Postgres."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ffe.adapters.replay import ReplayProvider
from ffe.adapters.store import PostgresDecisionStore
from ffe.domain.errors import TransientError
from ffe.local.aws import LocalCloud
from ffe.local.history import StateVisit, state_visits
from ffe.local.runner import DEFAULT_AS_OF
from tests.conftest import ROOT

NOWHERE = "http://127.0.0.1:9"  # a shell's endpoint override (LocalStack's, say) that answers nothing


@pytest.fixture(scope="module")
def cloud(postgres: str) -> Iterator[LocalCloud]:
    """The local stack, deployed and run with AWS_ENDPOINT_URL and a per-service override pointing nowhere, as a
    user's shell set up for LocalStack has them: every test here also shows the offline runtime ignores them."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", NOWHERE)
        env.setenv("AWS_ENDPOINT_URL_STEPFUNCTIONS", NOWHERE)
        with LocalCloud(ROOT, postgres) as deployed:
            yield deployed


def run(cloud: LocalCloud, cycle_input: dict[str, Any] | None = None, **change: Any) -> dict[str, Any]:
    """Fire the 1h schedule at DEFAULT_AS_OF (or start with ``cycle_input``); wait; collect everything."""
    event = cloud.scheduled_event("1h", DEFAULT_AS_OF)
    body = cycle_input if cycle_input is not None else {**cloud.schedules["1h"].input_for(event), **change}
    arn = cloud.start_execution(body)
    desc = cloud.wait(arn, timeout_s=120)
    with psycopg.connect(cloud.database_url, row_factory=dict_row) as conn:
        decisions = conn.execute("SELECT * FROM decisions WHERE execution_id = %s", (arn,)).fetchall()
        failures = conn.execute("SELECT * FROM failures WHERE execution_id = %s", (arn,)).fetchall()
    return {
        "status": desc["status"],
        "error": desc.get("error"),
        "input": body,
        "decisions": {d["asset"]: d for d in decisions},
        "failures": {f["asset"]: f for f in failures},
        "visits": state_visits(cloud.history(arn)),
    }


def visits(result: dict[str, Any], state: str, asset: str) -> list[StateVisit]:
    return [v for v in result["visits"] if v.name == state and v.asset == asset]


def test_a_shell_endpoint_override_leaves_the_local_stack_alone(cloud: LocalCloud) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == NOWHERE  # still set while the stack runs
    result = run(cloud)
    assert result["status"] == "SUCCEEDED" and set(result["decisions"]) == {"BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"}


def test_schedule_event_becomes_the_cycle_input(cloud: LocalCloud) -> None:
    event = cloud.scheduled_event("1h", DEFAULT_AS_OF)
    cycle = cloud.schedules["1h"].input_for(event)
    # no assets: "Open the cycle" decides the stage's universe file for 1h, or AssetUniverseJson without one
    assert cycle == {"cycle_id": event["id"], "as_of": "2019-06-15T12:01:00Z", "timeframe": "1h"}
    assert cloud.schedules["1h"].expression == "cron(1 * * * ? *)"


def test_cycle_decides_fresh_assets_and_holds_stale_ones(cloud: LocalCloud) -> None:
    result = run(cloud)
    assert result["status"] == "SUCCEEDED"
    decisions = result["decisions"]
    assert set(decisions) == {"BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"} and not result["failures"]
    for fresh in ("BTCUSD", "ETHUSD"):
        d = decisions[fresh]
        assert d["stale"] is False and d["model"] == "inference_ensemble" and d["data_age_seconds"] == 60.0
        assert set(d["reasons"]["signals"]) == {"trend_following", "mean_reversion", "breakout"}
        # the inference server's RL voter (the shipped champion) decided; no Ollama here, so the LLM said so
        rl, llm = d["reasons"]["voters"]
        assert (rl["voter"], rl["status"], rl["model_version"]) == ("rl", "voted", d["model_version"])
        assert (llm["voter"], llm["status"]) == ("llm", "unavailable") and "unreachable" in llm["reasoning"]
        assert "[rule rl_only_llm_unavailable; " in d["reason"]
        weights = d["reasons"]["weights"]
        assert set(weights) == {"trend_following", "mean_reversion", "breakout", "flat"}  # jsonb: no key order
        assert abs(sum(weights.values()) - 1.0) <= 1e-3
        assert d["regime"] in d["reasons"]["regime_probabilities"] and d["model_version"].startswith("ffe-")
        assert visits(result, "Detect regime", fresh)
        if d["action"] != "HOLD":  # every order-bound decision went through the risk gate and carries its size
            assert d["reasons"]["risk"]["approved"] is True and d["size"] > 0
            assert visits(result, "Gate risk", fresh)
        assert visits(result, "Infer decision", fresh)
    for stale in ("EURUSD", "GBPUSD"):
        d = decisions[stale]
        assert (d["action"], d["confidence"], d["stale"], d["model"]) == ("HOLD", 1.0, True, "staleness_gate")
        assert d["data_age_seconds"] > 7200 and d["staleness_threshold_seconds"] == 7200
        assert d["reason"].startswith("stale data: last bar closed")
        assert visits(result, "Hold on stale data", stale) and not visits(result, "Infer decision", stale)
        assert not visits(result, "Detect regime", stale)  # stale data never reaches a model
    assert decisions["GBPUSD"]["source"]["synthetic"] is True
    assert decisions["BTCUSD"]["cycle_id"] == result["input"]["cycle_id"]


def test_one_asset_failing_permanently_never_stops_the_others(cloud: LocalCloud) -> None:
    result = run(cloud, assets=["BTCUSD", "XAUUSD", "ETHUSD"])
    assert result["status"] == "SUCCEEDED"
    assert set(result["decisions"]) == {"BTCUSD", "ETHUSD"}
    failure = result["failures"]["XAUUSD"]
    assert failure["error_class"] == "InvalidInputError" and "unknown asset 'XAUUSD'" in failure["message"]
    fetch = visits(result, "Fetch market data", "XAUUSD")
    assert fetch[0].status == "Failed" and fetch[0].attempts == 1  # permanent: not retried


def test_bad_bars_fail_their_asset_alone_and_are_never_decided_on(cloud, monkeypatch) -> None:
    real_fetch = ReplayProvider.fetch

    def nan_for_eth(self, asset, timeframe, as_of, lookback, asset_class=None):
        series = real_fetch(self, asset, timeframe, as_of, lookback)
        if asset != "ETHUSD":
            return series
        bars = list(series.bars)
        bars[-1] = replace(bars[-1], close=float("nan"))
        return replace(series, bars=bars)

    monkeypatch.setattr(ReplayProvider, "fetch", nan_for_eth)
    result = run(cloud, assets=["BTCUSD", "ETHUSD"])
    assert set(result["decisions"]) == {"BTCUSD"}
    assert "close is not a finite number" in result["failures"]["ETHUSD"]["message"]


def test_transient_fetch_error_is_retried_then_decided(cloud, monkeypatch, retry_waits) -> None:
    real_fetch, calls = ReplayProvider.fetch, []

    def flaky(self, asset, timeframe, as_of, lookback, asset_class=None):
        calls.append(asset)
        if asset == "BTCUSD" and calls.count("BTCUSD") == 1:
            raise TransientError("provider timed out")
        return real_fetch(self, asset, timeframe, as_of, lookback)

    monkeypatch.setattr(ReplayProvider, "fetch", flaky)
    result = run(cloud, assets=["BTCUSD"])
    assert "BTCUSD" in result["decisions"] and not result["failures"]
    fetch = visits(result, "Fetch market data", "BTCUSD")[0]
    assert fetch.attempts == 2 and fetch.status == "Succeeded" and "TransientError" in fetch.error
    # one backoff before the second attempt: the ASL's 1 s interval under full jitter
    assert len(retry_waits) == 1 and 0 <= retry_waits[0] <= 1


def test_retried_record_task_writes_exactly_one_row(cloud, monkeypatch) -> None:
    # Given the first write commits but its response is lost (a timeout after COMMIT)
    real_record, attempts = PostgresDecisionStore.record_decision, []

    def lost_response(self, record):
        stored = real_record(self, record)
        attempts.append(stored)
        if len(attempts) == 1:
            raise TransientError("connection reset after commit")
        return stored

    monkeypatch.setattr(PostgresDecisionStore, "record_decision", lost_response)
    result = run(cloud, assets=["BTCUSD"])
    # Then the state machine retried, the retry found the first row, and exactly one row exists
    assert [a.created for a in attempts] == [True, False] and attempts[0].id == attempts[1].id
    assert visits(result, "Record decision", "BTCUSD")[0].attempts == 2
    with psycopg.connect(cloud.database_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM decisions WHERE cycle_id = %s AND asset = 'BTCUSD'", (result["input"]["cycle_id"],)
        ).fetchone()
    assert rows == (1,)


def test_unknown_timeframe_fails_each_asset_clearly(cloud: LocalCloud) -> None:
    result = run(cloud, timeframe="2h", assets=["BTCUSD", "EURUSD"])
    assert result["status"] == "SUCCEEDED" and not result["decisions"]
    for asset in ("BTCUSD", "EURUSD"):
        failure = result["failures"][asset]
        assert failure["error_class"] == "InvalidInputError" and "timeframe" in failure["message"]


def test_malformed_schedule_event_is_recorded_and_fails_the_cycle_cleanly(cloud: LocalCloud) -> None:
    # no assets is the stage's universe; assets that are not a list is a malformed input
    bad = {"cycle_id": "malformed-event-1", "as_of": "2019-06-15T12:01:00Z", "timeframe": "1h", "assets": "BTCUSD"}
    result = run(cloud, cycle_input=bad)
    assert result["status"] == "FAILED" and result["error"] == "CycleFailed"
    failure = result["failures"][None]
    assert (
        failure["error_class"] == "InvalidInputError" and "assets: Input should be a valid list" in failure["message"]
    )
    assert failure["cycle_id"] == "malformed-event-1" and not result["decisions"]


def test_each_invocation_logs_to_its_cloudwatch_log_group(cloud: LocalCloud) -> None:
    import boto3

    run(cloud, assets=["BTCUSD"])
    logs = boto3.client("logs", region_name="us-east-1")
    group = "/aws/lambda/ffe-dev-check-staleness"
    lines = [
        json.loads(event["message"])
        for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]
        for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
        if event["message"].startswith("{")
    ]
    assert any(line.get("message") == "staleness checked" and line.get("asset") == "BTCUSD" for line in lines)
    assert any("data_staleness_seconds" in line for line in lines)  # the EMF metric document
