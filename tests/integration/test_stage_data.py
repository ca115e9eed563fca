"""Stages that decide for real (issue 17), through the real handlers: FetchMarketData refuses replay in staging and
prod, and GateRisk never lets bars that are not the market lead to an order (a synthetic series in a deployed
function, replayed history in staging and prod), while the offline runtime keeps deciding on them as before."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ffe.contracts import DataSource, DecisionRecord, MarketData
from ffe.domain.errors import PermanentError
from ffe.domain.models import Action
from ffe.store.migrate import migrate
from functions.fetch_market_data import handler as fetch
from functions.gate_risk import handler as gate
from tests import gate_inputs
from tests.database import own_database

EVENTS = Path(__file__).resolve().parents[1] / "events"
AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
LIVE = DataSource(provider="live", dataset="coinbase:BTCUSD:1h", synthetic=False, simulated_clock=False)
IN_LAMBDA = "AWS_Lambda_python3.12"  # what the Lambda runtime sets AWS_EXECUTION_ENV to


def task(**change: object) -> dict[str, Any]:
    return {**json.loads((EVENTS / "asset_task.json").read_text()), **change}


@pytest.mark.parametrize("stage", ["staging", "prod"])
@pytest.mark.parametrize("provider", ["replay", "scenario"])
def test_fetch_refuses_anything_but_live_data_in_a_deciding_stage(stage, provider, lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("STAGE", stage)
    monkeypatch.setenv("MARKET_DATA_PROVIDER", provider)
    monkeypatch.setenv("SCENARIO_URI", "s3://bucket/scenario/")
    with pytest.raises(PermanentError, match=rf"MARKET_DATA_PROVIDER={provider} in stage {stage}: .*live market data"):
        fetch.lambda_handler(task(), lambda_context)


def test_fetch_replays_in_dev_as_before(lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setenv("MARKET_DATA_PROVIDER", "replay")
    monkeypatch.setenv("AWS_EXECUTION_ENV", IN_LAMBDA)
    data = MarketData.model_validate(fetch.lambda_handler(task(asset="GBPUSD"), lambda_context))
    assert data.source.synthetic and data.source.provider == "replay"  # GBPUSD ships no real series


def fetched(asset: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> MarketData:
    """What FetchMarketData hands on for ``asset`` with the replay provider (dev, offline)."""
    with monkeypatch.context() as offline:
        offline.setenv("STAGE", "dev")
        offline.setenv("MARKET_DATA_PROVIDER", "replay")
        offline.delenv("AWS_EXECUTION_ENV", raising=False)
        return MarketData.model_validate(fetch.lambda_handler(task(asset=asset), lambda_context))


def gated(
    data: MarketData, stage: str, in_lambda: bool, postgres: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> DecisionRecord:
    """A BUY at full confidence on ``data``, through the GateRisk handler of ``stage``'s paper account (a fresh
    database, so each test's account starts with its cash and no order)."""
    url = own_database(postgres, f"stage_data_{uuid.uuid4().hex[:12]}")
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("STAGE", stage)
    monkeypatch.setenv("EXECUTION_MODE", "paper")
    if in_lambda:
        monkeypatch.setenv("AWS_EXECUTION_ENV", IN_LAMBDA)
    else:
        monkeypatch.delenv("AWS_EXECUTION_ENV", raising=False)
    bars = data.bars.domain()
    inp = gate_inputs.gate_input(f"c-{uuid.uuid4()}", bars, AS_OF, asset=data.asset, action=Action.BUY, confidence=1.0)
    event = inp.model_copy(update={"source": data.source}).model_dump(mode="json")
    return DecisionRecord.model_validate(gate.lambda_handler(event, lambda_context))


def assert_held_not_market_data(record: DecisionRecord, says: str) -> None:
    assert record.action is Action.HOLD and record.size is None and record.risk is not None
    assert record.risk.reasons == ["not_market_data"] and not record.risk.approved
    assert record.reason.startswith("risk gate blocked BUY: not_market_data; model: ")
    assert says in record.risk.detail["why"]


def test_a_deployed_stage_never_orders_on_a_synthetic_series(postgres, lambda_context, monkeypatch) -> None:
    data = fetched("GBPUSD", lambda_context, monkeypatch)
    assert data.source.synthetic
    record = gated(data, "dev", True, postgres, lambda_context, monkeypatch)
    assert_held_not_market_data(record, "synthetic series (synthetic:GBPUSD:seeded), not the market")


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_staging_and_prod_never_order_on_replayed_history(stage, postgres, lambda_context, monkeypatch) -> None:
    data = fetched("BTCUSD", lambda_context, monkeypatch)
    assert not data.source.synthetic and data.source.simulated_clock
    record = gated(data, stage, True, postgres, lambda_context, monkeypatch)
    assert_held_not_market_data(record, f"replayed history (replay: {data.source.dataset}): {stage} orders on live")


@pytest.mark.parametrize(
    ("asset", "stage", "in_lambda"),
    [
        ("GBPUSD", "dev", False),  # the offline runtime (ffe run) decides on synthetic series as before
        ("BTCUSD", "dev", True),  # a deployed dev stage orders on bundled real history
    ],
)
def test_dev_and_the_offline_runtime_gate_as_before(asset, stage, in_lambda, postgres, lambda_context, monkeypatch):
    record = gated(fetched(asset, lambda_context, monkeypatch), stage, in_lambda, postgres, lambda_context, monkeypatch)
    assert record.action is Action.BUY and record.risk is not None and record.risk.approved


def test_prod_orders_on_live_market_data(postgres, lambda_context, monkeypatch) -> None:
    data = fetched("BTCUSD", lambda_context, monkeypatch).model_copy(update={"source": LIVE})
    record = gated(data, "prod", True, postgres, lambda_context, monkeypatch)
    assert record.action is Action.BUY and record.risk is not None and record.risk.approved
