"""The hard risk gate between every model and every order (docs/decision-cycle.md). Pure: no I/O, no clock.

``gate`` turns a decision into an approved order size (possibly reduced) or a block, with
machine-readable reasons. ``violations`` re-checks a would-be portfolio against every limit; the
gate's own output must never produce one (a property test and the ``risk_violation_not_blocked``
metric guard that promise).

Orders on their way count as if they may fill: every limit is checked against the worst case of the
pending orders (all pending BUYs of an asset fill and none of its SELLs, or the reverse), cash is what is
left after every pending BUY, and a spot SELL can only sell what is held and not already being sold.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import TypeAlias

from ffe.domain.models import Action
from ffe.domain.portfolio import Balance, OrderSide, PendingOrder, Position, ProductRules

ZERO = Decimal(0)
_PLUS, _MINUS = Decimal(1), Decimal(-1)  # a trade's direction

# (bar volatility σ, historical VaR loss quantile as a positive fraction) of a window of returns: ``return_stats``.
ReturnStats: TypeAlias = tuple[float, Decimal]


class RiskReason(StrEnum):
    NO_TRADE = "no_trade"  # the decision was HOLD
    BALANCE_UNKNOWN = "balance_unknown"
    INVALID_INPUT = "invalid_input"  # NaN/negative balance or price, no volatility
    DAILY_LOSS_KILL_SWITCH = "daily_loss_kill_switch"
    DRAWDOWN_KILL_SWITCH = "drawdown_kill_switch"
    NOTHING_TO_SELL = "nothing_to_sell"  # spot venue, no long position
    POSITION_CAP = "position_cap"  # reduced (or blocked) to the per-asset cap
    GROSS_EXPOSURE_CAP = "gross_exposure_cap"
    CASH = "cash"  # reduced to the available balance
    VAR_LIMIT = "var_limit"
    BELOW_MIN_SIZE = "below_min_size"
    ALREADY_ORDERED = "already_ordered"  # this account already has an order for this asset's bar
    # the gate approved an order that breaks a limit (a bug: see ``violations``); the re-check blocked it
    VIOLATION_NOT_BLOCKED = "violation_not_blocked"
    # the bars are not the market (a synthetic series, or replayed history in staging/prod): ffe.stage_data
    NOT_MARKET_DATA = "not_market_data"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Per-stage limits (fractions of equity unless stated); validated when loaded."""

    target_daily_volatility: float = 0.01  # a full-confidence position moves equity ~1 % a day
    max_position_fraction: float = 0.10
    max_gross_exposure: float = 1.0
    daily_loss_limit: float = 0.03
    max_drawdown: float = 0.15
    var_limit: float = 0.02  # 1-bar historical VaR of the position after the trade
    var_confidence: float = 0.95
    bars_per_day: float = 24.0  # to scale bar volatility to a day (24 for 1h bars)

    def __post_init__(self) -> None:
        for name in (
            "target_daily_volatility",
            "max_position_fraction",
            "daily_loss_limit",
            "max_drawdown",
            "var_limit",
        ):
            value = getattr(self, name)
            if not (0 < value < 1):
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        if not 0 < self.max_gross_exposure <= 10:
            raise ValueError(f"max_gross_exposure must be in (0, 10], got {self.max_gross_exposure}")
        if not 0.5 <= self.var_confidence < 1:
            raise ValueError(f"var_confidence must be in [0.5, 1), got {self.var_confidence}")
        if self.bars_per_day <= 0:
            raise ValueError("bars_per_day must be positive")


