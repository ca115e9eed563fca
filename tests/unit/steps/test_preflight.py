from datetime import UTC, datetime

from ffe.domain.errors import AuthError, RateLimitedError, TransientError
from ffe.domain.models import AssetClass
from ffe.steps.preflight import run_preflight
from tests.fakes.live_provider import ScriptedProvider

NOW = datetime(2026, 1, 5, 6, 30, tzinfo=UTC)


def test_report_covers_every_provider_without_stopping_at_the_first_failure() -> None:
    # Given one good provider, one with a rejected key and one that cannot be reached
    good, bad_key, down = ScriptedProvider("coinbase"), ScriptedProvider("alpha_vantage"), ScriptedProvider("oanda")
    bad_key.failure = AuthError("alpha_vantage rejected the credentials", provider="alpha_vantage")
    down.failure = TransientError("oanda unreachable: ConnectError", provider="oanda")
    # When pre-flight runs
    report = run_preflight({"coinbase": good, "alpha_vantage": bad_key, "oanda": down}, clock=lambda: NOW)
    # Then each provider has its own verdict, latency and a hint
    by_name = {c.provider: c for c in report.providers}
    assert by_name["coinbase"].status == "ok" and by_name["coinbase"].latency_ms is not None
    assert by_name["alpha_vantage"].status == "auth_failed" and "AlphaVantageSecretArn" in by_name["alpha_vantage"].hint
    assert by_name["oanda"].status == "unreachable" and "egress" in by_name["oanda"].hint
    assert report.healthy is False and report.checked_at == NOW


def test_rate_limit_and_server_errors_are_told_apart() -> None:
    slow, broken = ScriptedProvider("coinbase"), ScriptedProvider("oanda")
    slow.failure = RateLimitedError("429", retry_after_seconds=30)
    broken.failure = TransientError("server error", http_status=503)
    report = run_preflight({"coinbase": slow, "oanda": broken}, clock=lambda: NOW)
    by_name = {c.provider: c for c in report.providers}
    assert by_name["coinbase"].status == "rate_limited" and "30 s" in by_name["coinbase"].hint
    assert by_name["oanda"].status == "unreachable" and "server errors" in by_name["oanda"].hint


def test_unconfigured_providers_are_reported_not_probed() -> None:
    report = run_preflight({"coinbase": ScriptedProvider("coinbase")}, clock=lambda: NOW)
    statuses = {c.provider: c.status for c in report.providers}
    assert statuses == {"coinbase": "ok", "oanda": "not_configured", "alpha_vantage": "not_configured"}
    assert report.healthy is True


def test_brokers_are_checked_independently_and_never_defaulted() -> None:
    from decimal import Decimal

    from ffe.domain.portfolio import Balance, ProductRules

    class Venue:
        def __init__(self, name: str, failure: Exception | None = None) -> None:
            self.name, self.failure = name, failure

        def balance(self) -> Balance:
            if self.failure:
                raise self.failure
            return Balance("USD", Decimal("1000"), Decimal("900"))

        def product_rules(self, asset: str, asset_class: AssetClass | None = None) -> ProductRules:
            return ProductRules(asset, Decimal("0.001"), Decimal("0.001"))

    report = run_preflight(
        {"coinbase": ScriptedProvider("coinbase")},
        clock=lambda: NOW,
        brokers={"paper": Venue("paper"), "oanda": Venue("oanda", AuthError("401", provider="oanda"))},  # type: ignore[dict-item]
    )
    by_name = {b.broker: b for b in report.brokers}
    assert by_name["paper"].status == "ok" and by_name["paper"].equity == "1000 USD"
    assert by_name["paper"].min_order == "0.001 BTCUSD"
    assert by_name["oanda"].status == "auth_failed" and by_name["oanda"].equity is None
    assert report.healthy is False  # a broker that cannot read its balance fails the pre-flight
