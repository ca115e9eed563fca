"""InferDecision through moto to the inference server on loopback: both voters, a slow endpoint, a dead one.

Each test deploys its own stack, because the endpoint's circuit breaker lives in the stack's DynamoDB table.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg.rows import dict_row

from ffe.local.aws import LocalCloud
from ffe.local.history import state_visits
from ffe.local.runner import DEFAULT_AS_OF
from ffe.local.template import REGION
from tests.conftest import ROOT
from tests.fakes import ollama_server as fake
from tests.fakes.models import random_bundle, write_bundle

FRESH = ("BTCUSD", "ETHUSD")  # fresh at DEFAULT_AS_OF; the FX pairs are stale and never reach the endpoint


def run(cloud: LocalCloud, assets: tuple[str, ...] = FRESH) -> tuple[str, dict[str, dict[str, Any]]]:
    """Fire the 1h schedule for ``assets``; the execution's status and its decisions by asset."""
    body = {**cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", DEFAULT_AS_OF)), "assets": list(assets)}
    arn = cloud.start_execution(body)
    desc = cloud.wait(arn, timeout_s=120)
    assert {v.name for v in state_visits(cloud.history(arn)) if v.asset in assets} >= {"Infer decision"}
    with psycopg.connect(cloud.database_url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM decisions WHERE execution_id = %s", (arn,)).fetchall()
    return desc["status"], {r["asset"]: r for r in rows}


@pytest.fixture
def ollama() -> Iterator[fake.FakeOllama]:
    with fake.running() as server:
        yield server


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: a hung endpoint."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def closed_endpoint() -> str:
    """A loopback port nobody listens on: an endpoint that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_both_voters_decide_and_the_record_explains_them(postgres: str, ollama: fake.FakeOllama) -> None:
    # Given an Ollama that answers SELL 0.9 for every asset
    ollama.default = fake.answer(action="SELL", confidence=0.9, reasoning="lower highs; momentum fading")
    with LocalCloud(ROOT, postgres, ollama_host=ollama.host) as cloud:
        # When a cycle runs
        status, decisions = run(cloud)
    assert status == "SUCCEEDED" and set(decisions) == set(FRESH)
    for asset in FRESH:
        d = decisions[asset]
        rl, llm = d["reasons"]["voters"]
        # Then both voters are recorded with their model, latency and version
        assert (rl["voter"], rl["status"], llm["voter"], llm["status"]) == ("rl", "voted", "llm", "voted")
        assert llm["model"] == "llama3.2:1b-instruct-q4_0"  # no GPU: the CPU plan runs the 1B model
        assert llm["reasoning"] == "lower highs; momentum fading" and llm["latency_ms"] >= 0
        # And the ensemble rule combined them as documented in ffe.domain.voting
        if rl["action"] == "BUY":
            assert (d["action"], "llm_veto") == ("HOLD", d["reason"].split("[rule ")[1].split(";")[0])
        elif rl["action"] == "SELL":
            assert d["action"] == "SELL" and "[rule rl_confirmed;" in d["reason"]
        else:
            assert d["action"] == "HOLD" and "[rule llm_doubts;" in d["reason"]
    # And the LLM was asked about each asset, with its bars summary and regime in the prompt
    prompts = [c["messages"][-1]["content"] for c in ollama.chats_for("llama3.2:1b-instruct-q4_0")]
    assert len(prompts) == len(FRESH) and all(any(a in p for p in prompts) for a in FRESH)


def test_a_hung_endpoint_times_out_into_hold(postgres: str, silent_endpoint: str) -> None:
    with LocalCloud(ROOT, postgres) as cloud:
        # Given InferDecision pointed at an endpoint that never answers, with a short read timeout
        cloud.configure_function("infer-decision", INFERENCE_ENDPOINT_URL=silent_endpoint, INFERENCE_TIMEOUT_S="0.3")
        # When a cycle runs
        status, decisions = run(cloud)
    # Then every fresh asset holds, saying the endpoint was unavailable and why; nothing is made up
    assert status == "SUCCEEDED" and set(decisions) == set(FRESH)
    for d in decisions.values():
        assert (d["action"], d["confidence"], d["model"]) == ("HOLD", 1.0, "inference_ensemble")
        assert d["reason"].startswith("inference_unavailable: ffe-dev-inference: ReadTimeoutError")
        assert d["model_version"] == "unavailable" and d["size"] is None


def test_a_dead_endpoint_opens_the_breaker_and_every_decision_holds(postgres: str, closed_endpoint: str) -> None:
    with LocalCloud(ROOT, postgres) as cloud:
        cloud.configure_function("infer-decision", INFERENCE_ENDPOINT_URL=closed_endpoint)
        # Given two cycles against an endpoint that refuses connections (4 calls; the breaker opens at 3)
        first_status, first = run(cloud)
        second_status, second = run(cloud)
        table = cloud.function_environment("infer-decision")["BREAKER_TABLE"]
        item = (
            boto3.resource("dynamodb", region_name=REGION)
            .Table(table)
            .get_item(Key={"name": "inference:ffe-dev-inference"})["Item"]
        )
    # Then each decision is a HOLD that names the failure, and the cycles still succeed
    assert first_status == second_status == "SUCCEEDED"
    reasons = [d["reason"] for d in [*first.values(), *second.values()]]
    assert all(r.startswith("inference_unavailable: ") for r in reasons)
    assert any("EndpointConnectionError" in r for r in reasons)
    # And the shared breaker is open: later calls are refused at once, across containers
    assert any("circuit breaker for ffe-dev-inference is open" in r for r in reasons)
    assert item["state"] == "open"
    assert all(d["action"] == "HOLD" and d["size"] is None for d in [*first.values(), *second.values()])


def test_an_endpoint_whose_models_failed_to_load_holds_saying_so(postgres: str, tmp_path: Path) -> None:
    # Given an endpoint whose start-up model cannot load (its TorchScript policy is missing), as SageMaker's
    # would run unhealthy, while DetectRegime reads the champion from the store
    cloud = LocalCloud(ROOT, postgres)
    cloud.inference.model_dir = write_bundle(random_bundle(seed=3), tmp_path / "no-torchscript")
    with cloud:
        assert cloud.inference.load_error is not None and "meta-controller.pt" in cloud.inference.load_error
        status, decisions = run(cloud)
    # Then the regime is detected, the endpoint answers 503 with its reason, and every fresh asset holds
    assert status == "SUCCEEDED" and set(decisions) == set(FRESH)
    for d in decisions.values():
        assert d["regime"] is not None and (d["action"], d["model_version"]) == ("HOLD", "unavailable")
        assert d["reason"].startswith("inference_unavailable: ffe-dev-inference: ")
        assert "ModelNotReady" in d["reason"] and "the models failed to load" in d["reason"]
