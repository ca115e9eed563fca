"""The backtester: the DecisionCycle's own domain functions replayed over a whole series, bar by bar.

Execution model
---------------
**Decision at bar t.** What the cycle decides with ``as_of`` = the close of bar ``t`` (its open time plus the
timeframe) after fetching the last ``lookback_bars`` bars (120, as FetchMarketData does):

* *Staleness* (CheckStaleness): in a replay the last bar has just closed, so the data is fresh unless the
  window is shorter than ``StrategyParams.min_bars`` (the first 50 bars of a series): HOLD, confidence 1.
* *Regime* (DetectRegime): the posterior of feature row ``t`` under the champion's mixture for the asset
  class, available once the window holds ``FeatureParams.warmup`` bars.
* *Weights* (Decide): the meta-controller rolled over the last ``roll_bars`` rows of the regime path from equal
  weights; it needs ``warmup - 1 + roll_bars`` bars in the window, and the naive router stands in before
  that, or when there is no usable bundle, exactly as Decide falls back.
* *Blend*: ``Σ weight · score`` (or the naive router's equal-weight mean) against the entry threshold, with
  Decide's confidence (``ffe.domain.ensemble``).

Features, posteriors, rolled weights and strategy scores are computed for every bar at once: row ``t`` of each
reads bars ``..t`` only and is the number the Lambda computes over its 120-bar window (the parity tests
check it bar for bar against ``detect_regime`` + ``decide``).

**Risk gate.** A BUY or SELL at ``t`` goes through ``ffe.domain.risk.gate`` as GateRisk calls it: equity = cash +
the position marked at close ``t``, log returns of the 120-bar window, ``RiskLimits`` (defaults; bars per day
from the timeframe), the paper venue's product rules, no shorting (GateRisk never allows it: SELL only
reduces a long, on crypto, equity and FX alike), and the kill switches' memory kept as GateRisk's equity
marks are (start-of-UTC-day and peak equity, updated whenever the gate is consulted).

**Fill.** An approved order fills at the open of bar ``t+1`` under the paper venue's rule
(``ffe.domain.fills``: slippage against the order, a fee on the notional, a BUY beyond the cash rejected). The
decision at the window's last bar is not filled. Nothing at or before ``t`` reads bar ``t+1`` or later.

**Marks.** Equity is marked at every bar's close; per-bar returns are simple returns of equity (the first
against the starting cash).

**Strategies.** Each goes through the same decision rule, gate and fills; only the weights differ:
``meta_controller`` (the bundle's policy, naive router where it cannot run), ``naive_router`` (equal weights,
the runtime fallback), ``regime_switch`` (one-hot on the option with the best Sharpe in each regime, chosen on
bars strictly before the window), each single strategy (one-hot), and ``buy_and_hold`` (BUY at confidence 1
while flat, then hold).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ffe.adapters.models import ModelBundle, ModelUnavailableError
from ffe.backtest.window_stats import WindowStats, correctly_rounded_row_sums
from ffe.domain.features import FeatureParams, feature_matrix
from ffe.domain.fills import DEFAULT_RULES, FEE_RATE, SLIPPAGE, STARTING_CASH, Fill, apply_fill
from ffe.domain.meta import OPTIONS, StrategyOption, rolled_weights
from ffe.domain.models import Action, AssetClass, Bar, Timeframe
from ffe.domain.performance import (
    churn_rate,
    max_disruption,
    max_drawdown,
    periods_per_year,
    sharpe,
    sortino,
    turnover,
)
from ffe.domain.portfolio import OrderSide, ProductRules
from ffe.domain.regime import RegimeModel, posterior
from ffe.domain.risk import RiskLimits, gate_one_asset
from ffe.domain.strategies import STRATEGIES, StrategyParams, score_matrix
from ffe.domain.universe import asset_class_of
from ffe.training.data import HOLDOUT_FRACTION, holdout

ZERO = Decimal(0)
HOLD, BUY, SELL = 0, 1, -1
_ACTIONS = np.array([Action.HOLD.value, Action.BUY.value, Action.SELL.value])  # indexed by code (SELL = -1)
STALE = "stale"


class StrategyName(StrEnum):
    META_CONTROLLER = "meta_controller"
    NAIVE_ROUTER = "naive_router"
    REGIME_SWITCH = "regime_switch"
    TREND_FOLLOWING = "trend_following"
    MEAN_REVERSION = "mean_reversion"
    BREAKOUT = "breakout"
    BUY_AND_HOLD = "buy_and_hold"


ALL_STRATEGIES: tuple[StrategyName, ...] = tuple(StrategyName)
_SINGLES = {StrategyName(str(s)): i for i, s in enumerate(STRATEGIES)}


@dataclass(frozen=True)
class BacktestConfig:
    """What a backtest replays; the defaults are the runtime's (Lambda settings, paper venue, risk limits)."""

    strategies: tuple[StrategyName, ...] = ALL_STRATEGIES
    lookback_bars: int = 120  # MarketDataSettings.lookback_bars
    entry_threshold: float = 0.15  # InferenceSettings.entry_threshold
    strategy_params: StrategyParams = field(default_factory=StrategyParams)
    feature_params: FeatureParams = field(default_factory=FeatureParams)
    limits: RiskLimits | None = None  # None: RiskLimits() with bars_per_day from the timeframe
    starting_cash: Decimal = STARTING_CASH
    fee_rate: Decimal = FEE_RATE
    slippage: Decimal = SLIPPAGE
    progress: bool = False  # tqdm bars on stderr

    def __post_init__(self) -> None:
        if self.lookback_bars < self.strategy_params.min_bars:
            raise ValueError(f"lookback_bars {self.lookback_bars} < the strategies' {self.strategy_params.min_bars}")
        if not 0.0 < self.entry_threshold < 1.0:
            raise ValueError(f"entry_threshold must be in (0, 1), got {self.entry_threshold}")
        unknown = set(map(str, self.strategies)) - set(map(str, ALL_STRATEGIES))
        if unknown:
            raise ValueError(f"unknown strategies {sorted(unknown)}; known: {[str(s) for s in ALL_STRATEGIES]}")


