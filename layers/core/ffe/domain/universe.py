"""The tradable universe: which symbols the engine knows and what class each belongs to."""

from ffe.domain.errors import InvalidInputError
from ffe.domain.models import AssetClass

ASSET_CLASSES: dict[str, AssetClass] = {
    "BTCUSD": AssetClass.CRYPTO,
    "ETHUSD": AssetClass.CRYPTO,
    "LTCUSD": AssetClass.CRYPTO,  # bundled hourly history (ffe/data/bars/SOURCES.md)
    "XRPUSD": AssetClass.CRYPTO,  # bundled hourly history
    "EURUSD": AssetClass.FX,
    "GBPUSD": AssetClass.FX,
    "USDJPY": AssetClass.FX,
    "SPY": AssetClass.EQUITY,
    "AAPL": AssetClass.EQUITY,
    "MSFT": AssetClass.EQUITY,  # also bundled daily history
    "SPX": AssetClass.EQUITY,  # the S&P 500 index: bundled daily history for training and backtests
    "IXIC": AssetClass.EQUITY,  # the NASDAQ Composite index: bundled daily history, as SPX
}

DEFAULT_UNIVERSE: tuple[str, ...] = ("BTCUSD", "ETHUSD", "EURUSD", "GBPUSD")


def asset_class_of(symbol: str) -> AssetClass:
    """The asset class of a known symbol.

    Raises:
        InvalidInputError: the symbol is not in the universe.
    """
    try:
        return ASSET_CLASSES[symbol]
    except KeyError:
        known = ", ".join(sorted(ASSET_CLASSES))
        raise InvalidInputError(f"unknown asset {symbol!r}; known assets: {known}") from None


def class_of(symbol: str, given: AssetClass | None = None) -> AssetClass:
    """The asset's class: the one its universe file gives (``given``), else the built-in table's.

    Raises:
        InvalidInputError: no class given and the symbol is not in the built-in table.
    """
    return given if given is not None else asset_class_of(symbol)
