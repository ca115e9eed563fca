"""The paper venue's terms and fill rule, pure: the paper broker books it in PostgreSQL, the backtester in memory.

An order fills at the open of the first bar that opens at or after it, moved against the order by the
slippage fraction; the fee is a fraction of the filled notional. A BUY whose notional plus fee exceeds the
cash is rejected. Averages follow the usual cost-basis rule: adding re-averages, reducing keeps the basis,
opening or flipping through zero starts at the fill price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ffe.domain.models import AssetClass
from ffe.domain.portfolio import OrderSide, ProductRules

ZERO = Decimal(0)
D = Decimal

# The paper venue's defaults: starting cash in the account currency, a 10 bp fee and 5 bp slippage.
STARTING_CASH, FEE_RATE, SLIPPAGE = D("100000"), D("0.001"), D("0.0005")

# Conservative venue-like minimums for paper trading (crypto in coins, FX in units, equities in shares):
# (minimum size, size increment).
DEFAULT_RULES = {
    AssetClass.CRYPTO: (D("0.0001"), D("0.00000001")),
    AssetClass.FX: (D("1"), D("1")),
    AssetClass.EQUITY: (D("1"), D("1")),
}


def paper_rules(asset: str, asset_class: AssetClass) -> ProductRules:
    """The paper venue's product rules for ``asset``."""
    min_size, increment = DEFAULT_RULES[asset_class]
    return ProductRules(asset, min_size, increment)


@dataclass(frozen=True, slots=True)
class Fill:
    price: Decimal  # the open, moved against the order by the slippage
    notional: Decimal  # quantity * price
    fee: Decimal
    cash_out: Decimal  # what leaves the cash: sign * notional + fee (negative for a sale)
    quantity: Decimal  # the position after the fill (negative = short)
    average_price: Decimal  # its cost basis (0 when flat)
    closed: Decimal = ZERO  # how much of the old position this fill closed (0: it opened or added)
    realised: Decimal = ZERO  # the P&L of that closed part, before fees


@dataclass(frozen=True, slots=True)
class Rejection:
    detail: str


def fill_price(open_price: Decimal, side: OrderSide, slippage: Decimal) -> Decimal:
    """The bar's open moved against the order: up for a BUY, down for a SELL."""
    sign = Decimal(1) if side is OrderSide.BUY else Decimal(-1)
    return open_price * (1 + sign * slippage)


def apply_fill(
    side: OrderSide,
    quantity: Decimal,
    open_price: Decimal,
    cash: Decimal,
    held: Decimal,
    average: Decimal,
    fee_rate: Decimal,
    slippage: Decimal,
) -> Fill | Rejection:
    """Fill ``quantity`` at ``open_price`` against a book of ``cash`` and ``held`` units at ``average``."""
    sign = Decimal(1) if side is OrderSide.BUY else Decimal(-1)
    price = fill_price(open_price, side, slippage)
    notional = quantity * price
    fee = notional * fee_rate
    if side is OrderSide.BUY and notional + fee > cash:
        return Rejection(f"insufficient cash: {notional + fee} needed, {cash} available")
    new_qty = held + sign * quantity
    if new_qty == 0:
        new_avg = ZERO
    elif held == 0 or (held > 0) != (new_qty > 0):
        new_avg = price  # opened, or flipped through zero
    elif abs(new_qty) > abs(held):
        new_avg = (held * average + sign * quantity * price) / new_qty  # added to the position
    else:
        new_avg = average  # reduced: the cost basis of what is left is unchanged
    closed = min(quantity, abs(held)) if held != 0 and (held > 0) != (sign > 0) else ZERO
    realised = closed * (price - average) * (1 if held > 0 else -1)  # a long gains when it sells higher
    return Fill(price, notional, fee, sign * notional + fee, new_qty, new_avg, closed, realised)