@dataclass(frozen=True)
class BarArrays:
    """A bar series as columns; ``times`` are bar open times (UTC, naive ``datetime64[us]``)."""

    times: NDArray[np.datetime64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]

    @classmethod
    def from_bars(cls, bars: Sequence[Bar]) -> BarArrays:
        n = len(bars)
        times = np.array([b.time.astimezone(UTC).replace(tzinfo=None) for b in bars], dtype="datetime64[us]")
        cols = [
            np.fromiter((getattr(b, name) for b in bars), np.float64, n)
            for name in ("open", "high", "low", "close", "volume")
        ]
        return cls(times.reshape(n), *cols)

    def __len__(self) -> int:
        return int(self.times.size)

    def digest(self) -> str:
        """SHA-256 of every column's bytes, in order: two series with the same digest are the same bars."""
        h = hashlib.sha256(np.ascontiguousarray(self.times.astype("datetime64[us]").view(np.int64)).tobytes())
        for column in (self.open, self.high, self.low, self.close, self.volume):
            h.update(np.ascontiguousarray(column, dtype=np.float64).tobytes())
        return h.hexdigest()

    def validate(self) -> None:
        """The checks the series validator makes at every boundary, on whole columns.

        Raises:
            ValueError: times not strictly increasing, a non-finite or non-positive price, or high/low that
                do not bracket the open and close.
        """
        if np.any(np.diff(self.times) <= np.timedelta64(0, "us")):
            raise ValueError("bar times must be strictly increasing")
        prices = np.stack([self.open, self.high, self.low, self.close])
        if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
            raise ValueError("prices must be finite and positive")
        body_top, body_bottom = np.maximum(self.open, self.close), np.minimum(self.open, self.close)
        if np.any(self.high < body_top) or np.any(self.low > body_bottom):
            raise ValueError("high/low must bracket open/close")

    def head(self, n: int) -> BarArrays:
        return BarArrays(self.times[:n], self.open[:n], self.high[:n], self.low[:n], self.close[:n], self.volume[:n])

    def sha256(self) -> str:
        digest = hashlib.sha256(self.times.astype("datetime64[us]").astype(np.int64).tobytes())
        for column in (self.open, self.high, self.low, self.close, self.volume):
            digest.update(np.ascontiguousarray(column, dtype=np.float64).tobytes())
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Metrics:
    total_return: float
    sharpe: float  # annualized
    sortino: float  # annualized
    max_drawdown: float  # fraction of the running peak
    turnover: float  # mean |Δ exposure| per bar, exposure as a fraction of equity
    churn_rate: float  # share of bars where the position's direction changes
    max_disruption: float  # largest weights jump (total variation) on a bar where the dominant regime changed
    trades: int  # fills
    blocked: int  # BUY/SELL decisions the risk gate blocked
    rejected: int  # approved orders the paper venue rejected at the fill (not enough cash)
    mean_exposure: float

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StrategyRun:
    """One strategy's bar-by-bar record over the window (every array has one row per bar)."""

    name: str
    equity: NDArray[np.float64]  # marked at each bar's close
    returns: NDArray[np.float64]  # simple per-bar returns of equity
    positions: NDArray[np.float64]  # base units held after the bar's open fill
    exposure: NDArray[np.float64]  # positions * close / equity
    weights: NDArray[np.float64]  # (T, 4) in OPTIONS order; NaN where no blend (stale, buy and hold)
    scores: NDArray[np.float64]  # the blended score (NaN when stale)
    actions: NDArray[np.str_]  # the decision: BUY / SELL / HOLD, before the risk gate
    confidence: NDArray[np.float64]
    models: NDArray[np.str_]  # what decided: the strategy, "naive_router" (fallback) or "stale"
    orders: NDArray[np.float64]  # signed quantity the gate approved at the bar (filled at the next open)
    block_reasons: dict[str, int]  # the risk gate's reasons, counted (one block can give several)
    metrics: Metrics


