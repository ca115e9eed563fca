"""The stage's risk limits from SSM (through Powertools), validated at load."""

import json

import boto3
import pytest
from moto import mock_aws

from ffe.adapters.brokers_factory import risk_limits
from ffe.domain.errors import PermanentError
from ffe.settings import RiskSettings


def settings(**env: str) -> RiskSettings:
    return RiskSettings.model_validate({"database_url": "postgresql:///x", **env})


def test_limits_come_from_the_environment_without_a_parameter() -> None:
    assert risk_limits(settings(risk_max_position_fraction="0.2")).max_position_fraction == 0.2


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"max_position_fraction": 0.05, "var_limit": 0.01}, None),
        ({"max_position_fraction": 1.5}, "max_position_fraction must be in"),
        ({"max_leverage": 3}, "keys among"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_limits_from_ssm_are_validated(stored: object, message: str | None) -> None:
    with mock_aws():
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name="/ffe/test/risk-limits", Type="String", Value=json.dumps(stored)
        )
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        configured = settings(risk_limits_parameter="/ffe/test/risk-limits")
        if message is None:
            limits = risk_limits(configured)
            assert (limits.max_position_fraction, limits.var_limit, limits.max_drawdown) == (0.05, 0.01, 0.15)
        else:
            with pytest.raises(PermanentError, match=message):
                risk_limits(configured)


def test_live_mode_routes_each_asset_class_to_its_broker_or_refuses() -> None:
    from datetime import UTC, datetime

    from ffe.adapters.brokers.coinbase import CoinbaseBroker
    from ffe.adapters.brokers.oanda import OandaBroker
    from ffe.adapters.brokers_factory import close_brokers, get_broker
    from ffe.domain.models import AssetClass

    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ffe/dev/x"
    live = settings(execution_mode="live", oanda_secret_arn=arn, coinbase_trading_secret_arn=arn)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    assert isinstance(get_broker(live, now, "EURUSD"), OandaBroker)
    assert isinstance(get_broker(live, now, "BTCUSD"), CoinbaseBroker)
    # a universe file's asset the built-in table does not know trades on its class's venue
    assert isinstance(get_broker(live, now, "SOLUSD", AssetClass.CRYPTO), CoinbaseBroker)
    assert isinstance(get_broker(live, now, "AUDUSD", AssetClass.FX), OandaBroker)
    with pytest.raises(PermanentError, match="no live broker is configured for SPY"):
        get_broker(live, now, "SPY")
    close_brokers()
    with pytest.raises(PermanentError, match="CoinbaseTradingSecretArn"):
        get_broker(settings(execution_mode="live"), now, "BTCUSD")


def test_live_brokers_are_built_once_and_shared_with_pre_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from ffe.adapters.brokers import coinbase, oanda
    from ffe.adapters.brokers_factory import close_brokers, get_broker, venue_brokers

    built: list[str] = []

    class CountedCoinbase(coinbase.CoinbaseBroker):
        def __init__(self, *args: object, **kwargs: object) -> None:
            built.append("coinbase")
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    class CountedOanda(oanda.OandaBroker):
        def __init__(self, *args: object, **kwargs: object) -> None:
            built.append("oanda")
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(coinbase, "CoinbaseBroker", CountedCoinbase)
    monkeypatch.setattr(oanda, "OandaBroker", CountedOanda)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ffe/dev/x"
    live = settings(execution_mode="live", oanda_secret_arn=arn, coinbase_trading_secret_arn=arn)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    crypto = get_broker(live, now, "BTCUSD")
    assert get_broker(live, now, "ETHUSD") is crypto
    checked = venue_brokers(live, now)
    assert list(checked) == ["paper", "oanda", "coinbase"]
    assert checked["coinbase"] is crypto and checked["oanda"] is get_broker(live, now, "EURUSD")
    assert built == ["coinbase", "oanda"]
    close_brokers()
    assert get_broker(live, now, "BTCUSD") is not crypto  # a cold container builds again
    assert built == ["coinbase", "oanda", "coinbase"]
    close_brokers()


def test_equity_memory_is_one_per_container_and_closed_with_the_brokers(monkeypatch: pytest.MonkeyPatch) -> None:
    from ffe.adapters import brokers_factory
    from ffe.adapters.equity_marks import PostgresEquityMarks

    closed: list[PostgresEquityMarks] = []
    monkeypatch.setattr(PostgresEquityMarks, "close", lambda self: closed.append(self))
    memory = brokers_factory.get_equity_memory(settings())
    assert brokers_factory.get_equity_memory(settings()) is memory
    brokers_factory.close_brokers()
    assert closed == [memory]
    assert brokers_factory.get_equity_memory(settings()) is not memory
    brokers_factory.close_brokers()
