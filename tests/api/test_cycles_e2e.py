"""POST /cycles then GET /cycles/{id} through the deployed Api function, with the REAL DecisionCycle in moto.

The Api function is template.yaml's ``ApiFunction`` (ffe-<stage>-api, CodeUri functions/api/), wired with
STATE_MACHINE_ARN, DB_SECRET_ARN, BREAKER_TABLE and BAR_CACHE_TABLE.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ffe.api import app as api_app
from ffe.local.api_server import start_in_thread
from ffe.local.aws import LocalCloud
from tests.api.conftest import ApiResponse, rest_event, to_response
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def cloud(postgres: str) -> Iterator[LocalCloud]:
    api_app.reset()
    with LocalCloud(ROOT, postgres) as deployed:
        yield deployed
    api_app.reset()


def invoke(cloud: LocalCloud, method: str, path: str, **kwargs: Any) -> ApiResponse:
    return to_response(cloud.invoke("api", rest_event(method, path, **kwargs)))


def test_post_cycle_runs_the_state_machine_and_get_cycle_shows_the_outcome(cloud: LocalCloud) -> None:
    # Given the stack deployed into moto, with the Api function wired to the real DecisionCycle
    env = cloud.function_environment("api")
    assert env["STATE_MACHINE_ARN"] == cloud.state_machine_arn
    # When a cycle is requested through the Api function
    request = {"assets": ["BTCUSD", "ETHUSD", "EURUSD"], "timeframe": "1h", "as_of": "2019-06-15T12:01:00Z"}
    accepted = invoke(cloud, "POST", "/cycles", body=request)
    # Then it is accepted, and the execution it started runs to the end
    assert accepted.status == 202, accepted.text
    cycle_id, arn = accepted.json["cycle_id"], accepted.json["execution_arn"]
    assert arn.startswith(cloud.state_machine_arn.replace(":stateMachine:", ":execution:")) and arn.endswith(cycle_id)
    assert cloud.wait(arn, timeout_s=120)["status"] == "SUCCEEDED"
    # And GET /cycles/{id} shows the live status and one outcome per requested asset
    response = invoke(cloud, "GET", f"/cycles/{cycle_id}")
    assert response.status == 200, response.text
    cycle = response.json
    assert cycle["status"] == "SUCCEEDED" and cycle["execution"]["status"] == "SUCCEEDED"
    assert cycle["execution_arn"] == arn and cycle["pending_assets"] == [] and cycle["cycle_failure"] is None
    assert sorted(cycle["outcomes"]) == ["BTCUSD", "ETHUSD", "EURUSD"]
    assert all(outcome["outcome"] == "decision" for outcome in cycle["outcomes"].values())
    eurusd = cycle["outcomes"]["EURUSD"]  # the bundled EURUSD history ends in 2017: stale, so HOLD
    assert (eurusd["action"], eurusd["confidence"], eurusd["stale"]) == ("HOLD", 1.0, True)
    # And each decision is readable on its own, newest first in the list
    decision_id = cycle["outcomes"]["BTCUSD"]["decision_id"]
    detail = invoke(cloud, "GET", f"/decisions/{decision_id}")
    assert detail.status == 200 and detail.json["cycle_id"] == cycle_id and detail.json["execution_id"] == arn
    listed = invoke(cloud, "GET", "/decisions", query={"asset": "BTCUSD", "limit": "500"}).json["items"]
    assert decision_id in [d["id"] for d in listed]


def test_unknown_asset_is_rejected_before_any_execution_starts(cloud: LocalCloud) -> None:
    import boto3

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    before = len(sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"])
    response = invoke(cloud, "POST", "/cycles", body={"assets": ["BTCUSD", "XAUUSD"], "timeframe": "1h"})
    assert response.status == 400 and "XAUUSD" in response.json["detail"]
    assert len(sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"]) == before


def test_local_server_puts_the_deployed_function_on_loopback(cloud: LocalCloud) -> None:
    # Given the deployed Api function behind the local HTTP server
    server, port = start_in_thread(lambda event: cloud.invoke("api", event))
    try:
        # When asking for health over HTTP
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as response:
            status, body = response.status, json.loads(response.read())
    finally:
        server.shutdown()
        server.server_close()
    # Then the function answers with the stack's market-data tables and a reachable database
    assert status == 200 and body["database"]["ok"] is True
    assert body["market_data"]["breaker_table"] == "ffe-dev-circuit-breakers"
    assert body["market_data"]["cache_reachable"] is True