@dataclass(frozen=True)
class BacktestResult:
    asset: str
    timeframe: Timeframe
    asset_class: AssetClass
    first_index: int  # index in the input series of the window's first bar
    times: NDArray[np.datetime64]  # the window's bar open times
    closes: NDArray[np.float64]
    regimes: tuple[str | None, ...]  # dominant regime per bar (None when no regime could be detected)
    signals: NDArray[np.float64]  # (T, 3) strategy scores in STRATEGIES order
    runs: dict[str, StrategyRun]
    skipped: dict[str, str]  # strategies that could not be run, and why
    regime_switch_choice: dict[str, str]  # regime label -> option, chosen before the window
    bundle_version: str | None
    bundle_note: str  # why the meta-controller could not run, when it could not
    data_sha256: str  # the bars read (everything up to the window's end)
    data_first: datetime
    data_last: datetime
    config: BacktestConfig
    limits: RiskLimits
    periods_per_year: float
    elapsed_s: float

    @property
    def bars(self) -> int:
        return int(self.times.size)

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.elapsed_s if self.elapsed_s > 0 else math.inf


# --- public entry points ------------------------------------------------------------------------------


def holdout_start(times: NDArray[np.datetime64], fraction: float = HOLDOUT_FRACTION) -> datetime:
    """Open time of the first bar of the last ``fraction`` of a series: the rows ``ffe.training.data.holdout``
    keeps out of training."""
    _, test = holdout(times.size, fraction)
    return _to_datetime(times[test.start])


