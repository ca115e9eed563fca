"""A cycle of a 1,000-asset universe file through the real Distributed Map: template deployed into moto (with the
offline runtime's Distributed Map, docs/offline-runtime.md), the real handlers, real PostgreSQL, the inference
server on loopback. Synthetic assets (ffe.local.synthetic_universe): their class comes from the universe file, their
bars from a scenario."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg.rows import dict_row

from ffe.adapters.scenario import parse_scenario
from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import MAX_BATCH_ASSETS
from ffe.dlq import parked
from ffe.domain.errors import TransientError
from ffe.local.aws import LocalCloud
from ffe.local.synthetic_universe import scenario_csv, symbol, universe_csv
from ffe.universe_file import parse_universe
from tests.conftest import ROOT

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)  # a minute after the 11:00 bar closed
ASSETS = 1000
NO_BARS = ("SYN0007", "SYN0500", "SYN0999")  # in the universe, not in the scenario: each fails alone at fetch
DISABLED = "SYN1001"  # in the file, disabled: never decided


@pytest.fixture(scope="module")
def outcome(postgres: str) -> dict[str, Any]:
    """One 1,000-asset cycle, run once for the tests that read it; the local stack is gone before they run (the
    other tests here start stacks of their own, and two at once would share moto's state)."""
    universe = parse_universe(universe_csv(ASSETS, disabled=[DISABLED]), "universe.csv")
    scenario = parse_scenario({"bars.csv": scenario_csv(ASSETS, AS_OF, without=NO_BARS)}, name="synthetic-universe")
    with LocalCloud(ROOT, postgres) as cloud:
        cloud.put_universe("1h", universe)
        cloud.serve_scenario(scenario.files)
        cycle = {"cycle_id": "universe-1000", "as_of": AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ"), "timeframe": "1h"}
        arn = cloud.start_execution(cycle)
        desc = cloud.wait(arn, timeout_s=1800)
        history = cloud.history(arn)
        s3 = boto3.client("s3")
        bucket = cloud.function_environment("record-decision")["CYCLES_BUCKET"]
        keys = [
            o["Key"]
            for prefix in ("cycles/1h/universe-1000/", "map-runs/")
            for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        ]
        files = {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        decisions = conn.execute("SELECT * FROM decisions WHERE execution_id = %s", (arn,)).fetchall()
        failures = conn.execute("SELECT * FROM failures WHERE cycle_id = 'universe-1000'").fetchall()
        cycle_row = conn.execute("SELECT * FROM cycles WHERE id = 'universe-1000'").fetchone()
    return {
        "desc": desc,
        "history": history,
        "files": files,
        "decisions": decisions,
        "failures": failures,
        "cycle": cycle_row,
    }


def test_every_enabled_asset_is_decided_or_failed_exactly_once(outcome: dict[str, Any]) -> None:
    assert outcome["desc"]["status"] == "SUCCEEDED", outcome["desc"].get("cause")
    decided = [d["asset"] for d in outcome["decisions"]]
    failed = [f["asset"] for f in outcome["failures"]]
    assert len(decided) == len(set(decided)) == ASSETS - len(NO_BARS)
    assert sorted(failed) == sorted(NO_BARS)
    assert set(decided) | set(failed) == {symbol(i) for i in range(ASSETS)}  # the disabled one is not there
    for failure in outcome["failures"]:  # each fails alone, at fetch, with its reason
        assert failure["error_class"] == "InvalidInputError" and "has no bars for" in failure["message"]
    fresh = [d for d in outcome["decisions"] if not d["stale"]]
    assert len(fresh) == len(decided)  # a minute old: every series was fresh
    assert {d["model"] for d in fresh} == {"inference_ensemble"}  # the endpoint decided each (RL voter)


def test_the_cycle_ran_on_the_distributed_map_and_closed(outcome: dict[str, Any]) -> None:
    cycle = outcome["cycle"]
    assert cycle["status"] == "SUCCEEDED" and cycle["reason"] == ""
    assert len(cycle["assets"]) == ASSETS
    names = [e.get("stateEnteredEventDetails", {}).get("name") for e in outcome["history"]]
    assert "Decide the universe" in names and "Close the distributed cycle" in names
    assert "Decide each asset" not in names
    # the children's events are theirs: the parent's history stays small whatever the universe's size
    assert len(outcome["history"]) < 60
    assert "Fetch market data" not in names and "Decide the batch" not in names


def test_the_snapshot_and_the_map_runs_results_are_in_the_cycles_bucket(outcome: dict[str, Any]) -> None:
    files = outcome["files"]
    snapshot = json.loads(files["cycles/1h/universe-1000/universe.json"])
    assert [item["asset"] for item in snapshot] == [symbol(i) for i in range(ASSETS)]
    assert {item["asset_class"] for item in snapshot} == {"crypto"}
    [manifest_key] = [k for k in files if k.endswith("/manifest.json")]
    manifest = json.loads(files[manifest_key])
    assert manifest["ResultFiles"]["FAILED"] == []
    children = [c for f in manifest["ResultFiles"]["SUCCEEDED"] for c in json.loads(files[f["Key"]])]
    assert len(children) == math.ceil(ASSETS / MAX_BATCH_ASSETS)  # 20 assets per child execution
    batches = [json.loads(child["Input"]) for child in children]
    assert all(len(b["Items"]) <= MAX_BATCH_ASSETS for b in batches)
    assert sorted(item["asset"] for b in batches for item in b["Items"]) == [symbol(i) for i in range(ASSETS)]
    assert {b["BatchInput"]["cycle_id"] for b in batches} == {"universe-1000"}
    outcomes = [o for child in children for o in json.loads(child["Output"])["outcomes"]]
    assert len(outcomes) == ASSETS and {o["outcome"] for o in outcomes} == {"recorded"}


def test_a_batch_the_store_refuses_is_parked_whole_and_replayed_exactly_once(
    postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = PostgresDecisionStore.record_batch

    def refuses_syn0003s_batch(self: PostgresDecisionStore, records: Any) -> Any:
        if any(record.asset == "SYN0003" for record, _ in records):
            raise TransientError("cannot reach the decision store: connection refused")
        return real(self, records)

    size, cycle_id = 45, "universe-parked"
    universe = parse_universe(universe_csv(size), "universe.csv")
    scenario = parse_scenario({"bars.csv": scenario_csv(size, AS_OF)}, name="synthetic-universe")
    queue = tmp_path / "dead-letters.json"
    # Given the store refuses the first batch (SYN0000..SYN0019) on every attempt
    monkeypatch.setattr(PostgresDecisionStore, "record_batch", refuses_syn0003s_batch)
    with LocalCloud(ROOT, postgres, dlq_file=queue) as cloud:
        cloud.put_universe("1h", universe)
        cloud.serve_scenario(scenario.files)
        arn = cloud.start_execution(
            {"cycle_id": cycle_id, "as_of": AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ"), "timeframe": "1h"}
        )
        # Then the cycle carries on and succeeds, the batch waits in the queue as one record
        assert cloud.wait(arn, timeout_s=600)["status"] == "SUCCEEDED"
        [message] = cloud.dead_letters()
    body = json.loads(message["Body"])
    assert body["kind"] == "batch" and [r["asset"] for r in body["records"]] == [symbol(i) for i in range(20)]
    [listed] = parked([message])  # what `ffe dlq list` shows of it
    assert (listed.kind, listed.cycle_id, listed.asset) == ("batch", cycle_id, "20 assets: SYN0000 .. SYN0019")

    def stored() -> list[str]:
        with psycopg.connect(postgres) as conn:
            rows = conn.execute("SELECT asset FROM decisions WHERE cycle_id = %s", (cycle_id,)).fetchall()
        return sorted(row[0] for row in rows)

    assert stored() == [symbol(i) for i in range(20, size)]  # nothing of the refused batch, all of the others
    # When the store is back and the queue is replayed (twice: replay is idempotent)
    monkeypatch.setattr(PostgresDecisionStore, "record_batch", real)
    with LocalCloud(ROOT, postgres, dlq_file=queue) as cloud:
        report, again = cloud.replay_dead_letters(), cloud.replay_dead_letters()
        assert cloud.dead_letters() == []
    # Then every asset of the cycle is stored exactly once
    assert (report.replayed, report.failed, again.replayed) == (1, [], 0)
    assert stored() == [symbol(i) for i in range(size)]


def test_the_llm_voter_votes_on_the_first_assets_of_the_universe_within_its_budget(postgres: str) -> None:
    size, budget, cycle_id = 25, 5, "universe-llm-budget"
    universe = parse_universe(universe_csv(size), "universe.csv")
    scenario = parse_scenario({"bars.csv": scenario_csv(size, AS_OF)}, name="synthetic-universe")
    with LocalCloud(ROOT, postgres) as cloud:
        cloud.put_universe("1h", universe)
        cloud.serve_scenario(scenario.files)
        cloud.configure_function("decide-batch", INFERENCE_LLM_ASSETS_PER_CYCLE=str(budget))
        arn = cloud.start_execution(
            {"cycle_id": cycle_id, "as_of": AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ"), "timeframe": "1h"}
        )
        assert cloud.wait(arn, timeout_s=600)["status"] == "SUCCEEDED"
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT asset, reasons FROM decisions WHERE cycle_id = %s", (cycle_id,)).fetchall()
    llm = {row["asset"]: next(v for v in row["reasons"]["voters"] if v["voter"] == "llm") for row in rows}
    assert len(llm) == size
    asked = {asset for asset, vote in llm.items() if vote["status"] != "skipped"}
    # the first 5 of the file were asked (no Ollama offline: the voter says it is unreachable); the rest skipped
    assert asked == {symbol(i) for i in range(budget)}
    assert all(llm[symbol(i)]["status"] == "unavailable" for i in range(budget))
