"""GateRisk: the hard gate between the model and any order. A blocked decision becomes a HOLD that keeps
the model's call and the reasons; an approved one carries its size and reserves it.

Sizing and reserving happen under the venue account's lock (``Reservations.account``): the gate counts
every order already on its way (reserved by an earlier gate, or open at the venue) as if it may fill, and
an approval spends its headroom before the lock is let go, so two gates on one account can never both
spend the same room. One live order per account, asset and bar: a second decision on the same bar is a
HOLD that says so, and a retried gate gets its own first verdict back.

Under the lock the gate first has the broker settle the asset's newest bars (``Broker.settle``): the paper
venue fills its pending orders of the asset there and marks its position, so the gate sizes on the account as
those bars left it; a live venue settles itself and its ``settle`` does nothing.
"""

from __future__ import annotations

import decimal
import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal

from ffe.contracts import DecisionRecord, GateRiskInput, RiskAssessment
from ffe.domain.errors import AuthError, InvalidInputError
from ffe.domain.models import Action
from ffe.domain.portfolio import OrderSide, client_order_id
from ffe.domain.ports import AccountBook, Broker, EquityMemory, Reservation, Reservations
from ffe.domain.risk import Portfolio, RiskLimits, RiskReason, RiskVerdict, gate, violations
from ffe.stage_data import unfit_for_orders

ViolationAlarm = Callable[[str, list[str]], None]


def gate_risk(
    inp: GateRiskInput,
    broker: Broker,
    limits: RiskLimits,
    alarm: ViolationAlarm,
    reservations: Reservations,
    memory: EquityMemory | None = None,
    stage: str = "local",
    in_lambda: bool = False,
) -> DecisionRecord:
    """Size the decision within every limit and reserve it, or turn it into a HOLD that says why.

    Bars that are not the market in ``stage`` (``ffe.stage_data.unfit_for_orders``: a synthetic series in a
    deployed function, replayed history in staging and prod) are a HOLD ``not_market_data`` before anything else.

    Raises:
        InvalidInputError: prices the gate cannot size with (e.g. around 1e-300), naming the asset.
    """
    decision = inp.decision
    if decision.action is Action.HOLD:
        return decision
    why_not = unfit_for_orders(inp.source, stage, in_lambda)
    if why_not is not None:
        return _outcome(decision, _refused(decision, broker.name, RiskReason.NOT_MARKET_DATA, why_not))
    closes = inp.bars.close  # read as columns: a Bar is built only where the broker reads one (settle)
    limits = replace(limits, bars_per_day=inp.timeframe.bars_per_day)  # a daily bar's volatility is a day's
    price = Decimal(repr(closes[-1]))
    returns = [math.log(b / a) for a, b in itertools.pairwise(closes)]
    order_id = client_order_id(inp.cycle_id, inp.asset, decision.bar_time)
    with reservations.account(broker.account_id) as book:
        broker.settle(
            inp.asset, inp.bars.lazy()
        )  # paper: fill this asset's pending orders at these bars first; live: no-op
        prior = book.live_for_bar(inp.asset, decision.bar_time)
        if prior is not None:
            return _again(decision, prior, order_id)
        portfolio = _portfolio(broker, inp.asset, price, inp.as_of.date(), memory, book)
        rules = broker.product_rules(inp.asset, inp.asset_class)
        try:
            verdict = gate(decision.action, decision.confidence, inp.asset, returns, portfolio, limits, rules)
            broken = (
                violations(inp.asset, verdict.side, verdict.quantity, portfolio, limits, rules, returns)
                if verdict.approved and verdict.side is not None
                else []
            )
        except (decimal.DecimalException, OverflowError, ZeroDivisionError) as exc:
            raise InvalidInputError(
                f"{inp.asset}: cannot size an order at a price of {price} ({type(exc).__name__}); the bars' prices "
                "are outside what the gate can compute with",
                asset=inp.asset,
            ) from exc
        if broken:  # cannot happen (a property test says so); if it ever does, block and report it through `alarm`
            alarm(inp.asset, broken)
            reasons = (*verdict.reasons, RiskReason.VIOLATION_NOT_BLOCKED)  # a risk_events row: experiments judge it
            verdict = RiskVerdict(False, None, Decimal(0), reasons, {"violations": ", ".join(broken)})
        assessment = _assessment(verdict, broker, portfolio, decision)
        if verdict.approved and verdict.side is not None:
            book.reserve(
                Reservation(
                    order_id,
                    inp.asset,
                    decision.bar_time,
                    verdict.side,
                    verdict.quantity,
                    price,
                    inp.cycle_id,
                    assessment.model_dump(mode="json"),
                )
            )
    return _outcome(decision, assessment)