def run_backtest(
    bars: Sequence[Bar] | BarArrays,
    asset: str,
    timeframe: Timeframe,
    bundle: ModelBundle | ModelUnavailableError | None,
    start: datetime | None = None,
    end: datetime | None = None,
    config: BacktestConfig | None = None,
    asset_class: AssetClass | None = None,
) -> BacktestResult:
    """Backtest every configured strategy on the bars opening in ``[start, end)`` (None: the series' ends).

    Bars before ``start`` serve as look-back (and as the regime switch's selection data), never as trades.
    ``asset_class`` None: the built-in table's (a user's file may give one for a symbol outside it).

    Raises:
        ValueError: an empty window, or bars the features cannot read (non-positive prices).
        InvalidInputError: an unknown asset.
    """
    cfg = config or BacktestConfig()
    began = time.perf_counter()
    series = bars if isinstance(bars, BarArrays) else BarArrays.from_bars(bars)
    series.validate()
    lo = 0 if start is None else int(np.searchsorted(series.times, _np_time(start), side="left"))
    hi = len(series) if end is None else int(np.searchsorted(series.times, _np_time(end), side="left"))
    if hi <= lo:
        raise ValueError(f"no bars in the window [{start}, {end})")
    data = series.head(hi)  # nothing after the window is ever read
    asset_class = asset_class or asset_class_of(asset)
    limits = cfg.limits or RiskLimits(bars_per_day=timeframe.bars_per_day)  # as GateRisk sets it
    with _one_blas_thread():
        market = _market(data, asset_class, bundle, cfg)
    ppy = periods_per_year(asset_class, timeframe)
    book = _BookRules(asset, timeframe, data, limits, _product_rules(asset_class, asset), cfg)

    plans, skipped, choice = _plans([StrategyName(s) for s in cfg.strategies], market, book, lo, ppy)
    runs: dict[str, StrategyRun] = {}
    with _progress(cfg.progress, len(plans) * (hi - lo), f"{asset} {timeframe}") as tick:
        for name, plan in plans.items():
            runs[str(name)] = _run(name, plan, market, book, lo, hi, ppy, tick)
    return BacktestResult(
        asset=asset,
        timeframe=timeframe,
        asset_class=asset_class,
        first_index=lo,
        times=data.times[lo:hi],
        closes=data.close[lo:hi],
        regimes=market.labels_at(lo, hi),
        signals=market.scores[lo:hi],
        runs=runs,
        skipped=skipped,
        regime_switch_choice=choice,
        bundle_version=market.bundle_version,
        bundle_note=market.bundle_note,
        data_sha256=data.sha256(),
        data_first=_to_datetime(data.times[0]),
        data_last=_to_datetime(data.times[-1]),
        config=cfg,
        limits=limits,
        periods_per_year=ppy,
        elapsed_s=time.perf_counter() - began,
    )


def _product_rules(asset_class: AssetClass, asset: str) -> ProductRules:
    """The paper venue's product rules (PaperBroker.product_rules) without its database connection."""
    min_size, increment = DEFAULT_RULES[asset_class]
    return ProductRules(asset, min_size, increment)


# --- the per-bar market picture: signals, regimes, meta weights ---------------------------------------


@dataclass(frozen=True)
class _Market:
    scores: NDArray[np.float64]  # (N, 3)
    fresh: NDArray[np.bool_]  # staleness: the window holds min_bars
    naive_score: NDArray[np.float64]  # the naive router's equal-weight mean (statistics.fmean)
    regime_index: NDArray[np.int_]  # dominant regime per bar, -1 when none was detected
    labels: tuple[str, ...]
    meta_weights: NDArray[np.float64]  # (N, 4), NaN where the meta-controller cannot run
    bundle_version: str | None
    bundle_note: str

    def labels_at(self, lo: int, hi: int) -> tuple[str | None, ...]:
        return tuple(self.labels[i] if i >= 0 else None for i in self.regime_index[lo:hi].tolist())


def _market(
    data: BarArrays, asset_class: AssetClass, bundle: ModelBundle | ModelUnavailableError | None, cfg: BacktestConfig
) -> _Market:
    n = len(data)
    window = np.minimum(np.arange(n) + 1, cfg.lookback_bars)  # bars the Lambda would have fetched at t
    fresh = window >= cfg.strategy_params.min_bars
    scores = score_matrix(data.high, data.low, data.close, cfg.strategy_params)
    naive = np.full(n, np.nan)
    naive[fresh] = correctly_rounded_row_sums(scores[fresh]) / scores.shape[1]  # statistics.fmean, bit for bit
    regime_index = np.full(n, -1)
    meta = np.full((n, len(OPTIONS)), np.nan)
    model, note = _usable_model(bundle, asset_class)
    if model is None or not isinstance(bundle, ModelBundle):
        return _Market(scores, fresh, naive, regime_index, (), meta, _version(bundle), note)
    fp = cfg.feature_params
    features = feature_matrix(data.close, fp)
    rows = np.all(np.isfinite(features), axis=1)
    probs = np.full((n, model.n_components), np.nan)
    if rows.any():
        probs[rows] = posterior(model, features[rows])
    detected = fresh & rows & (window >= fp.warmup)  # DetectRegime: at least one complete feature row
    regime_index[detected] = np.argmax(probs[detected], axis=1)
    if StrategyName.META_CONTROLLER not in cfg.strategies:  # only its plan reads the policy's weights
        return _Market(scores, fresh, naive, regime_index, model.labels, meta, bundle.version, note)
    policy = bundle.meta
    rollable = fresh & (window >= fp.warmup - 1 + policy.roll_bars)  # the path holds roll_bars complete rows
    # DetectRegime hands Decide the posterior clipped to [0, 1]; the policy reads those numbers.
    rolled = rolled_weights(policy, features, np.clip(probs, 0.0, 1.0))
    meta[rollable] = rolled[rollable]
    return _Market(scores, fresh, naive, regime_index, model.labels, meta, bundle.version, note)


