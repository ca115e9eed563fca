"""The execution venue a function uses, from the stage's settings (each built once per container)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from ffe.adapters.database import configured
from ffe.adapters.equity_marks import PostgresEquityMarks
from ffe.adapters.paper_broker import PaperBroker
from ffe.adapters.reservations import PostgresReservations
from ffe.containers import container_cached
from ffe.domain.errors import PermanentError
from ffe.domain.models import AssetClass
from ffe.domain.ports import Broker
from ffe.domain.universe import class_of
from ffe.settings import RiskSettings

if TYPE_CHECKING:
    from ffe.domain.risk import RiskLimits

Venue = Literal["coinbase", "oanda"]
_VENUES: dict[AssetClass, Venue] = {AssetClass.CRYPTO: "coinbase", AssetClass.FX: "oanda"}  # live, by asset class


def get_broker(
    settings: RiskSettings, as_of: datetime, asset: str | None = None, asset_class: AssetClass | None = None
) -> Broker:
    """The stage's venue for ``asset``: the paper account (one per container, so its connection is reused),
    or in live mode the asset class's broker (crypto: Coinbase Advanced Trade; FX: Oanda; the class is the universe
    file's, else the built-in table's). Paper orders are stamped with ``as_of`` (the decision bar's close), so they
    fill at the next bar's open."""
    if settings.execution_mode == "live":
        return _live_broker(settings, asset, asset_class)
    broker = _paper_account(settings)
    broker.set_clock(lambda: as_of)
    return broker


@container_cached
def _paper_account(settings: RiskSettings) -> PaperBroker:
    return PaperBroker(
        configured(settings),
        account_id=f"paper-{settings.stage}",
        clock=lambda: datetime.now(UTC),  # replaced by the cycle's as_of on every get_broker
        starting_cash=Decimal(str(settings.paper_starting_cash)),
        fee_rate=Decimal(str(settings.paper_fee_rate)),
        slippage=Decimal(str(settings.paper_slippage)),
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )


def _live_broker(settings: RiskSettings, asset: str | None, given: AssetClass | None = None) -> Broker:
    asset_class = class_of(asset, given) if asset else None
    venue = _VENUES.get(asset_class) if asset_class is not None else None
    broker = _live(venue, settings) if venue else None
    if broker is None:
        raise PermanentError(
            f"EXECUTION_MODE=live but no live broker is configured for {asset} ({asset_class}): set "
            "CoinbaseTradingSecretArn for crypto or OandaSecretArn for FX"
        )
    return broker


def _live(name: Venue, settings: RiskSettings) -> Broker | None:
    """The live venue ``name`` when its secret is configured (else None): built on first use, then kept for the
    container (its client, product rules and placed orders are reused)."""
    arn = settings.coinbase_trading_secret_arn if name == "coinbase" else settings.oanda_secret_arn
    return _live_venue(name, arn) if arn else None


@container_cached
def _live_venue(name: Venue, arn: str) -> Broker:
    from ffe.adapters.brokers.coinbase import CoinbaseBroker
    from ffe.adapters.brokers.oanda import OandaBroker
    from ffe.adapters.market_data import secret_credentials
    from ffe.adapters.providers.base import shared_client

    if name == "coinbase":
        return CoinbaseBroker(shared_client(), secret_credentials(arn))
    return OandaBroker(shared_client(), secret_credentials(arn))


@container_cached
def get_equity_memory(settings: RiskSettings) -> PostgresEquityMarks:
    """The kill switches' memory, one per container (its connection is reused)."""
    return PostgresEquityMarks(configured(settings), settings.db_statement_timeout_ms)


@container_cached
def get_reservations(settings: RiskSettings) -> PostgresReservations:
    """The order reservations and account locks, one per container (its connection is reused)."""
    return PostgresReservations(
        configured(settings), settings.reservation_ttl_seconds, statement_timeout_ms=settings.db_statement_timeout_ms
    )


def venue_brokers(settings: RiskSettings, now: datetime) -> dict[str, Broker]:
    """The brokers pre-flight checks: the stage's paper account, and every live venue with credentials."""
    brokers: dict[str, Broker] = {}
    if settings.execution_mode != "off":
        brokers["paper"] = get_broker(settings.model_copy(update={"execution_mode": "paper"}), now)
    venues: tuple[Venue, ...] = ("oanda", "coinbase")
    for name in venues:
        live = _live(name, settings)
        if live is not None:
            brokers[name] = live
    return brokers


def risk_limits(settings: RiskSettings) -> RiskLimits:
    """The stage's limits: the SSM parameter (JSON, read through Powertools, cached 5 min) when one is
    configured, else the RISK_* environment. Validated either way; a bad value stops the gate."""
    # imported here: only GateRisk sizes against the limits (ExecuteOrder and Preflight, which take their brokers
    # from this module, never do: tests/template/test_template.py)
    from ffe.domain.risk import RiskLimits

    values: dict[str, Any] = {
        "target_daily_volatility": settings.risk_target_daily_volatility,
        "max_position_fraction": settings.risk_max_position_fraction,
        "max_gross_exposure": settings.risk_max_gross_exposure,
        "daily_loss_limit": settings.risk_daily_loss_limit,
        "max_drawdown": settings.risk_max_drawdown,
        "var_limit": settings.risk_var_limit,
    }
    if settings.risk_limits_parameter:
        from aws_lambda_powertools.utilities import parameters

        stored = parameters.get_parameter(settings.risk_limits_parameter, transform="json", max_age=300)
        if not isinstance(stored, dict) or set(stored) - set(values):
            raise PermanentError(
                f"risk limits in {settings.risk_limits_parameter} must be a JSON object with keys "
                f"among {sorted(values)}, got {stored!r}"
            )
        values.update(stored)
    try:
        return RiskLimits(**{k: float(v) for k, v in values.items()})
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"invalid risk limits: {exc}") from exc


def close_brokers() -> None:
    """Forget (closing their connections) the container's brokers, equity memory and reservations."""
    for cached in (_paper_account, _live_venue, get_equity_memory, get_reservations):
        cached.cache_clear()