@dataclass(frozen=True, slots=True)
class Portfolio:
    balance: Balance | None  # None: the read failed. Never replaced by a default.
    positions: Mapping[str, Position]
    prices: Mapping[str, Decimal]  # mark price of every asset held, pending or traded
    day_start_equity: Decimal
    peak_equity: Decimal
    pending: tuple[PendingOrder, ...] = ()  # reserved or open orders of the account, not yet filled

    def held(self, asset: str) -> Decimal:
        position = self.positions.get(asset)
        return ZERO if position is None else position.quantity

    def bounds(self, asset: str) -> tuple[Decimal, Decimal]:
        """(highest, lowest) quantity of ``asset`` once its pending orders fill: all BUYs and no SELL, or the
        reverse."""
        held = self.held(asset)
        if not self.pending:  # the sums below start at ZERO: the same numbers, without walking nothing
            return held + ZERO, held - ZERO
        buys = sum((o.quantity for o in self.pending if o.asset == asset and o.side is OrderSide.BUY), ZERO)
        sells = sum((o.quantity for o in self.pending if o.asset == asset and o.side is OrderSide.SELL), ZERO)
        return held + buys, held - sells

    def worst_notional(self, asset: str) -> Decimal:
        """The largest absolute value ``asset`` can reach as its pending orders fill."""
        high, low = self.bounds(asset)
        return max(abs(high), abs(low)) * self.price(asset)

    def price(self, asset: str) -> Decimal:
        """The mark price, else the position's average price, else the price a pending order was sized at."""
        if asset in self.prices:
            return self.prices[asset]
        if asset in self.positions:
            return self.positions[asset].average_price
        return next((o.price for o in self.pending if o.asset == asset and o.price), ZERO)

    def exposed_assets(self) -> set[str]:
        return set(self.positions) | {o.asset for o in self.pending}

    def committed_cash(self) -> Decimal:
        """What the pending BUYs will cost at the prices they were sized at."""
        if not self.pending:
            return ZERO
        return sum(
            (o.quantity * (o.price or self.price(o.asset)) for o in self.pending if o.side is OrderSide.BUY), ZERO
        )

    def unpriced(self) -> list[str]:
        """Assets held or pending that cannot be valued: no limit can be checked without their price."""
        if not self.pending:
            return sorted(a for a in self.positions if not self.price(a) > 0)
        return sorted(a for a in self.exposed_assets() if not self.price(a) > 0)


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    approved: bool
    side: OrderSide | None
    quantity: Decimal  # base units, rounded to the product's increment; 0 when blocked
    reasons: tuple[RiskReason, ...]
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return not self.approved


def gate(
    action: Action,
    confidence: float,
    asset: str,
    returns: Sequence[float],
    portfolio: Portfolio,
    limits: RiskLimits,
    rules: ProductRules,
    allow_short: bool = False,
) -> RiskVerdict:
    """Size ``action`` for ``asset`` within every limit, or block it with the reasons why."""
    if action is Action.HOLD:
        return _blocked(RiskReason.NO_TRADE)
    stats = return_stats(returns, limits.var_confidence)
    return gate_on_stats(action, confidence, asset, stats, portfolio, limits, rules, allow_short)