def _usable_model(
    bundle: ModelBundle | ModelUnavailableError | None, asset_class: AssetClass
) -> tuple[RegimeModel | None, str]:
    if bundle is None:
        return None, "no model bundle"
    if isinstance(bundle, ModelUnavailableError):
        return None, str(bundle)
    model = bundle.regimes.get(str(asset_class))
    if model is None:
        return None, f"model {bundle.version} has no regime model for {asset_class}"
    return model, ""


def _version(bundle: ModelBundle | ModelUnavailableError | None) -> str | None:
    return bundle.version if isinstance(bundle, ModelBundle) else None


# --- weights per strategy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A strategy's weights per bar; NaN rows fall back to the naive router (as Decide does)."""

    weights: NDArray[np.float64] | None  # None: buy and hold
    blend_name: str


def _plans(
    wanted: list[StrategyName], market: _Market, book: _BookRules, lo: int, ppy: float
) -> tuple[dict[StrategyName, _Plan], dict[str, str], dict[str, str]]:
    n = market.scores.shape[0]
    plans: dict[StrategyName, _Plan] = {}
    skipped: dict[str, str] = {}
    choice: dict[str, str] = {}
    for name in wanted:
        if name is StrategyName.META_CONTROLLER:
            plans[name] = _Plan(market.meta_weights, str(name))
        elif name is StrategyName.NAIVE_ROUTER:
            plans[name] = _Plan(np.full((n, len(OPTIONS)), np.nan), str(name))
        elif name is StrategyName.BUY_AND_HOLD:
            plans[name] = _Plan(None, str(name))
        elif name in _SINGLES:
            plans[name] = _Plan(np.tile(_one_hot(_SINGLES[name]), (n, 1)), str(name))
        else:
            why, picks = _regime_switch(market, book, lo, ppy)
            if picks is None:
                skipped[str(name)] = why
                continue
            choice = {market.labels[k]: str(OPTIONS[o]) for k, o in enumerate(picks.tolist())}
            w = np.full((n, len(OPTIONS)), np.nan)
            known = market.regime_index >= 0
            w[known] = np.eye(len(OPTIONS))[picks[market.regime_index[known]]]
            plans[name] = _Plan(w, str(name))
    return plans, skipped, choice


def _regime_switch(market: _Market, book: _BookRules, lo: int, ppy: float) -> tuple[str, NDArray[np.int_] | None]:
    """Per regime, the option with the best Sharpe on the bars before ``lo`` (flat unless one beats 0).

    The return of bar ``j`` (close ``j-1`` to close ``j``) is credited to the regime detected at ``j-1``,
    whose decision set the position it earned on.
    """
    if not market.labels:
        return "no regimes to switch on without a usable model bundle", None
    labelled = market.regime_index[:lo]
    if lo < 2:
        return "no bars before the window to choose on (it starts with the series)", None
    if not np.any(labelled >= 0):
        return "no bars with a detected regime before the window to choose on", None
    best = np.full(len(market.labels), OPTIONS.index(StrategyOption.FLAT))
    best_sharpe = np.zeros(len(market.labels))
    for column, strategy in enumerate(STRATEGIES):
        option = OPTIONS.index(StrategyOption(str(strategy)))
        plan = _Plan(np.tile(_one_hot(column), (market.scores.shape[0], 1)), str(strategy))
        ledger = _simulate(_decisions(plan, market, book.cfg.entry_threshold), market, book, 0, lo, _no_tick)
        returns = _simple_returns(ledger.equity, float(book.cfg.starting_cash))
        credited = labelled[:-1]  # regime at j-1 for returns[j], j >= 1
        for k in range(len(market.labels)):
            s = sharpe(returns[1:][credited == k], ppy)
            if s > best_sharpe[k]:
                best[k], best_sharpe[k] = option, s
    return "", best


