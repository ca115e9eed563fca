"""Annualization: bars per year by asset class and timeframe, shared by training and the backtester."""

from __future__ import annotations

import pytest

from ffe.domain.models import AssetClass, Timeframe
from ffe.domain.performance import periods_per_year
from ffe.domain.universe import asset_class_of


@pytest.mark.parametrize(
    ("asset_class", "timeframe", "expected"),
    [
        (AssetClass.CRYPTO, Timeframe.H1, 24 * 365),
        (asset_class_of("BTCUSD"), Timeframe.H1, 24 * 365),
        (AssetClass.FX, Timeframe.H1, 24 * 260),
        (asset_class_of("EURUSD"), Timeframe.H1, 24 * 260),
        (AssetClass.EQUITY, Timeframe.D1, 252),
        (asset_class_of("SPX"), Timeframe.D1, 252),
        (AssetClass.CRYPTO, Timeframe.D1, 365),
        (AssetClass.EQUITY, Timeframe.H1, 7 * 252),
    ],
)
def test_periods_per_year_by_asset_class_and_timeframe(
    asset_class: AssetClass, timeframe: Timeframe, expected: int
) -> None:
    assert periods_per_year(asset_class, timeframe) == expected
