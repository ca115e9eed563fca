"""The experiment lifecycle and the champion over the API: every route's success, 404, 409 and bad input, and
the caller's identity recorded on each transition."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ffe import containers
from ffe.adapters.models import bundled_version
from ffe.adapters.store import PostgresDecisionStore
from ffe.api import app as api_app
from ffe.contracts import ArmOutput, DataSource, DecisionRecord
from ffe.domain.models import Action, Timeframe
from functions.api.handler import lambda_handler
from tests.api.conftest import ApiResponse, assert_problem, rest_event, to_response
from tests.conftest import FakeLambdaContext
from tests.database import own_database
from tests.fakes.evidence import returns, write_evidence

CHALLENGER = "ffe-challenger01"
OTHER = "ffe-challenger02"
ALICE = "arn:aws:iam::123456789012:user/alice"


@pytest.fixture(scope="module")
def experiments_db(postgres: str) -> str:
    return own_database(postgres, f"ffe_api_experiments_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def env(experiments_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The Api function over an empty experiment store and a model store holding two challengers."""
    for version in (CHALLENGER, OTHER):
        (tmp_path / version).mkdir()
        (tmp_path / version / "manifest.json").write_text(json.dumps({"version": version}))
    monkeypatch.setenv("DATABASE_URL", experiments_db)
    monkeypatch.setenv("MODEL_STORE", str(tmp_path))
    for name in ("DB_SECRET_ARN", "STATE_MACHINE_ARN", "BREAKER_TABLE", "BAR_CACHE_TABLE"):
        monkeypatch.delenv(name, raising=False)
    containers.reset()
    api_app.reset()
    yield experiments_db
    with psycopg.connect(experiments_db, autocommit=True) as conn:
        conn.execute("TRUNCATE experiment_transitions, experiments, model_champions")
    containers.reset()


def call(method: str, path: str, user: str | None = None, **kwargs: Any) -> ApiResponse:
    event = rest_event(method, path, **kwargs)
    if user is not None:
        event["requestContext"]["identity"]["userArn"] = user
    return to_response(lambda_handler(event, FakeLambdaContext()))