def _one_hot(i: int) -> NDArray[np.float64]:
    out = np.zeros(len(OPTIONS))
    out[i] = 1.0
    return out


# --- decisions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decisions:
    codes: NDArray[np.int8]  # HOLD / BUY / SELL
    confidence: NDArray[np.float64]
    scores: NDArray[np.float64]
    weights: NDArray[np.float64]  # the weights used (the naive router's where it stood in)
    models: NDArray[np.str_]
    buy_and_hold: bool = False


def _decisions(plan: _Plan, market: _Market, entry_threshold: float) -> _Decisions:
    """Decide's rule for every bar: the blend, the entry threshold, the confidence (rounded as Decide does)."""
    n = market.scores.shape[0]
    if plan.weights is None:
        models = np.where(market.fresh, plan.blend_name, STALE)
        return _Decisions(np.zeros(n, np.int8), np.ones(n), np.full(n, np.nan), np.full((n, 4), np.nan), models, True)
    w = plan.weights
    blended = market.fresh & np.all(np.isfinite(w), axis=1)
    naive = market.fresh & ~blended
    s = market.scores
    # weighted_blend: sum(w * score) over the options in order, the flat option scoring 0 (Python's left fold).
    with np.errstate(invalid="ignore"):
        weighted = w[:, 0] * s[:, 0] + w[:, 1] * s[:, 1] + w[:, 2] * s[:, 2] + w[:, 3] * 0.0
    score = np.clip(np.where(blended, weighted, market.naive_score), -1.0, 1.0)
    score[~market.fresh] = np.nan
    used = np.where(naive[:, None], np.array([1 / 3, 1 / 3, 1 / 3, 0.0]), w)
    used[~market.fresh] = np.nan
    codes = np.zeros(n, np.int8)
    codes[market.fresh & (score > entry_threshold)] = BUY
    codes[market.fresh & (score < -entry_threshold)] = SELL
    raw = np.where(codes != HOLD, np.abs(score), 1.0 - np.abs(score) / entry_threshold)
    raw[~market.fresh] = 1.0
    confidence = np.array([round(x, 6) for x in raw.tolist()])  # Python's round, as ensemble._act
    models = np.where(blended, plan.blend_name, np.where(naive, StrategyName.NAIVE_ROUTER.value, STALE))
    return _Decisions(codes, confidence, score, used, models)


# --- the account: gate, fills, marks ------------------------------------------------------------------


class _Tick(Protocol):
    def __call__(self, n: int) -> None: ...


def _no_tick(n: int) -> None:
    return None


class _BookRules:
    """What every simulated bar needs besides the decision: prices as Decimals, window returns, rules."""

    def __init__(
        self,
        asset: str,
        timeframe: Timeframe,
        data: BarArrays,
        limits: RiskLimits,
        rules: ProductRules,
        cfg: BacktestConfig,
    ) -> None:
        self.asset, self.limits, self.rules, self.cfg = asset, limits, rules, cfg
        closes = data.close.tolist()
        self.closes = closes
        # The prices as the paper venue and GateRisk read them, Decimal(repr(float)), made once for every strategy.
        self.close_prices = list(map(Decimal, map(repr, closes)))
        self.opens = data.open.tolist()  # an open is read only at a fill: Decimal(repr(open)) there
        # GateRisk's returns: math.log(b.close / a.close) over the fetched window.
        self.log_returns = [math.log(b / a) for a, b in itertools.pairwise(closes)]
        # σ and the VaR quantile of each bar's window, computed once for every strategy (the gate's own numbers).
        self.stats = WindowStats(self.log_returns, cfg.lookback_bars, limits.var_confidence)
        as_of = data.times + np.timedelta64(int(timeframe.duration.total_seconds() * 1e6), "us")
        self.days = as_of.astype("datetime64[D]").astype(np.int64).tolist()  # UTC day of each decision