def gate_on_stats(
    action: Action,
    confidence: float,
    asset: str,
    stats: ReturnStats | None,
    portfolio: Portfolio,
    limits: RiskLimits,
    rules: ProductRules,
    allow_short: bool = False,
) -> RiskVerdict:
    """``gate`` with the window's ``return_stats`` already computed (the backtester computes every bar's at once,
    ``ffe.backtest.window_stats``); ``gate`` is exactly this after ``return_stats(returns, limits.var_confidence)``.
    """
    if action is Action.HOLD:
        return _blocked(RiskReason.NO_TRADE)
    balance = portfolio.balance
    if balance is None:
        return _blocked(RiskReason.BALANCE_UNKNOWN, detail="the balance could not be read: no new exposure")
    price = portfolio.prices.get(asset)
    problem = _bad_inputs(balance, price, confidence, stats)
    if problem or price is None or stats is None:
        return _blocked(RiskReason.INVALID_INPUT, detail=problem)
    if unpriced := portfolio.unpriced():
        return _blocked(RiskReason.INVALID_INPUT, detail=f"no price for the held or pending {', '.join(unpriced)}")
    sigma_bar, loss_quantile = stats
    equity = balance.equity
    if killed := _kill_switch(equity, portfolio, limits):
        return killed

    side = OrderSide.BUY if action is Action.BUY else OrderSide.SELL
    sign = _PLUS if side is OrderSide.BUY else _MINUS
    high, low = portfolio.bounds(asset)
    held = high if side is OrderSide.BUY else low  # the quantity this trade adds to, if its direction fills
    sigma_day = sigma_bar * math.sqrt(limits.bars_per_day)
    wanted_notional = equity * Decimal(limits.target_daily_volatility / sigma_day * confidence)
    quantity = wanted_notional / price
    if _sells_nothing(side, held, allow_short) and _sizes_to_nothing(rules, loss_quantile):
        # What the sizing below returns for this order, without it: the last cap (nothing to sell, max(held, 0))
        # takes the quantity to 0, which is below the venue's minimum (tests/unit/domain/test_risk.py compares both).
        return _blocked(RiskReason.NOTHING_TO_SELL, detail=f"no {asset} position to sell on a spot venue")
    reasons: list[RiskReason] = []

    caps = _caps(asset, held, sign, price, equity, portfolio, limits, loss_quantile, balance, allow_short)
    for reason, cap in caps:
        if cap < quantity:
            quantity, reasons = max(cap, ZERO), [*reasons, reason]
    quantity = (quantity / rules.size_increment).to_integral_value(rounding=ROUND_DOWN) * rules.size_increment
    if quantity <= 0 and not reasons:
        reasons.append(RiskReason.BELOW_MIN_SIZE)
    if quantity < rules.min_size or quantity * price < rules.min_notional:
        if side is OrderSide.SELL and not allow_short and held <= 0:
            return _blocked(RiskReason.NOTHING_TO_SELL, detail=f"no {asset} position to sell on a spot venue")
        return _blocked(
            *(reasons or [RiskReason.BELOW_MIN_SIZE]),
            RiskReason.BELOW_MIN_SIZE,
            detail=f"{quantity} < min {rules.min_size}",
        )
    return RiskVerdict(True, side, quantity, tuple(reasons), {"sigma_day": f"{sigma_day:.6f}"})