def create(body: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    response = call("POST", "/experiments", body={"treatment_version": CHALLENGER, **(body or {}), **fields})
    assert response.status == 201, response.text
    created: dict[str, Any] = response.json
    assert response.headers["location"] == f"/experiments/{created['id']}"
    return created


SPLIT_PLAN = [{"share": 0.5, "min_decisions": 0, "min_duration_s": 0}, {"share": 1.0}]


# --- create, list, get --------------------------------------------------------------------------------


def test_create_fills_the_defaults(env: str) -> None:
    created = create()
    assert created["id"].startswith("exp-") and len(created["id"]) == len("exp-20260101-abcdef")
    assert created["status"] == "draft" and created["mode"] == "shadow" and created["share"] == 0.0
    assert created["control_version"] == bundled_version()  # no champion set: the layer's bundle
    assert [s["share"] for s in created["plan"]] == [0.05, 0.25, 1.0]
    assert created["guardrails"] == {"latency_p95_ms": 200.0, "max_degradation": 0.3, "metric": "sharpe",
                                     "sustained_cycles": 3}  # fmt: skip
    assert created["assets"] is None and created["transitions"] == []


def test_create_takes_every_field(env: str) -> None:
    created = create(
        id="exp-custom",
        control_version=OTHER,
        mode="split",
        assets=["ETHUSD", "BTCUSD"],
        plan=SPLIT_PLAN,
        guardrails={"latency_p95_ms": 150, "max_degradation": 0.2, "metric": "pnl", "sustained_cycles": 2},
    )
    assert created["id"] == "exp-custom" and created["control_version"] == OTHER
    assert created["assets"] == ["BTCUSD", "ETHUSD"] and created["share"] == 0.5
    assert created["plan"][1] == {"share": 1.0, "min_decisions": 50, "min_duration_s": 21600.0}
    assert created["guardrails"]["metric"] == "pnl"


def test_the_guardrails_default_to_the_stages_settings(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERIMENT_LATENCY_P95_MS", "150")
    monkeypatch.setenv("EXPERIMENT_METRIC", "max_drawdown")
    containers.reset()
    guardrails = create()["guardrails"]
    assert guardrails["latency_p95_ms"] == 150.0 and guardrails["metric"] == "max_drawdown"


def test_the_control_defaults_to_the_champion_set_through_the_api(env: str) -> None:
    assert call("PUT", "/models/champion", body={"version": OTHER, "reason": "published", "force": True}).status == 200
    assert create()["control_version"] == OTHER


def test_list_and_filter_by_status(env: str) -> None:
    first, second = create(assets=["BTCUSD"])["id"], create(assets=["ETHUSD"])["id"]
    call("POST", f"/experiments/{second}/start")
    listed = call("GET", "/experiments").json["items"]
    assert [e["id"] for e in listed] == [first, second]
    running = call("GET", "/experiments", query={"status": "running"}).json["items"]
    assert [e["id"] for e in running] == [second]
    assert_problem(call("GET", "/experiments", query={"status": "sleeping"}), 400, "query.status")


def test_get_shows_the_transitions(env: str) -> None:
    experiment_id = create()["id"]
    call("POST", f"/experiments/{experiment_id}/start", body={"reason": "go"}, user=ALICE)
    shown = call("GET", f"/experiments/{experiment_id}").json
    assert shown["status"] == "running"
    (transition,) = shown["transitions"]
    assert transition["from_status"] == "draft" and transition["to_status"] == "running"
    assert transition["actor"] == ALICE and transition["reason"] == "go" and transition["trigger"] == "manual"


@pytest.mark.parametrize(
    "path", ["/experiments/exp-nope", "/experiments/exp-nope/start", "/experiments/exp-nope/advance"]
)
def test_an_unknown_experiment_is_a_404(env: str, path: str) -> None:
    method = "GET" if path.count("/") == 2 else "POST"
    assert_problem(call(method, path), 404, "exp-nope")


# --- the lifecycle ------------------------------------------------------------------------------------


def test_a_split_canary_runs_to_promotion_and_back(env: str) -> None:
    experiment_id = create(mode="split", plan=SPLIT_PLAN)["id"]
    assert call("POST", f"/experiments/{experiment_id}/start", user=ALICE).json["status"] == "running"
    advanced = call("POST", f"/experiments/{experiment_id}/advance", body={"reason": "looks fine"}).json
    assert advanced["step"] == 1 and advanced["share"] == 1.0
    promoted = call("POST", f"/experiments/{experiment_id}/promote", body={"reason": "better", "force": True}).json
    assert promoted["status"] == "promoted"  # forced: the bundled control has no evidence (tests below: the gate)
    champion = call("GET", "/models/champion").json
    assert champion["champion"]["version"] == CHALLENGER
    assert champion["champion"]["previous_version"] == bundled_version()
    assert champion["champion"]["experiment_id"] == experiment_id
    rolled = call("POST", f"/experiments/{experiment_id}/rollback", body={"reason": "worse live"}).json
    assert rolled["status"] == "rolled_back"
    assert call("GET", "/models/champion").json["champion"]["version"] == bundled_version()
    actors = [(t["to_status"], t["to_step"], t["actor"]) for t in rolled["transitions"]]
    assert actors == [
        ("running", 0, ALICE),
        ("running", 1, "api"),  # no IAM identity in the request: "api"
        ("promoted", 1, "api"),
        ("rolled_back", 1, "api"),
    ]


def test_pause_resume_stop(env: str) -> None:
    experiment_id = create()["id"]
    for action, status in (("start", "running"), ("pause", "paused"), ("start", "running"), ("stop", "stopped")):
        assert call("POST", f"/experiments/{experiment_id}/{action}").json["status"] == status


@pytest.mark.parametrize(
    ("setup", "action", "mentions"),
    [
        ([], "promote", ["draft", "promoted"]),
        ([], "pause", ["draft", "paused"]),
        (["start", "stop"], "start", ["final"]),
        (["start"], "promote", ["shadow"]),
        (["start"], "advance", ["shadow"]),
        ([], "advance", ["draft"]),
    ],
)
def test_an_invalid_transition_is_a_409_with_the_reason(
    env: str, setup: list[str], action: str, mentions: list[str]
) -> None:
    experiment_id = create()["id"]
    for step in setup:
        assert call("POST", f"/experiments/{experiment_id}/{step}").status == 200
    assert_problem(call("POST", f"/experiments/{experiment_id}/{action}"), 409, *mentions)


def test_starting_two_experiments_on_the_same_assets_is_a_409(env: str) -> None:
    first, second = create(assets=["BTCUSD", "ETHUSD"])["id"], create(assets=["ETHUSD"])["id"]
    call("POST", f"/experiments/{first}/start")
    assert_problem(call("POST", f"/experiments/{second}/start"), 409, first, "already serves")
    assert call("GET", f"/experiments/{second}").json["status"] == "draft"


def test_a_duplicate_id_is_a_409(env: str) -> None:
    create(id="exp-twice")
    response = call("POST", "/experiments", body={"id": "exp-twice", "treatment_version": OTHER})
    assert_problem(response, 409, "exp-twice", "exists")


@pytest.mark.parametrize("field", ["treatment_version", "control_version"])
def test_a_version_the_model_store_does_not_have_is_refused(env: str, field: str) -> None:
    body = {"treatment_version": CHALLENGER, field: "ffe-unpublished"}
    assert_problem(call("POST", "/experiments", body=body), 409, f"body.{field}", "ffe-unpublished", "publish")
    assert call("GET", "/experiments").json["items"] == []


# --- the champion -------------------------------------------------------------------------------------


def test_the_champion_is_the_bundle_until_one_is_set(env: str) -> None:
    report = call("GET", "/models/champion").json
    assert report["champion"]["version"] == bundled_version() and report["champion"]["set_at"] is None
    assert report["history"] == []


def test_put_champion_records_who_and_why(env: str) -> None:
    body = {"version": CHALLENGER, "reason": "retrained", "force": True}
    response = call("PUT", "/models/champion", body=body, user=ALICE)
    assert response.status == 200
    assert response.json["version"] == CHALLENGER and response.json["previous_version"] == bundled_version()
    assert response.json["actor"] == ALICE and response.json["reason"] == "gate forced: retrained"
    history = call("GET", "/models/champion").json["history"]
    assert [c["version"] for c in history] == [CHALLENGER]


def test_put_champion_refuses_an_unpublished_version(env: str) -> None:
    response = call("PUT", "/models/champion", body={"version": "ffe-nowhere"})
    assert_problem(response, 409, "ffe-nowhere")
    assert call("GET", "/models/champion").json["history"] == []


# --- the promotion gate -------------------------------------------------------------------------------

NAIVE = returns(1, 0.0002)
WINNER = NAIVE + returns(2, 0.002, sd=0.002)
LOSER = NAIVE - returns(3, 0.002, sd=0.002)


def publish_evidence(store: Path, version: str, meta: Any) -> None:
    """What `ffe models publish` leaves beside a version: its walk-forward evidence (tests/fakes/evidence.py)."""
    paths = {symbol: {"meta_controller": meta, "naive_router": NAIVE} for symbol in ("BTCUSD", "EURUSD")}
    write_evidence(store / version / "evidence", paths)


def promotable(control: str | None = None) -> str:
    """A running split experiment at share 1.0: the lifecycle lets it be promoted."""
    body: dict[str, Any] = {"mode": "split", "plan": SPLIT_PLAN} | ({"control_version": control} if control else {})
    experiment_id = create(body)["id"]
    assert call("POST", f"/experiments/{experiment_id}/start").status == 200
    assert call("POST", f"/experiments/{experiment_id}/advance").json["share"] == 1.0
    return experiment_id


def last_transition(experiment_id: str) -> dict[str, Any]:
    transition: dict[str, Any] = call("GET", f"/experiments/{experiment_id}").json["transitions"][-1]
    return transition


def test_promote_is_refused_without_evidence_or_on_losing_evidence(env: str, tmp_path: Path) -> None:
    # Without evidence (nor the bundled control any): a 409 naming the verdict and how to get past it
    experiment_id = promotable()
    refused = call("POST", f"/experiments/{experiment_id}/promote", body={"reason": "better"})
    assert_problem(refused, 409, "promotion gate refused", f"{CHALLENGER} has no walk-forward evidence")
    assert_problem(refused, 409, f"control {bundled_version()}", "nothing shows", '"force": true')
    # On losing evidence against a control with evidence: every comparison fails, each on its line
    call("POST", f"/experiments/{experiment_id}/stop")
    publish_evidence(tmp_path, CHALLENGER, LOSER)
    publish_evidence(tmp_path, OTHER, NAIVE)
    losing = promotable(control=OTHER)
    refused = call("POST", f"/experiments/{losing}/promote")
    assert_problem(refused, 409, "FAIL vs naive_router", f"FAIL vs control {OTHER}", "BTCUSD: candidate")
    # And nothing moved: the experiment runs on, the champion is still the bundled one
    assert call("GET", f"/experiments/{losing}").json["status"] == "running"
    assert call("GET", "/models/champion").json["history"] == []


def test_promote_passes_on_winning_evidence_and_records_it(env: str, tmp_path: Path) -> None:
    publish_evidence(tmp_path, CHALLENGER, WINNER)
    publish_evidence(tmp_path, OTHER, NAIVE)
    experiment_id = promotable(control=OTHER)
    promoted = call("POST", f"/experiments/{experiment_id}/promote", body={"reason": "better"}, user=ALICE)
    assert promoted.status == 200, promoted.text
    # The gate's outcome is in the transition's reason and evidence, and in the champion's reason
    transition = last_transition(experiment_id)
    assert transition["to_status"] == "promoted" and transition["actor"] == ALICE
    assert re.fullmatch(r"better; gate passed: P\(naive\)=1\.00, P\(control\)=1\.00", transition["reason"])
    gate = transition["evidence"]["promotion_gate"]
    assert gate["outcome"] == "passed" and gate["metric"] == "sharpe" and gate["confidence"] == 0.9
    assert gate["p_naive_router"] > 0.9 and gate["p_champion"] > 0.9 and gate["bar"] == f"control {OTHER}"
    champion = call("GET", "/models/champion").json["champion"]
    assert champion["version"] == CHALLENGER and champion["reason"] == f"experiment promoted: {transition['reason']}"
    # And a rollback is not gated (the control has evidence here, but it would not need any)
    assert call("POST", f"/experiments/{experiment_id}/rollback").json["status"] == "rolled_back"


def test_promote_forced_with_a_reason_is_recorded_and_force_needs_one(env: str) -> None:
    experiment_id = promotable()
    for body in ({"force": True}, {"force": True, "reason": "   "}):
        assert_problem(call("POST", f"/experiments/{experiment_id}/promote", body=body), 400, "force", "reason")
    assert call("GET", f"/experiments/{experiment_id}").json["status"] == "running"
    forced = call("POST", f"/experiments/{experiment_id}/promote", body={"force": True, "reason": "urgent fix"})
    assert forced.status == 200, forced.text
    transition = last_transition(experiment_id)
    assert transition["reason"] == "gate forced: urgent fix"
    assert transition["evidence"]["promotion_gate"]["outcome"] == "forced"
    assert transition["evidence"]["promotion_gate"]["p_naive_router"] is None  # nothing to compute it from
    assert call("GET", "/models/champion").json["champion"]["reason"] == "experiment promoted: gate forced: urgent fix"


def test_the_gate_settings_come_from_the_environment(env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish_evidence(tmp_path, CHALLENGER, WINNER)
    publish_evidence(tmp_path, OTHER, NAIVE)
    monkeypatch.setenv("FFE_PROMOTION_METRIC", "total_return")
    monkeypatch.setenv("FFE_PROMOTION_CONFIDENCE", "0.99")
    experiment_id = promotable(control=OTHER)
    assert call("POST", f"/experiments/{experiment_id}/promote").status == 200
    gate = last_transition(experiment_id)["evidence"]["promotion_gate"]
    assert (gate["metric"], gate["confidence"]) == ("total_return", 0.99)


def test_put_champion_passes_the_gate_against_the_champion(env: str, tmp_path: Path) -> None:
    # The bundled champion has no evidence: nothing shows a version beats it, so it is refused unless forced
    publish_evidence(tmp_path, OTHER, NAIVE)
    refused = call("PUT", "/models/champion", body={"version": OTHER, "reason": "published"})
    assert_problem(refused, 409, "promotion gate refused", f"champion {bundled_version()}", "nothing shows")
    assert call("GET", "/models/champion").json["history"] == []
    assert_problem(call("PUT", "/models/champion", body={"version": OTHER, "force": True}), 400, "reason")
    forced = call("PUT", "/models/champion", body={"version": OTHER, "force": True, "reason": "first one"})
    assert forced.status == 200 and forced.json["reason"] == "gate forced: first one"
    # Losing evidence against the champion's: refused, naming the verdict
    publish_evidence(tmp_path, CHALLENGER, LOSER)
    losing = call("PUT", "/models/champion", body={"version": CHALLENGER})
    assert_problem(losing, 409, "FAIL vs naive_router", f"FAIL vs champion {OTHER}")
    # Winning evidence: passed, the probabilities in the champion's reason
    publish_evidence(tmp_path, CHALLENGER, WINNER)
    passed = call("PUT", "/models/champion", body={"version": CHALLENGER, "reason": "retrained"})
    assert passed.status == 200, passed.text
    assert re.fullmatch(r"retrained; gate passed: P\(naive\)=1\.00, P\(champion\)=1\.00", passed.json["reason"])
    assert [c["version"] for c in call("GET", "/models/champion").json["history"]] == [CHALLENGER, OTHER]
    # And the champion again is no promotion: nothing to gate
    again = call("PUT", "/models/champion", body={"version": CHALLENGER, "reason": "same"})
    assert again.status == 200 and again.json["reason"] == "same"


def test_put_champion_reads_the_evidence_from_an_s3_store(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    publish_evidence(tmp_path, OTHER, NAIVE)
    publish_evidence(tmp_path, CHALLENGER, WINNER)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="ffe-dev-models-1")
        for f in sorted(tmp_path.glob("ffe-challenger0*/**/*")):
            if f.is_file():
                s3.upload_file(str(f), "ffe-dev-models-1", f"models/{f.relative_to(tmp_path).as_posix()}")
        monkeypatch.setenv("MODEL_STORE", "s3://ffe-dev-models-1/models")
        containers.reset()
        assert call("PUT", "/models/champion", body={"version": OTHER, "force": True, "reason": "x"}).status == 200
        passed = call("PUT", "/models/champion", body={"version": CHALLENGER})
    assert passed.status == 200, passed.text
    assert passed.json["reason"].startswith("gate passed: P(naive)=")


# --- hostile input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({}, ["body.treatment_version"]),
        ({"treatment_version": "../etc"}, ["body.treatment_version"]),
        ({"treatment_version": CHALLENGER, "id": "has space"}, ["body.id"]),
        ({"treatment_version": CHALLENGER, "id": "x" * 65}, ["body.id"]),
        ({"treatment_version": CHALLENGER, "mode": "yolo"}, ["body.mode"]),
        ({"treatment_version": CHALLENGER, "assets": ["NOPE"]}, ["body.assets"]),
        ({"treatment_version": CHALLENGER, "assets": ["BTCUSD", "BTCUSD"]}, ["body.assets", "duplicated"]),
        ({"treatment_version": CHALLENGER, "assets": []}, ["body.assets"]),
        ({"treatment_version": CHALLENGER, "plan": [{"share": 1.5}]}, ["body.plan.0.share"]),
        ({"treatment_version": CHALLENGER, "plan": [{"share": 0.5}]}, ["body.plan", "1.0"]),
        ({"treatment_version": CHALLENGER, "plan": [{"share": 0.5}, {"share": 0.2}, {"share": 1}]}, ["body.plan"]),
        ({"treatment_version": CHALLENGER, "plan": []}, ["body.plan"]),
        ({"treatment_version": CHALLENGER, "plan": [{"share": 1, "min_decisions": -1}]}, ["min_decisions"]),
        ({"treatment_version": CHALLENGER, "guardrails": {"metric": "vibes"}}, ["body.guardrails.metric"]),
        ({"treatment_version": CHALLENGER, "guardrails": {"max_degradation": 2}}, ["max_degradation"]),
        ({"treatment_version": CHALLENGER, "colour": "red"}, ["body.colour"]),
        ({"treatment_version": CHALLENGER, "reason": "why"}, ["body.reason"]),  # a creation records no reason
        ({"treatment_version": bundled_version()}, ["same version"]),
    ],
)
def test_create_refuses_bad_bodies_naming_the_field(env: str, body: dict[str, Any], mentions: list[str]) -> None:
    assert_problem(call("POST", "/experiments", body=body), 400, *mentions)
    assert call("GET", "/experiments").json["items"] == []


@pytest.mark.parametrize(
    ("raw", "headers", "status"),
    [
        ("not json", None, 400),
        ('{"treatment_version": "a", "treatment_version": "b"}', None, 400),
        ("[" * 5000, None, 400),
        ('{"treatment_version": "' + "a" * 200_000 + '"}', None, 400),
        ('{"reason": "x"}', {"Content-Type": "text/plain"}, 415),
    ],
    ids=["not-json", "repeated-key", "deep", "huge", "text-plain"],
)
def test_non_json_and_huge_bodies_are_4xx(env: str, raw: str, headers: dict[str, str] | None, status: int) -> None:
    assert_problem(call("POST", "/experiments", raw_body=raw, headers=headers), status)


@pytest.mark.parametrize("path", ["/experiments/a%2Fb", "/experiments/..", "/experiments/" + "x" * 65])
def test_bad_ids_are_4xx(env: str, path: str) -> None:
    response = call("GET", path)
    assert 400 <= response.status < 500, response.text


def test_transition_bodies_are_strict(env: str) -> None:
    experiment_id = create()["id"]
    assert_problem(call("POST", f"/experiments/{experiment_id}/start", body={"why": "x"}), 400, "body.why")
    assert_problem(call("POST", f"/experiments/{experiment_id}/start", body=[1]), 400, "body")
    assert call("GET", f"/experiments/{experiment_id}").json["status"] == "draft"


def test_put_champion_refuses_bad_bodies(env: str) -> None:
    assert_problem(call("PUT", "/models/champion", body={}), 400, "body.version")
    assert_problem(call("PUT", "/models/champion", body={"version": "a/b"}), 400, "body.version")
    assert_problem(call("PUT", "/models/champion", body={"version": CHALLENGER, "extra": 1}), 400, "body.extra")


def test_results_window_must_be_ordered(env: str) -> None:
    experiment_id = create()["id"]
    query = {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    assert_problem(call("GET", f"/experiments/{experiment_id}/results", query=query), 400, "query.since")
    assert_problem(call("GET", f"/experiments/{experiment_id}/results", query={"since": "yesterday"}), 400, "since")


def test_results_compare_the_arms(env: str) -> None:
    experiment_id = create()["id"]
    response = call("GET", f"/experiments/{experiment_id}/results", query={"since": "2026-01-01T00:00:00Z"})
    assert response.status == 200, response.text
    results = response.json
    assert results["experiment_id"] == experiment_id and results["decisions"] == 0
    assert {"control", "treatment", "agreement_rate", "confidence_delta"} <= set(results)


def test_results_and_decisions_show_both_arms_of_recorded_decisions(env: str) -> None:
    # Given a running shadow experiment and two decisions it covered, recorded by the real store
    experiment_id = create(mode="shadow")["id"]
    assert call("POST", f"/experiments/{experiment_id}/start").status == 200
    store = PostgresDecisionStore(env)
    as_of = datetime(2026, 1, 5, 12, 1, tzinfo=UTC)
    ids = []
    for hour, (close, control, treatment) in enumerate([(100.0, "BUY", "SELL"), (110.0, "BUY", "BUY")]):
        at = as_of + timedelta(hours=hour)
        record = DecisionRecord(
            cycle_id=f"c-{hour}",
            as_of=at,
            timeframe=Timeframe.H1,
            asset="BTCUSD",
            bar_time=at - timedelta(minutes=61),
            action=Action(control),
            confidence=0.6,
            stale=False,
            reason="RL says so",
            data_age_seconds=60.0,
            staleness_threshold_seconds=7200,
            model="inference_ensemble",
            model_version=bundled_version(),
            source=DataSource(provider="replay", dataset="t", synthetic=False, simulated_clock=True),
            input_sha256="0" * 64,
            bar_close=close,
            experiment_id=experiment_id,
            arm="control",
            arms={
                "control": ArmOutput(model_version=bundled_version(), action=Action(control), confidence=0.6),
                "treatment": ArmOutput(model_version=CHALLENGER, action=Action(treatment), confidence=0.4),
            },
        )
        ids.append(store.record_decision(record).id)
    store.close()
    # Then the results compare the arms over them: one agreement in two, the treatment 0.2 less confident
    results = call("GET", f"/experiments/{experiment_id}/results").json
    assert results["decisions"] == 2 and results["agreement_rate"] == pytest.approx(0.5)
    assert results["confidence_delta"] == pytest.approx(-0.2)
    assert results["treatment"]["actions"] == {"BUY": 1, "SELL": 1, "HOLD": 0}
    # And each decision shows its experiment, the arm that acted and both arms' outputs
    detail = call("GET", f"/decisions/{ids[0]}").json
    assert (detail["experiment_id"], detail["arm"], detail["bar_close"]) == (experiment_id, "control", 100.0)
    assert detail["arms"]["treatment"]["action"] == "SELL"
    listed = call("GET", "/decisions", query={"asset": "BTCUSD"}).json["items"]
    assert {(d["experiment_id"], d["arm"]) for d in listed} == {(experiment_id, "control")}
    with psycopg.connect(env, autocommit=True) as conn:
        conn.execute("TRUNCATE decisions, risk_events")


def test_results_of_an_unknown_experiment_are_a_404(env: str) -> None:
    assert_problem(call("GET", "/experiments/exp-nope/results"), 404, "exp-nope")