@dataclass
class _Ledger:
    equity: NDArray[np.float64]
    positions: NDArray[np.float64]
    orders: NDArray[np.float64]
    codes: NDArray[np.int8]  # the action decided at each bar
    fills: int = 0
    blocks: int = 0  # decisions the gate blocked
    rejected: int = 0  # approved orders the venue rejected at the fill (cash)
    reasons: Counter[str] = field(default_factory=Counter)  # a block can have several


@dataclass
class _Account:
    cash: Decimal
    quantity: Decimal = ZERO
    average: Decimal = ZERO
    day: int | None = None  # the kill switches' memory (EquityMemory.marks)
    day_start: Decimal = ZERO
    peak: Decimal | None = None

    def marks(self, day: int, equity: Decimal) -> tuple[Decimal, Decimal]:
        if self.day != day:
            self.day, self.day_start = day, equity
        self.peak = equity if self.peak is None else max(self.peak, equity)
        return self.day_start, self.peak

    def apply(self, fill: Fill) -> None:
        self.cash -= fill.cash_out
        self.quantity, self.average = fill.quantity, fill.average_price


def _simulate(decisions: _Decisions, market: _Market, book: _BookRules, lo: int, hi: int, tick: _Tick) -> _Ledger:
    """Walk bars ``lo..hi-1``: fill the last bar's order at this open, mark at the close, decide, gate."""
    cfg = book.cfg
    account = _Account(cash=cfg.starting_cash)
    ledger = _Ledger(np.empty(0), np.empty(0), np.zeros(hi - lo), np.empty(0, np.int8))
    marks: list[float] = []  # equity at each close (Python lists: a numpy item write per bar costs more)
    held: list[float] = []
    decided: list[int] = []
    pending: tuple[OrderSide, Decimal] | None = None
    codes, confidence, fresh = decisions.codes.tolist(), decisions.confidence.tolist(), market.fresh.tolist()
    buy_and_hold, close_prices, opens, orders = decisions.buy_and_hold, book.close_prices, book.opens, ledger.orders
    # The window statistics of every bar this walk may gate, in one pass (buy and hold may gate any fresh bar).
    may_gate = market.fresh if buy_and_hold else decisions.codes != HOLD
    book.stats.prepare(lo + np.flatnonzero(may_gate[lo:hi]))
    # The account between fills, in locals: its cash and quantity change only at a fill.
    cash, quantity, units = account.cash, account.quantity, float(account.quantity)
    for i, t in enumerate(range(lo, hi)):
        if pending is not None:
            outcome = apply_fill(
                pending[0],
                pending[1],
                Decimal(repr(opens[t])),
                cash,
                quantity,
                account.average,
                cfg.fee_rate,
                cfg.slippage,
            )
            if isinstance(outcome, Fill):
                account.apply(outcome)
                cash, quantity, units = account.cash, account.quantity, float(account.quantity)
                ledger.fills += 1
            else:
                ledger.rejected += 1
            pending = None
        price = close_prices[t]
        equity = cash + quantity * price
        marks.append(float(equity))
        held.append(units)
        code = codes[t]
        if buy_and_hold:  # BUY at full confidence while flat, then hold
            code = BUY if fresh[t] and quantity == 0 else HOLD
        decided.append(code)
        if code != HOLD and t + 1 < hi:  # the window's last decision would fill after the window
            pending = _gate(code, confidence[t], t, price, equity, account, book, ledger)
            if pending is not None:
                orders[i] = float(pending[1]) if pending[0] is OrderSide.BUY else -float(pending[1])
        if (i + 1) % 512 == 0:
            tick(512)
    tick((hi - lo) % 512)
    ledger.equity, ledger.positions, ledger.codes = np.array(marks), np.array(held), np.array(decided, np.int8)
    return ledger


