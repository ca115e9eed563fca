"""Pre-flight: check every market-data provider independently and say how to fix what fails."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal

from pydantic import Field

from ffe.contracts import Contract, UtcDatetime
from ffe.domain.errors import AuthError, FfeError, RateLimitedError, TransientError
from ffe.domain.ports import Broker, LiveProvider

Status = Literal["ok", "auth_failed", "rate_limited", "unreachable", "error", "not_configured"]
KNOWN_PROVIDERS = ("coinbase", "oanda", "alpha_vantage")
_SETTING = {
    "alpha_vantage": "AlphaVantageSecretArn (locally: ALPHA_VANTAGE_API_KEY)",
    "oanda": "OandaSecretArn (locally: OANDA_API_TOKEN and OANDA_ACCOUNT_ID)",
    "coinbase": "COINBASE_ENABLED=true",
}


class ProviderCheck(Contract):
    provider: str
    status: Status
    latency_ms: float | None = None
    message: str = ""
    hint: str = ""


class BrokerCheck(Contract):
    broker: str
    status: Status
    latency_ms: float | None = None
    equity: str | None = Field(default=None, description="the balance read, proving it is readable")
    min_order: str | None = Field(default=None, description="the venue's minimum order size for the probe product")
    message: str = ""
    hint: str = ""


class PreflightResult(Contract):
    checked_at: UtcDatetime
    healthy: bool = Field(description="every configured provider and broker answered ok")
    providers: list[ProviderCheck]
    brokers: list[BrokerCheck] = Field(default_factory=list)


# The product each venue's order rules are loaded for (proves the product catalogue is readable).
PROBE_PRODUCT = {"paper": "BTCUSD", "coinbase": "BTCUSD", "oanda": "EURUSD"}


def run_preflight(
    providers: Mapping[str, LiveProvider], clock: Callable[[], datetime], brokers: Mapping[str, Broker] | None = None
) -> PreflightResult:
    """Probe each configured provider and broker independently; never stop at the first failure."""
    checks = [_check(name, providers.get(name)) for name in KNOWN_PROVIDERS]
    venue_checks = [_check_broker(name, broker) for name, broker in (brokers or {}).items()]
    configured = [c for c in checks if c.status != "not_configured"]
    healthy = bool(configured) and all(c.status == "ok" for c in configured)
    healthy = healthy and all(c.status == "ok" for c in venue_checks)
    return PreflightResult(checked_at=clock(), healthy=healthy, providers=checks, brokers=venue_checks)


def _check_broker(name: str, broker: Broker) -> BrokerCheck:
    """Balance readable (never defaulted) and the venue's order minimums loaded."""
    started = time.perf_counter()
    try:
        balance = broker.balance()
        rules = broker.product_rules(PROBE_PRODUCT.get(name, "BTCUSD"))
    except FfeError as exc:
        status, hint = _diagnose(name, exc)
        latency = round((time.perf_counter() - started) * 1000, 1)
        return BrokerCheck(broker=name, status=status, latency_ms=latency, message=str(exc), hint=hint)
    except Exception as exc:  # one broker's bug must not hide the others
        return BrokerCheck(broker=name, status="error", message=f"{type(exc).__name__}: {exc}")
    return BrokerCheck(
        broker=name,
        status="ok",
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        equity=f"{balance.equity} {balance.currency}",
        min_order=f"{rules.min_size} {rules.asset}",
    )


def _check(name: str, provider: LiveProvider | None) -> ProviderCheck:
    if provider is None:
        hint = f"set {_SETTING[name]} to enable it" if name in _SETTING else ""
        return ProviderCheck(provider=name, status="not_configured", hint=hint)
    started = time.perf_counter()
    try:
        provider.probe()
    except FfeError as exc:
        status, hint = _diagnose(name, exc)
        latency = round((time.perf_counter() - started) * 1000, 1)
        return ProviderCheck(provider=name, status=status, latency_ms=latency, message=str(exc), hint=hint)
    except Exception as exc:  # a bug in one probe must not hide the others' results
        return ProviderCheck(
            provider=name,
            status="error",
            message=f"{type(exc).__name__}: {exc}",
            hint="unexpected error in the probe: see the function's logs",
        )
    return ProviderCheck(provider=name, status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 1))


def _diagnose(name: str, exc: FfeError) -> tuple[Status, str]:
    secret = _SETTING.get(name, "the provider's secret")
    if isinstance(exc, AuthError):
        return (
            "auth_failed",
            f"the credentials were rejected: update the secret behind {secret} (key, token, account id)",
        )
    if isinstance(exc, RateLimitedError):
        wait = f" (Retry-After {exc.retry_after_seconds:.0f} s)" if exc.retry_after_seconds else ""
        return "rate_limited", f"this key is being throttled{wait}: space out calls or raise the plan's limit"
    if isinstance(exc, TransientError) and "http_status" not in exc.context:
        return (
            "unreachable",
            "no answer: check internet egress (NAT gateway, VPC endpoints, DNS) and the provider's status page",
        )
    if isinstance(exc, TransientError):
        return "unreachable", "the provider answers with server errors: check its status page and retry later"
    return "error", "the provider refused the probe request: see the message"
