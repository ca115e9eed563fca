"""GateRisk: the hard gate between the model and any order. A blocked decision becomes a HOLD that keeps
the model's call and the reasons; an approved one carries its size."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from ffe.adapters.equity_marks import EquityMemory
from ffe.contracts import DecisionRecord, GateRiskInput, RiskAssessment
from ffe.domain.errors import AuthError, InvalidInputError
from ffe.domain.models import Action
from ffe.domain.risk import Portfolio, RiskLimits, RiskVerdict, gate, violations

if TYPE_CHECKING:
    from ffe.domain.portfolio import Broker

ViolationAlarm = Callable[[str, list[str]], None]


def gate_risk(
    inp: GateRiskInput,
    broker: Broker,
    limits: RiskLimits,
    alarm: ViolationAlarm,
    memory: EquityMemory | None = None,
) -> DecisionRecord:
    """Size the decision within every limit, or turn it into a HOLD that says why."""
    decision = inp.decision
    if decision.action is Action.HOLD:
        return decision
    bars = inp.domain_bars()
    limits = replace(limits, bars_per_day=inp.timeframe.bars_per_day)  # a daily bar's volatility is a day's
    settle = getattr(broker, "settle", None)
    if settle is not None:  # the paper venue fills its pending orders at this asset's newest bars first
        settle(inp.asset, bars)
    price = Decimal(repr(bars[-1].close))
    returns = [math.log(b.close / a.close) for a, b in zip(bars, bars[1:], strict=False)]
    portfolio = _portfolio(broker, inp.asset, price, inp.as_of.date(), memory)
    rules = broker.product_rules(inp.asset)
    verdict = gate(decision.action, decision.confidence, inp.asset, returns, portfolio, limits, rules)
    if verdict.approved and verdict.side is not None:
        broken = violations(inp.asset, verdict.side, verdict.quantity, portfolio, limits, rules, returns)
        if broken:  # cannot happen (a property test says so); if it ever does, block and raise the alarm
            alarm(inp.asset, broken)
            verdict = RiskVerdict(False, None, Decimal(0), verdict.reasons, {"violations": ", ".join(broken)})
    assessment = RiskAssessment(
        approved=verdict.approved, side=verdict.side.value if verdict.side else None, quantity=verdict.quantity,
        reasons=[str(r) for r in verdict.reasons], detail=verdict.detail, broker=broker.name,
        equity=portfolio.balance.equity if portfolio.balance else None, original_action=decision.action,
    )  # fmt: skip
    if verdict.approved:
        return decision.model_copy(update={"risk": assessment, "size": float(verdict.quantity)})
    why = ", ".join(assessment.reasons) or "blocked"
    return decision.model_copy(update={
        "action": Action.HOLD, "confidence": 1.0, "risk": assessment, "size": None,
        "reason": f"risk gate blocked {decision.action}: {why}; model: {decision.reason}"[:2000],
    })  # fmt: skip


def _portfolio(broker: Broker, asset: str, price: Decimal, day: date, memory: EquityMemory | None) -> Portfolio:
    """The venue's account (one read) as the gate sees it; a balance that cannot be read is None, never a default."""
    try:
        balance, held = broker.account()
        positions = {p.asset: p for p in held}
    except (AuthError, InvalidInputError):
        balance, positions = None, {}
    prices = {a: p.average_price for a, p in positions.items()} | {asset: price}
    equity = balance.equity if balance else Decimal(0)
    day_start, peak = equity, equity
    if memory is not None and balance is not None:  # the account's remembered start-of-day and peak equity
        day_start, peak = memory.marks(getattr(broker, "account_id", broker.name), day, equity)
    return Portfolio(balance, positions, prices, day_start_equity=day_start, peak_equity=peak)