def gate_one_asset(
    action: Action,
    confidence: float,
    asset: str,
    stats: ReturnStats | None,
    equity: Decimal,
    available: Decimal,
    held: Decimal,
    average_price: Decimal,
    price: Decimal,
    day_start_equity: Decimal,
    peak_equity: Decimal,
    limits: RiskLimits,
    rules: ProductRules,
) -> RiskVerdict:
    """``gate_on_stats`` for an account that holds ``held`` of ``asset`` only, marked at ``price``, with no
    pending order and no shorting: the backtester's account. The same verdict, field for field, as
    ``gate_on_stats(action, confidence, asset, stats, Portfolio(Balance("USD", equity, available),
    {asset: Position(asset, held, average_price)} if held else {}, {asset: price}, day_start_equity, peak_equity),
    limits, rules)`` (tests/unit/domain/test_risk.py over random accounts, tests/unit/backtest/test_account_gate.py
    on every bar the bundled backtests gate), without building that portfolio: the same Decimal operations on the
    same operands in the same order, with the portfolio's sums over no other asset and no pending order (each
    ``ZERO``) kept as the operations they are. Inputs the gate refuses go through ``gate_on_stats`` itself.
    """
    if not (
        action is not Action.HOLD
        and stats is not None
        and equity.is_finite()
        and available.is_finite()
        and price.is_finite()
        and equity > 0
        and available >= 0
        and price > 0  # so no held or pending asset is unpriced
        and 0 < confidence <= 1  # False for NaN
    ):
        positions = {asset: Position(asset, held, average_price)} if held else {}
        book = Portfolio(Balance("USD", equity, available), positions, {asset: price}, day_start_equity, peak_equity)
        return gate_on_stats(action, confidence, asset, stats, book, limits, rules)
    if equity <= day_start_equity * _kept(limits.daily_loss_limit):
        return _blocked(RiskReason.DAILY_LOSS_KILL_SWITCH, detail=f"equity {equity}, day start {day_start_equity}")
    if equity <= peak_equity * _kept(limits.max_drawdown):
        return _blocked(RiskReason.DRAWDOWN_KILL_SWITCH, detail=f"equity {equity}, peak {peak_equity}")
    sigma_bar, loss_quantile = stats
    base = held if held else ZERO  # Portfolio.held: the position's quantity, ZERO without a position
    if action is Action.BUY:
        side, sign, held = OrderSide.BUY, _PLUS, base + ZERO  # Portfolio.bounds' high without pending orders
    else:
        side, sign, held = OrderSide.SELL, _MINUS, base - ZERO  # and its low
    sigma_day = sigma_bar * math.sqrt(limits.bars_per_day)
    wanted_notional = equity * Decimal(limits.target_daily_volatility / sigma_day * confidence)
    quantity = wanted_notional / price
    if side is OrderSide.SELL and held <= 0 and _sizes_to_nothing(rules, loss_quantile):
        return _blocked(RiskReason.NOTHING_TO_SELL, detail=f"no {asset} position to sell on a spot venue")
    # _caps, in its order; other_gross and committed_cash are sums over nothing, ZERO.
    signed = sign * held
    position_cap = equity * _d(limits.max_position_fraction) / price - signed
    gross_room = equity * _d(limits.max_gross_exposure) - ZERO
    gross_cap = max(gross_room, ZERO) / price - signed
    var_cap = equity * _d(limits.var_limit) / (loss_quantile * price) - signed
    last = (RiskReason.CASH, (available - ZERO) / price) if sign > 0 else (RiskReason.NOTHING_TO_SELL, max(held, ZERO))
    reasons: list[RiskReason] = []
    for reason, cap in (
        (RiskReason.POSITION_CAP, position_cap),
        (RiskReason.GROSS_EXPOSURE_CAP, gross_cap),
        (RiskReason.VAR_LIMIT, var_cap),
        last,
    ):
        if cap < quantity:
            quantity = max(cap, ZERO)
            reasons.append(reason)
    quantity = (quantity / rules.size_increment).to_integral_value(rounding=ROUND_DOWN) * rules.size_increment
    if quantity <= 0 and not reasons:
        reasons.append(RiskReason.BELOW_MIN_SIZE)
    if quantity < rules.min_size or quantity * price < rules.min_notional:
        if side is OrderSide.SELL and held <= 0:
            return _blocked(RiskReason.NOTHING_TO_SELL, detail=f"no {asset} position to sell on a spot venue")
        return _blocked(
            *(reasons or [RiskReason.BELOW_MIN_SIZE]),
            RiskReason.BELOW_MIN_SIZE,
            detail=f"{quantity} < min {rules.min_size}",
        )
    return RiskVerdict(True, side, quantity, tuple(reasons), {"sigma_day": f"{sigma_day:.6f}"})


def _kill_switch(equity: Decimal, portfolio: Portfolio, limits: RiskLimits) -> RiskVerdict | None:
    """The block of the first kill switch that is on (daily loss, then drawdown), or None."""
    if equity <= portfolio.day_start_equity * _kept(limits.daily_loss_limit):
        return _blocked(
            RiskReason.DAILY_LOSS_KILL_SWITCH, detail=f"equity {equity}, day start {portfolio.day_start_equity}"
        )
    if equity <= portfolio.peak_equity * _kept(limits.max_drawdown):
        return _blocked(RiskReason.DRAWDOWN_KILL_SWITCH, detail=f"equity {equity}, peak {portfolio.peak_equity}")
    return None