def _gate(
    code: int,
    confidence: float,
    t: int,
    price: Decimal,
    equity: Decimal,
    account: _Account,
    book: _BookRules,
    ledger: _Ledger,
) -> tuple[OrderSide, Decimal] | None:
    """GateRisk on the simulated account: the approved (side, quantity), or None with the block counted."""
    day_start, peak = account.marks(book.days[t], equity)
    # gate(...) over the window's log returns, log_returns[t - lookback_bars + 1 : t], with their stats precomputed,
    # on the portfolio of this one asset and no pending order (gate_one_asset: gate_on_stats' verdict, tested)
    verdict = gate_one_asset(
        Action.BUY if code == BUY else Action.SELL,
        confidence,
        book.asset,
        book.stats.at(t),
        equity,
        account.cash,
        account.quantity,
        account.average,
        price,
        day_start,
        peak,
        book.limits,
        book.rules,
    )
    if verdict.approved and verdict.side is not None:
        return verdict.side, verdict.quantity
    ledger.blocks += 1
    for reason in verdict.reasons:  # Counter.update's Mapping check costs more than the counting
        ledger.reasons[str(reason)] += 1
    return None


# --- one strategy, end to end -------------------------------------------------------------------------


def _run(
    name: StrategyName, plan: _Plan, market: _Market, book: _BookRules, lo: int, hi: int, ppy: float, tick: _Tick
) -> StrategyRun:
    decisions = _decisions(plan, market, book.cfg.entry_threshold)
    ledger = _simulate(decisions, market, book, lo, hi, tick)
    cash0 = float(book.cfg.starting_cash)
    closes = np.asarray(book.closes[lo:hi])
    exposure = ledger.positions * closes / ledger.equity
    returns = _simple_returns(ledger.equity, cash0)
    labels = market.regime_index[lo:hi]
    weights = decisions.weights[lo:hi]
    actions = _ACTIONS[ledger.codes.astype(np.int_)]
    metrics = Metrics(
        total_return=float(ledger.equity[-1] / cash0 - 1.0),
        sharpe=sharpe(returns, ppy),
        sortino=sortino(returns, ppy),
        max_drawdown=max_drawdown(np.concatenate([[cash0], ledger.equity])),
        turnover=turnover(exposure),
        churn_rate=churn_rate(exposure),
        max_disruption=max_disruption(weights, labels) if np.any(labels >= 0) else 0.0,
        trades=ledger.fills,
        blocked=ledger.blocks,
        rejected=ledger.rejected,
        mean_exposure=float(np.mean(np.abs(exposure))),
    )
    return StrategyRun(
        name=str(name),
        equity=ledger.equity,
        returns=returns,
        positions=ledger.positions,
        exposure=exposure,
        weights=weights,
        scores=decisions.scores[lo:hi],
        actions=actions,
        confidence=decisions.confidence[lo:hi],
        models=decisions.models[lo:hi],
        orders=ledger.orders,
        block_reasons=dict(ledger.reasons),
        metrics=metrics,
    )


def _simple_returns(equity: NDArray[np.float64], start: float) -> NDArray[np.float64]:
    previous = np.concatenate([[start], equity[:-1]])
    out: NDArray[np.float64] = equity / previous - 1.0
    return out


# --- small helpers ------------------------------------------------------------------------------------


@contextmanager
def _progress(enabled: bool, total: int, desc: str) -> Iterator[_Tick]:
    if not enabled:
        yield _no_tick
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="bar", unit_scale=True, leave=False) as bar:
        yield bar.update


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """The policy's matmuls are thin (rows x 13 @ 13 x 16): BLAS threads only add hand-off latency, which
    made the vectorized stage 3x slower on a busy 2-core machine. threadpoolctl comes with scikit-learn."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - the training extra (where backtests run) always has it
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _np_time(when: datetime) -> np.datetime64:
    if when.tzinfo is None:
        raise ValueError(f"{when.isoformat()} has no timezone; backtest bounds are UTC")
    return np.datetime64(when.astimezone(UTC).replace(tzinfo=None), "us")


def _to_datetime(value: np.datetime64) -> datetime:
    micros = int(value.astype("datetime64[us]").astype(np.int64))
    return _EPOCH + timedelta(microseconds=micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


__all__ = [
    "ALL_STRATEGIES",
    "BacktestConfig",
    "BacktestResult",
    "BarArrays",
    "Metrics",
    "StrategyName",
    "StrategyRun",
    "holdout_start",
    "run_backtest",
]