def _again(decision: DecisionRecord, prior: Reservation, order_id: str) -> DecisionRecord:
    """A bar that already has a live order: this decision's own (a retried gate gets its verdict back), or
    another cycle's (a HOLD that says so, never a second order)."""
    side = OrderSide.BUY if decision.action is Action.BUY else OrderSide.SELL
    if prior.client_order_id == order_id and prior.side is side:
        return _outcome(decision, RiskAssessment.model_validate(prior.assessment))
    bar = prior.bar_time.isoformat() if prior.bar_time else "(no bar)"
    why = (
        f"{prior.asset} already has a live {prior.side} order for the bar of {bar} on this account (order "
        f"{prior.client_order_id}, cycle {prior.cycle_id}): one order per account, asset and bar"
    )
    assessment = RiskAssessment(
        approved=False,
        side=None,
        quantity=Decimal(0),
        reasons=[RiskReason.ALREADY_ORDERED],
        detail={"why": why},
        broker=str(prior.assessment.get("broker", "?")),
        equity=None,
        original_action=decision.action,
        original_confidence=decision.confidence,
    )
    return _outcome(decision, assessment)


def _refused(decision: DecisionRecord, broker: str, reason: RiskReason, why: str) -> RiskAssessment:
    return RiskAssessment(
        approved=False,
        side=None,
        quantity=Decimal(0),
        reasons=[reason],
        detail={"why": why},
        broker=broker,
        equity=None,
        original_action=decision.action,
        original_confidence=decision.confidence,
    )


def _assessment(verdict: RiskVerdict, broker: Broker, portfolio: Portfolio, decision: DecisionRecord) -> RiskAssessment:
    return RiskAssessment(
        approved=verdict.approved,
        side=verdict.side.value if verdict.side else None,
        quantity=verdict.quantity,
        reasons=[str(r) for r in verdict.reasons],
        detail=verdict.detail,
        broker=broker.name,
        equity=portfolio.balance.equity if portfolio.balance else None,
        original_action=decision.action,
        original_confidence=decision.confidence,
    )


def _outcome(decision: DecisionRecord, assessment: RiskAssessment) -> DecisionRecord:
    if assessment.approved:
        return decision.model_copy(update={"risk": assessment, "size": float(assessment.quantity)})
    why = ", ".join(assessment.reasons) or "blocked"
    return decision.model_copy(
        update={
            "action": Action.HOLD,
            "confidence": 1.0,
            "risk": assessment,
            "size": None,
            "reason": f"risk gate blocked {decision.action}: {why}; model: {decision.reason}"[:2000],
        }
    )


def _portfolio(
    broker: Broker, asset: str, price: Decimal, day: date, memory: EquityMemory | None, book: AccountBook
) -> Portfolio:
    """The venue's account as the gate sees it, with every order on its way: the reservations, then the venue's
    open orders (read in that order, and before the positions, so an order that moves on in between is counted
    twice, never missed). An open order without a price of its own is valued at what its reservation was sized
    at. A balance or an order book that cannot be read is None, never a default: the gate then blocks."""
    reserved = book.reserved()
    try:
        open_orders = broker.open_orders()
        balance, held = broker.account()
        positions = {p.asset: p for p in held}
    except (AuthError, InvalidInputError):
        balance, positions, open_orders = None, {}, []
    mine = {o.client_order_id for o in reserved}
    at_venue = [o for o in open_orders if o.client_order_id not in mine]
    sized_at = book.prices([o.client_order_id for o in at_venue if not o.price])
    pending = (*reserved, *(o if o.price else replace(o, price=sized_at.get(o.client_order_id)) for o in at_venue))
    prices = {o.asset: o.price for o in pending if o.price} | {a: p.average_price for a, p in positions.items()}
    prices[asset] = price
    equity = balance.equity if balance else Decimal(0)
    day_start, peak = equity, equity
    if memory is not None and balance is not None:  # the account's remembered start-of-day and peak equity
        day_start, peak = memory.marks(broker.account_id, day, equity)
    return Portfolio(balance, positions, prices, day_start_equity=day_start, peak_equity=peak, pending=pending)