def _caps(
    asset: str,
    held: Decimal,
    sign: Decimal,
    price: Decimal,
    equity: Decimal,
    portfolio: Portfolio,
    limits: RiskLimits,
    loss_quantile: Decimal,
    balance: Balance,
    allow_short: bool,
) -> list[tuple[RiskReason, Decimal]]:
    """The most each limit lets this trade be, in base units (same direction as ``sign``)."""
    cap_notional = equity * _d(limits.max_position_fraction)
    # per-asset: |held + sign*q| * price <= cap  ->  q <= cap/price - sign*held
    position_cap = cap_notional / price - sign * held
    other_gross = sum((portfolio.worst_notional(a) for a in portfolio.exposed_assets() if a != asset), ZERO)
    gross_room = equity * _d(limits.max_gross_exposure) - other_gross
    gross_cap = max(gross_room, ZERO) / price - sign * held
    var_cap = equity * _d(limits.var_limit) / (loss_quantile * price) - sign * held
    caps = [
        (RiskReason.POSITION_CAP, position_cap),
        (RiskReason.GROSS_EXPOSURE_CAP, gross_cap),
        (RiskReason.VAR_LIMIT, var_cap),
    ]
    if sign > 0:
        caps.append((RiskReason.CASH, (balance.available - portfolio.committed_cash()) / price))
    elif not allow_short:
        caps.append((RiskReason.NOTHING_TO_SELL, max(held, ZERO)))
    return caps


def violations(
    asset: str,
    side: OrderSide,
    quantity: Decimal,
    portfolio: Portfolio,
    limits: RiskLimits,
    rules: ProductRules,
    returns: Sequence[float],
    allow_short: bool = False,
) -> list[str]:
    """Every limit the portfolio would break after the order (empty when the order is within limits).

    Computed on its own from the positions and the raw list of pending orders (not through the helpers the
    gate sizes with), so that a sizing bug that forgets an order on its way is caught here.
    """
    balance = portfolio.balance
    price = portfolio.prices.get(asset)
    if balance is None or price is None:
        return ["order without a known balance or price"]
    order = PendingOrder("(this order)", asset, side, quantity, price)
    before, after = _reach(portfolio, portfolio.pending), _reach(portfolio, (*portfolio.pending, order))
    grows = after[asset] > before.get(asset, ZERO)  # new exposure, not a reduction
    equity = balance.equity
    tolerance = Decimal("1e-9") * equity
    found: list[str] = []
    if grows and after[asset] * price > equity * _d(limits.max_position_fraction) + tolerance:
        found.append("position cap")
    gross = sum((reach * (price if a == asset else portfolio.price(a)) for a, reach in after.items()), ZERO)
    if grows and gross > equity * _d(limits.max_gross_exposure) + tolerance:
        found.append("gross exposure cap")
    stats = return_stats(returns, limits.var_confidence)
    loss_quantile = stats[1] if stats else Decimal(0)
    if grows and after[asset] * price * loss_quantile > equity * _d(limits.var_limit) + tolerance:
        found.append("VaR limit")
    orders = (order, *portfolio.pending)
    spend = sum((o.quantity * (o.price or portfolio.price(o.asset)) for o in orders if o.side is OrderSide.BUY), ZERO)
    if side is OrderSide.BUY and spend > balance.available + tolerance:
        found.append("more than the available balance")
    sold = sum((o.quantity for o in orders if o.asset == asset and o.side is OrderSide.SELL), ZERO)
    if side is OrderSide.SELL and not allow_short and portfolio.held(asset) - sold < 0:
        found.append("short on a spot venue")
    if quantity < rules.min_size or quantity % rules.size_increment != 0:
        found.append("size below the venue minimum or off its increment")
    if grows and (
        equity <= portfolio.day_start_equity * (1 - _d(limits.daily_loss_limit))
        or equity <= portfolio.peak_equity * (1 - _d(limits.max_drawdown))
    ):
        found.append("new exposure while a kill switch is on")
    return found


