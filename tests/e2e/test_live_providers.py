"""The cycle with live providers: real provider adapters, breakers and cache in moto's DynamoDB, and fake
provider HTTP servers (httpx MockTransport) that speak each provider's documented wire format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from ffe.adapters.synthetic import synthetic_bars
from ffe.domain.models import Timeframe
from ffe.local.aws import LocalCloud
from tests.conftest import ROOT
from tests.fakes.alpha_vantage_server import FakeAlphaVantage
from tests.fakes.coinbase_server import FakeCoinbaseMarketData
from tests.fakes.oanda_server import FakeOandaMarketData

AV_KEY, OANDA_TOKEN, OANDA_ACCOUNT = "av-test-key", "practice-token", "101-001-1234567-001"


def history(asset: str, timeframe: Timeframe) -> list[Any]:
    """What the venues have: a seeded series up to the wall clock (live data is judged against it)."""
    return synthetic_bars(asset, timeframe, datetime.now(UTC), 600)


class Internet:
    """Routes each request to the fake server of its host; ``unreachable`` hosts fail to connect."""

    def __init__(self) -> None:
        self.coinbase = FakeCoinbaseMarketData(history)
        self.oanda = FakeOandaMarketData(history, token=OANDA_TOKEN, account_id=OANDA_ACCOUNT)
        self.alpha_vantage = FakeAlphaVantage(history, api_key=AV_KEY)
        self.unreachable: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host in self.unreachable:
            raise httpx.ConnectError(f"[Errno 111] Connection refused: {host}", request=request)
        for server in (self.coinbase, self.alpha_vantage):
            if host == server.host:
                return server(request)
        if host in self.oanda.hosts:
            return self.oanda(request)
        raise httpx.ConnectError(f"no such host in the test internet: {host}", request=request)


@pytest.fixture(scope="module")
def internet() -> Internet:
    return Internet()


@pytest.fixture(scope="module")
def cloud(postgres: str, internet: Internet) -> Iterator[LocalCloud]:
    secrets = {
        "alpha_vantage": {"api_key": AV_KEY},
        "oanda": {"token": OANDA_TOKEN, "account_id": OANDA_ACCOUNT, "environment": "practice"},
    }
    with pytest.MonkeyPatch.context() as mp:
        client = httpx.Client(transport=httpx.MockTransport(internet))
        mp.setattr("ffe.adapters.market_data.shared_client", lambda: client)
        with LocalCloud(ROOT, postgres, market_data="live", provider_secrets=secrets) as deployed:
            yield deployed


@pytest.fixture(autouse=True)
def _healthy_internet(cloud: LocalCloud, internet: Internet) -> None:
    """Every test starts with every venue up, every breaker closed and an empty bar cache."""
    internet.coinbase.down = internet.oanda.down = internet.alpha_vantage.down = False
    internet.alpha_vantage.api_key = AV_KEY
    internet.unreachable.clear()
    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    for name, keys in (("ffe-dev-circuit-breakers", ("name",)), ("ffe-dev-bar-cache", ("series", "t"))):
        table = dynamodb.Table(name)
        for item in table.scan()["Items"]:
            table.delete_item(Key={key: item[key] for key in keys})


def run(cloud: LocalCloud, assets: list[str]) -> dict[str, Any]:
    as_of = datetime.now(UTC).replace(second=0, microsecond=0)
    cycle = {**cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", as_of)), "assets": assets}
    arn = cloud.start_execution(cycle)
    status = cloud.wait(arn, timeout_s=120)["status"]
    with psycopg.connect(cloud.database_url, row_factory=dict_row) as conn:
        decisions = conn.execute("SELECT * FROM decisions WHERE execution_id = %s", (arn,)).fetchall()
        failures = conn.execute("SELECT * FROM failures WHERE execution_id = %s", (arn,)).fetchall()
    return {
        "status": status,
        "decisions": {d["asset"]: d for d in decisions},
        "failures": {f["asset"]: f for f in failures},
    }


def route(decision: dict[str, Any]) -> list[tuple[str, str]]:
    return [(step["provider"], step["outcome"]) for step in decision["source"]["route"]]


def test_startup_health_lists_providers_breakers_and_cache(cloud: LocalCloud) -> None:
    health = cloud.market_data_health()
    assert {(p.provider, p.configured, p.breaker) for p in health.providers} == {
        ("coinbase", True, "closed"),
        ("oanda", True, "closed"),
        ("alpha_vantage", True, "closed"),
    }
    assert health.cache_reachable is True


def test_each_asset_class_is_fetched_from_its_first_provider_and_then_cached(cloud: LocalCloud) -> None:
    first = run(cloud, ["BTCUSD", "EURUSD", "SPY"])
    assert first["status"] == "SUCCEEDED" and not first["failures"]
    assert route(first["decisions"]["BTCUSD"]) == [("coinbase", "ok")]
    assert route(first["decisions"]["EURUSD"]) == [("oanda", "ok")]
    assert route(first["decisions"]["SPY"]) == [("alpha_vantage", "ok")]
    btc = first["decisions"]["BTCUSD"]
    assert btc["stale"] is False and btc["model"] == "inference_ensemble"  # crypto trades around the clock
    assert btc["source"]["simulated_clock"] is False and btc["data_age_seconds"] < 3600
    # When the next cycle runs, Then the bars come from the cache (only new bars are fetched)
    second = run(cloud, ["BTCUSD"])
    source = second["decisions"]["BTCUSD"]["source"]
    assert source["cached_bars"] / 120 >= 0.9


def test_provider_down_falls_back_to_the_next_in_the_chain(cloud: LocalCloud, internet: Internet) -> None:
    internet.coinbase.down = True
    result = run(cloud, ["ETHUSD"])
    assert route(result["decisions"]["ETHUSD"]) == [("coinbase", "failed"), ("alpha_vantage", "ok")]
    assert "TransientError" in json.dumps(result["decisions"]["ETHUSD"]["source"]["route"][0])


def test_all_providers_down_records_a_failure_and_other_assets_carry_on(cloud: LocalCloud, internet: Internet) -> None:
    internet.coinbase.down = internet.alpha_vantage.down = True  # every crypto venue; Oanda still up
    result = run(cloud, ["BTCUSD", "EURUSD"])
    assert result["status"] == "SUCCEEDED"
    failure = result["failures"]["BTCUSD"]
    assert failure["error_class"] == "TransientError" and "every provider failed for BTCUSD" in failure["message"]
    assert "EURUSD" in result["decisions"] and "BTCUSD" not in result["decisions"]


def test_preflight_reports_good_bad_key_and_unreachable_providers(cloud: LocalCloud, internet: Internet) -> None:
    internet.alpha_vantage.api_key = "a-different-key"  # ours is now rejected
    internet.unreachable.add("api-fxpractice.oanda.com")
    report = cloud.invoke("preflight")
    status = {c["provider"]: c["status"] for c in report["providers"]}
    assert status == {"coinbase": "ok", "alpha_vantage": "auth_failed", "oanda": "unreachable"}
    assert report["healthy"] is False
    assert AV_KEY not in json.dumps(report)
    paper = next(b for b in report["brokers"] if b["broker"] == "paper")  # the stage's venue: balance readable
    assert paper["status"] == "ok" and paper["equity"].endswith("USD") and paper["min_order"] == "0.0001 BTCUSD"
