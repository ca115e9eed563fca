"""The paper venue's fill rule (shared by the paper broker and the backtester), against hand arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ffe.domain.fills import Fill, Rejection, apply_fill, fill_price
from ffe.domain.portfolio import OrderSide

D = Decimal
FEE, SLIP = D("0.001"), D("0.0005")


def test_a_buy_fills_above_the_open_and_pays_the_fee() -> None:
    # 0.1 BTC at an open of 50,000: 50,000 * 1.0005 = 50,025; fee 0.1 % of 5,002.5 = 5.0025
    fill = apply_fill(OrderSide.BUY, D("0.1"), D("50000"), D("10000"), D(0), D(0), FEE, SLIP)
    assert fill == Fill(
        D("50025.0000"), D("5002.50000"), D("5.00250000000"), D("5007.50250000000"), D("0.1"), D("50025.0000")
    )


def test_a_sell_fills_below_the_open_and_closing_resets_the_basis() -> None:
    fill = apply_fill(OrderSide.SELL, D("0.1"), D("51000"), D("4992.4975"), D("0.1"), D("50025"), FEE, SLIP)
    assert isinstance(fill, Fill)
    assert fill.price == D("50974.5") and fill.fee == D("5.09745")
    assert fill.cash_out == D("-5092.35255")  # cash rises by the proceeds less the fee
    assert (fill.quantity, fill.average_price) == (0, 0)


@pytest.mark.parametrize(
    ("side", "held", "average", "quantity", "expected_avg"),
    [
        (OrderSide.BUY, D("1"), D("100"), D("1"), (D("100") + D("200") * (1 + SLIP)) / 2),  # adding re-averages
        (OrderSide.SELL, D("2"), D("100"), D("1"), D("100")),  # reducing keeps the basis
        (OrderSide.SELL, D("1"), D("100"), D("3"), D("200") * (1 - SLIP)),  # flipping starts at the fill
    ],
)
def test_average_price_follows_the_cost_basis_rule(
    side: OrderSide, held: Decimal, average: Decimal, quantity: Decimal, expected_avg: Decimal
) -> None:
    fill = apply_fill(side, quantity, D("200"), D("1000000"), held, average, FEE, SLIP)
    assert isinstance(fill, Fill) and fill.average_price == expected_avg


def test_a_buy_beyond_the_cash_is_rejected() -> None:
    outcome = apply_fill(OrderSide.BUY, D("1"), D("1000"), D("1000"), D(0), D(0), FEE, SLIP)
    assert isinstance(outcome, Rejection) and "insufficient cash" in outcome.detail
    assert fill_price(D("1000"), OrderSide.SELL, SLIP) == D("999.5")


@pytest.mark.parametrize(
    ("side", "held", "average", "quantity", "closed", "realised"),
    [
        (OrderSide.SELL, D("2"), D("100"), D("1"), D("1"), D("1") * (D("110") * (1 - SLIP) - 100)),  # long reduced
        (OrderSide.BUY, D("-1"), D("120"), D("3"), D("1"), D("120") - D("110") * (1 + SLIP)),  # short flipped
        (OrderSide.BUY, D("1"), D("100"), D("1"), D("0"), D("0")),  # added: nothing realised
    ],
)
def test_a_fill_that_closes_part_of_a_position_realises_its_pnl(
    side, held, average, quantity, closed, realised
) -> None:
    fill = apply_fill(side, quantity, D("110"), D("100000"), held, average, FEE, SLIP)
    assert isinstance(fill, Fill)
    assert (fill.closed, fill.realised) == (closed, realised)