def _reach(portfolio: Portfolio, pending: Sequence[PendingOrder]) -> dict[str, Decimal]:
    """Per asset, the largest absolute quantity it reaches when either all its BUYs or all its SELLs fill."""
    up: dict[str, Decimal] = {a: p.quantity for a, p in portfolio.positions.items()}
    down = dict(up)
    for o in pending:
        book = up if o.side is OrderSide.BUY else down
        book[o.asset] = book.get(o.asset, ZERO) + (o.quantity if o.side is OrderSide.BUY else -o.quantity)
    return {a: max(abs(up.get(a, ZERO)), abs(down.get(a, ZERO))) for a in up.keys() | down.keys()}


def _sells_nothing(side: OrderSide, held: Decimal, allow_short: bool) -> bool:
    """A spot SELL with nothing left to sell once the pending SELLs fill (``held``: the low bound)."""
    return side is OrderSide.SELL and not allow_short and held <= 0


def _sizes_to_nothing(rules: ProductRules, loss_quantile: Decimal) -> bool:
    """Whether a quantity of 0 is refused by the venue and the sizing's arithmetic cannot raise on the way there
    (a positive increment to round to, a positive loss quantile to divide by): then a spot SELL of nothing held
    ends in ``NOTHING_TO_SELL`` whatever the other caps say."""
    return rules.size_increment > 0 and loss_quantile > 0 and (rules.min_size > 0 or rules.min_notional > 0)


@functools.lru_cache(maxsize=64)
def _kept(fraction: float) -> Decimal:
    """``1 - _d(fraction)``: what a kill switch lets equity fall to, as a fraction of its reference."""
    return 1 - _d(fraction)


@functools.lru_cache(maxsize=64)
def _d(fraction: float) -> Decimal:
    """A configured fraction as the Decimal it was written as (0.03, not 0.0299999...)."""
    return Decimal(str(fraction))


def return_stats(returns: Sequence[float], var_confidence: float) -> ReturnStats | None:
    """(bar volatility, historical VaR loss quantile as a positive fraction), or None when unusable.

    σ is the population standard deviation with both sums correctly rounded (``math.fsum``) and each squared
    deviation a plain product, ``d * d``, correctly rounded by IEEE 754 on every platform (the former ``d ** 2``
    went through the platform's libm ``pow``, which may round a square the other way). σ agrees with the former
    arithmetic within two units in the last place (tests/unit/domain/test_risk.py). The loss quantile is the
    ``var_index``-th smallest return. ``ffe.backtest.window_stats`` computes the same numbers for every window of
    a series at once, bit for bit (tests/unit/backtest/test_window_stats.py).
    """
    n = len(returns)
    if n < 20 or not all(map(math.isfinite, returns)):
        return None
    mean = math.fsum(returns) / n
    deviations = [r - mean for r in returns]
    sigma = math.sqrt(math.fsum(map(operator.mul, deviations, deviations)) / n)
    if sigma == 0:
        return None
    worst = sorted(returns)[var_index(n, var_confidence)]
    return sigma, Decimal(max(-worst, 1e-12))


def var_index(n: int, var_confidence: float) -> int:
    """Where the historical VaR's loss sits in ``n`` returns sorted ascending."""
    return min(n - 1, int((1 - var_confidence) * n))


def _bad_inputs(balance: Balance, price: Decimal | None, confidence: float, stats: ReturnStats | None) -> str:
    if not balance.equity.is_finite() or not balance.available.is_finite():
        return "balance is not a finite number"
    if balance.equity <= 0 or balance.available < 0:
        return f"balance must be positive (equity {balance.equity}, available {balance.available})"
    if price is None or not price.is_finite() or price <= 0:
        return f"no valid price ({price})"
    if not 0 < confidence <= 1 or math.isnan(confidence):
        return f"confidence must be in (0, 1], got {confidence}"
    if stats is None:
        return "not enough finite, non-constant returns to measure volatility and VaR"
    return ""


def _blocked(*reasons: RiskReason, detail: str = "") -> RiskVerdict:
    return RiskVerdict(False, None, ZERO, tuple(dict.fromkeys(reasons)), {"why": detail} if detail else {})
