"""The state machine, bounded and non-overlapping, through the real definition in moto: a second execution of a
stage and timeframe stops as SKIPPED, an interrupted cycle is closed by the next one, an asset whose record
neither the store nor the dead-letter queue takes never fails the Map, and the Map's result stays small."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from ffe.adapters.store import PostgresDecisionStore
from ffe.domain.errors import TransientError
from ffe.local.aws import LocalCloud
from ffe.local.history import state_visits
from ffe.local.runner import DEFAULT_AS_OF
from tests.conftest import ROOT
from tests.database import own_database


@pytest.fixture(scope="module")
def cycles_db(postgres: str) -> str:
    """A database of its own: which cycle runs must not depend on other tests' cycles."""
    return own_database(postgres, "cycles_e2e")


@pytest.fixture
def cloud(cycles_db: str) -> Iterator[LocalCloud]:
    with LocalCloud(ROOT, cycles_db) as deployed:
        yield deployed


def cycle_input(cloud: LocalCloud, hours: int, assets: list[str]) -> dict[str, Any]:
    as_of = DEFAULT_AS_OF + timedelta(hours=hours)
    return {**cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", as_of)), "assets": assets}


def cycle_row(url: str, cycle_id: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT status, reason FROM cycles WHERE id = %s", (cycle_id,)).fetchone()  # type: ignore[return-value]


def test_a_second_execution_of_the_same_timeframe_is_skipped_while_the_first_runs(cloud, cycles_db) -> None:
    # Given two executions of the hourly cycle started back to back (the API and the schedule, say)
    first, second = cycle_input(cloud, 0, ["BTCUSD", "ETHUSD"]), cycle_input(cloud, 0, ["BTCUSD", "ETHUSD"])
    arns = [cloud.start_execution(first), cloud.start_execution(second)]
    # When both have finished
    assert [cloud.wait(arn, timeout_s=180)["status"] for arn in arns] == ["SUCCEEDED", "SUCCEEDED"]
    # Then one of them decided and the other stopped at "Cycle skipped", recorded with the reason
    rows = {c["cycle_id"]: cycle_row(cycles_db, c["cycle_id"]) for c in (first, second)}
    assert sorted(status for status, _ in rows.values()) == ["SKIPPED", "SUCCEEDED"], rows
    skipped_id = next(cid for cid, (status, _) in rows.items() if status == "SKIPPED")
    ran_id = next(cid for cid in rows if cid != skipped_id)
    assert (
        f"cycle {ran_id} of stage dev, timeframe 1h" in rows[skipped_id][1]
        and "is still running" in rows[skipped_id][1]
    )
    skipped_arn = arns[0] if first["cycle_id"] == skipped_id else arns[1]
    names = [v.name for v in state_visits(cloud.history(skipped_arn))]
    assert names[-1] == "Cycle skipped" and "Decide each asset" not in names
    with psycopg.connect(cycles_db) as conn:
        decided = conn.execute(
            "SELECT DISTINCT cycle_id FROM decisions WHERE cycle_id IN (%s, %s)", (ran_id, skipped_id)
        )
        assert [r[0] for r in decided.fetchall()] == [ran_id]


def test_a_cycle_an_interrupted_run_left_running_is_closed_aborted_by_the_next(cloud, cycles_db) -> None:
    # Given a cycle an earlier `ffe run` opened and never closed (Ctrl-C): its execution is gone with that process
    left = "interrupted-" + cycle_input(cloud, 1, ["BTCUSD"])["cycle_id"]
    with psycopg.connect(cycles_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO cycles (id, execution_arn, stage, timeframe, as_of, assets, status) VALUES (%s, %s, 'dev',"
            " '1h', %s, '[\"BTCUSD\"]', 'RUNNING')",
            (left, f"{cloud.state_machine_arn.replace(':stateMachine:', ':execution:')}:gone", DEFAULT_AS_OF),
        )
    # When the next hourly cycle starts
    nxt = cycle_input(cloud, 1, ["BTCUSD"])
    assert cloud.wait(cloud.start_execution(nxt), timeout_s=120)["status"] == "SUCCEEDED"
    # Then it ran, and the interrupted one is ABORTED with the reason
    assert cycle_row(cycles_db, nxt["cycle_id"])[0] == "SUCCEEDED"
    status, reason = cycle_row(cycles_db, left)
    assert status == "ABORTED" and reason.startswith(f"closed when cycle {nxt['cycle_id']} started: its execution")


def test_store_and_queue_both_down_for_one_asset_never_fail_the_map(cloud, cycles_db, monkeypatch) -> None:
    from moto.sqs.models import SQSBackend

    real_record, real_send = PostgresDecisionStore.record_decision, SQSBackend.send_message

    def store_down_for_btc(self, record):
        if record.asset == "BTCUSD":
            raise TransientError("cannot reach the decision store: connection refused")
        return real_record(self, record)

    def queue_down_for_btc(self, queue_name, message_body, *args, **kwargs):
        if '"BTCUSD"' in message_body:
            from moto.sqs.exceptions import QueueDoesNotExist

            raise QueueDoesNotExist()
        return real_send(self, queue_name, message_body, *args, **kwargs)

    # Given the store and the dead-letter queue both refuse BTCUSD's record on every attempt
    monkeypatch.setattr(PostgresDecisionStore, "record_decision", store_down_for_btc)
    monkeypatch.setattr(SQSBackend, "send_message", queue_down_for_btc)
    cycle = cycle_input(cloud, 2, ["BTCUSD", "ETHUSD"])
    # When the cycle runs
    arn = cloud.start_execution(cycle)
    description = cloud.wait(arn, timeout_s=180)
    # Then the execution succeeds, ETHUSD is recorded, and BTCUSD's record is named as lost in the cycle's reason
    assert description["status"] == "SUCCEEDED", description
    outcomes = {o["asset"]: o["outcome"] for o in json.loads(description["output"])["outcomes"]}
    assert outcomes == {"BTCUSD": "lost", "ETHUSD": "recorded"}
    visits = state_visits(cloud.history(arn))
    assert any(v.name == "Record kept only in the execution history" and v.asset == "BTCUSD" for v in visits)
    status, reason = cycle_row(cycles_db, cycle["cycle_id"])
    assert status == "SUCCEEDED" and reason.startswith("1 record(s) neither the decision store nor the dead-letter")
    assert "(BTCUSD)" in reason and arn in reason
    with psycopg.connect(cycles_db) as conn:
        stored = conn.execute("SELECT asset FROM decisions WHERE cycle_id = %s", (cycle["cycle_id"],)).fetchall()
    assert stored == [("ETHUSD",)]


def test_the_map_keeps_only_each_asset_outcome_in_the_execution_state(cloud) -> None:
    assets = ["BTCUSD", "ETHUSD", "EURUSD", "GBPUSD", "XAUUSD"]  # fresh, fresh, stale, stale, unknown
    description = cloud.wait(cloud.start_execution(cycle_input(cloud, 3, assets)), timeout_s=180)
    output = json.loads(description["output"])
    assert sorted(o["asset"] for o in output["outcomes"]) == sorted(assets)
    assert all(set(o) <= {"asset", "outcome", "error", "dead_letter_error"} for o in output["outcomes"])
    assert len(description["output"]) < 150 * len(assets) + 1000  # no bars, no decisions: a few dozen bytes each


def test_tasks_run_the_versions_their_deploy_published_and_a_redeploy_moves_only_what_changed(cloud) -> None:
    def invoked(arn: str) -> set[str]:
        return {
            e["lambdaFunctionScheduledEventDetails"]["resource"].split(":function:")[1]
            for e in cloud.history(arn)
            if e["type"] == "LambdaFunctionScheduled"
        }

    # Given an execution of the deployed stack: every task names a published version, never $LATEST
    first = cloud.start_execution(cycle_input(cloud, 4, ["BTCUSD"]))
    cloud.wait(first, timeout_s=120)
    before = invoked(first)
    assert "ffe-dev-fetch-market-data:1" in before and all(name.rsplit(":", 1)[1].isdigit() for name in before)
    # When FetchMarketData is redeployed with another setting (a new version), and another cycle runs
    cloud.configure_function("fetch-market-data", LOOKBACK_BARS="120")
    second = cloud.start_execution(cycle_input(cloud, 5, ["BTCUSD"]))
    cloud.wait(second, timeout_s=120)
    after = invoked(second)
    # Then that cycle runs the new version of FetchMarketData and the same versions of everything else
    assert "ffe-dev-fetch-market-data:2" in after and "ffe-dev-fetch-market-data:1" not in after
    assert after - {"ffe-dev-fetch-market-data:2"} <= before  # (the second cycle may place no order)
