"""The decision path per asset against the same math written minimally in bare numpy, measured in one run.

Prints figures; asserts nothing. Issue 16, rows 1 and 2:

(a) the decision math through ffe's domain functions (the data gate, features, regime posterior, the
    meta-controller's weights, the blend, the risk gate) beside ``reference`` below: the same math in bare numpy,
    written minimally from arrays (staleness, features, posterior, meta weights, blend, the risk gate's volatility,
    VaR and size);
(b) the same decision through the steps and their contracts, as the Lambdas run it: FetchMarketData (where the bars
    enter, are validated and sealed, and leave as columns: ``BarColumns``), then four boundaries, each the state
    through JSON (Step Functions writes it, the Lambda runtime reads it) and the handler's ``parse`` (CheckStaleness,
    DetectRegime, InferDecision with an in-process numpy endpoint, GateRisk's inputs and the gate), each result the
    handler's ``model_dump(mode="json")``; the line under it times the JSON hand-over alone on the same states, the
    part that is not ffe's code;
(c) one boundary's check of the bars: by the seal, and in full (what it costs without a matching seal), and the
    bars' digest now and as it was.

Each figure is the median of 7 repeats of CPU time (``time.process_time``: other work on the machine inflates it less
than wall time), timed in turns with the reference, from the same run, with the ratio; the real bundled BTCUSD and
EURUSD hourly series (120-bar look-back) and the shipped champion. Figures (a) and (b) are checked to reach the
reference's decision (``same decision``), so the two sides compute the same thing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import statistics
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ffe.adapters.models import load_bundle
from ffe.adapters.replay import ReplayProvider
from ffe.contracts import (
    AssetTask,
    BarColumns,
    BarModel,
    CheckStalenessInput,
    CycleModels,
    DecideInput,
    DetectRegimeInput,
    GateRiskInput,
    InferencePrediction,
    InferenceRequest,
    InferenceResponse,
    VoterOutput,
    digest_bars,
    parse,
    seal_bars,
)
from ffe.domain.ensemble import weighted_blend
from ffe.domain.features import FeatureParams, feature_matrix
from ffe.domain.meta import OPTIONS, latest_weights
from ffe.domain.models import Action, Bar, Timeframe
from ffe.domain.portfolio import Balance, Position, ProductRules
from ffe.domain.ports import FetchedSeries
from ffe.domain.regime import posterior
from ffe.domain.risk import Portfolio, RiskLimits, gate
from ffe.domain.series import validate_series
from ffe.domain.staleness import THRESHOLDS, assess_staleness
from ffe.domain.strategies import Strategy, StrategyParams, score_all
from ffe.domain.universe import asset_class_of
from ffe.domain.voting import Vote, VoteStatus, combine
from ffe.steps.fetch import fetch_market_data
from ffe.steps.infer import infer_decision
from ffe.steps.regime import detect_regime
from ffe.steps.staleness import bars_needed, check_staleness

AS_OF = {
    "BTCUSD": datetime(2019, 6, 15, 12, 1, tzinfo=UTC),
    "EURUSD": datetime(2017, 6, 15, 12, 1, tzinfo=UTC),  # a weekday: the FX market trades
}
TIMEFRAME = Timeframe.H1
LOOKBACK = 120
ENTRY = 0.15
BUNDLE = load_bundle("bundled")
META = BUNDLE.meta
PARAMS = StrategyParams()
FEATURES = FeatureParams()
LIMITS = RiskLimits()
NAMES = [str(o) for o in OPTIONS]
NEED, _ = bars_needed(PARAMS, FEATURES, META.roll_bars)
EQUITY = Decimal(100_000)
RULES = ProductRules("X", min_size=Decimal("0.0001"), size_increment=Decimal("0.00000001"), min_notional=Decimal(1))


def portfolio(asset: str, price: Decimal) -> Portfolio:
    return Portfolio(
        Balance("USD", EQUITY, EQUITY), {asset: Position(asset, Decimal(0), price)}, {asset: price}, EQUITY, EQUITY
    )


def to_gate(action: Action, confidence: float) -> tuple[Action, float]:
    """Both sides size a BUY at 0.5 when the blend holds, so the gate's math runs on every decision."""
    return (action, confidence) if action is not Action.HOLD else (Action.BUY, 0.5)


# --- ffe: the domain functions ---------------------------------------------------------------------------------


def ffe_domain(asset: str, bars: list[Bar]) -> tuple[str, float, str]:
    klass = asset_class_of(asset)
    verdict = assess_staleness(bars, TIMEFRAME, AS_OF[asset], NEED, asset_class=klass)
    if verdict.stale:
        return "stale", 1.0, ""
    closes = np.fromiter((b.close for b in bars), np.float64, len(bars))
    rows = feature_matrix(closes, FEATURES)[-META.roll_bars :]
    probs = posterior(BUNDLE.regimes[str(klass)], rows)
    weights = latest_weights(META, rows, np.clip(probs, 0.0, 1.0))
    blend = weighted_blend(score_all(bars, PARAMS), dict(zip(NAMES, weights.tolist(), strict=True)), ENTRY)
    returns = [math.log(b.close / a.close) for a, b in itertools.pairwise(bars)]
    action, confidence = to_gate(blend.action, blend.confidence)
    sized = gate(action, confidence, asset, returns, portfolio(asset, Decimal(repr(bars[-1].close))), LIMITS, RULES)
    return str(blend.action), blend.confidence, str(sized.quantity)


# --- ffe: the steps and their contracts ------------------------------------------------------------------------


class Fetched:
    """A provider that hands over bars already fetched (the provider's own I/O is not the path's math)."""

    name = "replay"

    def __init__(self, series: FetchedSeries) -> None:
        self.series = series

    def fetch(self, asset: str, timeframe: Timeframe, as_of: datetime, lookback: int) -> FetchedSeries:
        return self.series


class NumpyEndpoint:
    """The endpoint's RL voter in-process (``latest_weights``, the numpy twin of its TorchScript), LLM skipped."""

    def infer(self, request: InferenceRequest, trace_header: str | None = None) -> InferenceResponse:
        predictions = []
        for inst in request.instances:
            raw = latest_weights(META, np.asarray(inst.path_features), np.asarray(inst.path_posteriors))
            weights = dict(zip(NAMES, raw.tolist(), strict=True))
            blend = weighted_blend({Strategy(k): v for k, v in inst.scores.items()}, weights, inst.entry_threshold)
            rl = Vote(VoteStatus.VOTED, blend.action, blend.confidence, blend.reason)
            verdict = combine(rl, Vote(VoteStatus.SKIPPED, reason="llm off"))
            voters = [
                VoterOutput(
                    voter="rl",
                    status="voted",
                    action=blend.action,
                    confidence=blend.confidence,
                    model_version=META.version,
                    weights={k: round(w, 6) for k, w in weights.items()},
                ),
                VoterOutput(voter="llm", status="skipped"),
            ]
            predictions.append(
                InferencePrediction(
                    action=verdict.action,
                    confidence=verdict.confidence,
                    reason=verdict.reason,
                    rule=str(verdict.rule),
                    voters=voters,
                )
            )
        return InferenceResponse(predictions=predictions, model_version=META.version, device="cpu")


ENDPOINT = NumpyEndpoint()


def over_the_wire(state: dict[str, Any], sent: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The state as the next Lambda gets it: Step Functions writes it as JSON, the Lambda runtime reads it."""
    if sent is not None:
        sent.append(state)
    received: dict[str, Any] = json.loads(json.dumps(state))
    return received


def handed(state: dict[str, Any], sent: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The state as it is, without the JSON: what ffe's own code costs (the dumps are already JSON's types)."""
    return state


def ffe_steps(
    asset: str, series: FetchedSeries, sent: list[dict[str, Any]] | None = None, wire: Any = over_the_wire
) -> tuple[str, float, str]:
    """FetchMarketData, then CheckStaleness, DetectRegime, InferDecision and GateRisk's inputs, each from the state
    as JSON brought it and ``parse``d as its handler does; each result is the handler's ``model_dump(mode="json")``."""
    task = AssetTask(
        cycle_id="bench",
        as_of=AS_OF[asset],
        timeframe=TIMEFRAME,
        asset=asset,
        models=CycleModels(champion=BUNDLE.version),
    )
    state = wire(fetch_market_data(task, Fetched(series), LOOKBACK).model_dump(mode="json"), sent)
    staleness = check_staleness(
        parse(CheckStalenessInput, state), clock=lambda: AS_OF[asset], params=PARAMS, features=FEATURES, roll_bars=24
    )
    state = wire({**state, "staleness": staleness.model_dump(mode="json")}, sent)
    if staleness.stale:
        return "stale", 1.0, ""
    regime = detect_regime(parse(DetectRegimeInput, state), BUNDLE, FEATURES)
    state = wire({**state, "regime": regime.model_dump(mode="json")}, sent)
    record = infer_decision(parse(DecideInput, state), ENDPOINT, PARAMS, ENTRY, llm=False)
    state = wire({**state, "decision": record.model_dump(mode="json")}, sent)
    inp = parse(GateRiskInput, state)
    closes = inp.bars.close  # what GateRisk reads (ffe.steps.gate; the paper broker's settle reads bars lazily)
    returns = [math.log(b / a) for a, b in itertools.pairwise(closes)]
    action, confidence = to_gate(inp.decision.action, inp.decision.confidence)
    sized = gate(action, confidence, asset, returns, portfolio(asset, Decimal(repr(closes[-1]))), LIMITS, RULES)
    rl = inp.decision.voters[0].confidence or 0.0  # the RL voter's blend (the decision's is x0.8 without the LLM)
    return str(inp.decision.action), rl, str(sized.quantity)


# --- the reference: the same math, minimally, in bare numpy ----------------------------------------------------


class Arrays:
    """The bars as a numpy user holds them: epoch seconds and prices."""

    def __init__(self, bars: list[Bar]) -> None:
        self.t = np.array([b.time.timestamp() for b in bars], dtype=np.int64)
        self.h = np.array([b.high for b in bars])
        self.l = np.array([b.low for b in bars])
        self.c = np.array([b.close for b in bars])


STEP = int(TIMEFRAME.duration.total_seconds())
THRESHOLD = int(THRESHOLDS[TIMEFRAME].total_seconds())  # type: ignore[union-attr]
LOG_2PI = math.log(2 * math.pi)


def reference(asset: str, a: Arrays) -> tuple[str, float, str]:
    # the data gate: closed, long enough, fresh, no gap (crypto trades 24/7; an FX weekend is no gap)
    age = int(AS_OF[asset].timestamp()) - (int(a.t[-1]) + STEP)
    if age < 0 or a.t.size < NEED or age > THRESHOLD:
        return "stale", 1.0, ""
    gaps = np.diff(a.t) > 4 * STEP
    if gaps.any() and asset_class_of(asset) != "fx":
        return "stale", 1.0, ""
    c, m, w = a.c, META.roll_bars, FEATURES.window
    # features of the last m bars
    r = np.diff(np.log(c))
    sw = sliding_window_view(r, w).std(axis=1)[-m:]
    sl = sliding_window_view(r, FEATURES.long_window).std(axis=1)[-m:]
    now, then = c[-m:], c[-m - w : -w]
    travelled = sliding_window_view(np.abs(np.diff(c)), w).sum(axis=1)[-m:]
    x = np.column_stack([np.log(now / then) / (sw * math.sqrt(w)), np.log(sw / sl), np.abs(now - then) / travelled])
    # the regime posterior
    model = BUNDLE.regimes[str(asset_class_of(asset))]
    z = (x - model.scaler_mean) / model.scaler_scale
    y = np.einsum("nf,kfg->nkg", z, model.precisions_cholesky) - np.einsum(
        "kf,kfg->kg", model.means, model.precisions_cholesky
    )
    log_det = np.log(np.diagonal(model.precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
    lp = -0.5 * (x.shape[1] * LOG_2PI + (y**2).sum(axis=2)) + log_det + model.log_prob_offset + model.log_weights
    lp -= lp.max(axis=1, keepdims=True)
    post = np.exp(lp)
    post /= post.sum(axis=1, keepdims=True)
    # the meta-controller rolled over m rows from equal weights
    zf = (x - META.input_mean) / META.input_scale
    weights = np.full(len(OPTIONS), 1.0 / len(OPTIONS))
    for k in range(m):
        h = np.concatenate([zf[k], post[k], weights])
        for i, (wt, b) in enumerate(META.layers):
            h = h @ wt + b
            if i < len(META.layers) - 1:
                h = np.tanh(h)
        e = np.exp(h - h.max())
        weights = (1 - META.smoothing) * weights + META.smoothing * e / e.sum()
    # the strategies and the blend
    slow = c[-PARAMS.slow_window :].mean()
    sigma = r[-PARAMS.slow_window :].std()
    trend = math.tanh((c[-PARAMS.fast_window :].mean() - slow) / slow / (2 * sigma))
    win = c[-PARAMS.zscore_window :]
    mean_rev = -math.tanh((c[-1] - win.mean()) / win.std() / 2)
    n = PARAMS.channel_window
    breakout = 1.0 if c[-1] > a.h[-n - 1 : -1].max() else -1.0 if c[-1] < a.l[-n - 1 : -1].min() else 0.0
    score = min(1.0, max(-1.0, weights[0] * trend + weights[1] * mean_rev + weights[2] * breakout))
    if score > ENTRY:
        action, confidence = Action.BUY, abs(score)
    elif score < -ENTRY:
        action, confidence = Action.SELL, abs(score)
    else:
        action, confidence = Action.HOLD, 1 - abs(score) / ENTRY
    confidence = round(float(confidence), 6)
    # the risk gate: bar volatility, historical VaR, the size within the position, VaR and cash caps
    side, conf = to_gate(action, confidence)
    sig = r.std()
    worst = np.partition(r, int((1 - LIMITS.var_confidence) * r.size))[int((1 - LIMITS.var_confidence) * r.size)]
    price, equity = float(c[-1]), float(EQUITY)
    wanted = equity * LIMITS.target_daily_volatility / (sig * math.sqrt(24)) * conf / price
    caps = (equity * LIMITS.max_position_fraction / price, equity * LIMITS.var_limit / (max(-worst, 1e-12) * price))
    quantity = math.floor(min(wanted, *caps, equity / price) * 1e8) / 1e8
    return str(action), confidence, f"{quantity:.8f}" if side is not Action.SELL else "0"


def full_check(as_of: datetime, timeframe: Timeframe, columns: BarColumns, sha256: str) -> bool:
    """What a boundary checks when the seal does not stand for it (MarketData's validator)."""
    bars = columns.models()
    validate_series(bars, as_of, timeframe)
    return digest_bars(bars) == sha256


def old_digest(bars: list[BarModel]) -> str:
    """digest_bars before issue 16: every bar's JSON dump, then json.dumps (the same bytes)."""
    canonical = json.dumps([b.model_dump(mode="json") for b in bars], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- measure ---------------------------------------------------------------------------------------------------


def paired_us(fn: Callable[[], object], ref: Callable[[], object], number: int, repeat: int = 7) -> tuple[float, float]:
    """Medians (CPU µs per call) of ``fn`` and ``ref`` timed in turns, so both see the same load on the machine."""
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(timeit.timeit(fn, number=number, timer=time.process_time) / number * 1e6)
        theirs.append(timeit.timeit(ref, number=number, timer=time.process_time) / number * 1e6)
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    print(
        f"decision path per asset: {LOOKBACK} real 1h bars, the shipped champion; CPU µs per decision, median of 7 "
        "repeats,\neach timed in turns with the numpy reference of the same run"
    )
    print(f"{'asset':<7} {'figure':<52} {'ffe':>8} {'numpy ref':>10} {'ratio':>7}  same decision")
    for asset, as_of in AS_OF.items():
        series = ReplayProvider().fetch(asset, TIMEFRAME, as_of, lookback=LOOKBACK)
        bars, arrays = list(series.bars), Arrays(list(series.bars))
        want = reference(asset, arrays)
        sent: list[dict[str, Any]] = []
        ffe_steps(asset, series, sent)  # the states as they travel, for the JSON hand-over alone
        cases: list[tuple[str, Callable[[], object], int]] = [
            ("(a) decision math, domain functions", lambda: ffe_domain(asset, bars), 200),  # noqa: B023
            ("(b) through the steps, JSON at the 4 boundaries", lambda: ffe_steps(asset, series), 30),  # noqa: B023
            ("    of which the JSON hand-over (Step Functions, runtime)", lambda: [over_the_wire(s) for s in sent], 30),  # noqa: B023
            ("    the rest: ffe's steps and contracts", lambda: ffe_steps(asset, series, wire=handed), 30),  # noqa: B023
        ]
        sealed = parse(CheckStalenessInput, sent[0])
        parts = (sealed.as_of, sealed.timeframe, sealed.bars, sealed.bars_sha256)
        models = sealed.bars.models()
        cases += [
            ("(c) a boundary's bars check: by the seal", lambda: seal_bars(*parts), 200),  # noqa: B023
            ("    in full: validate_series + digest_bars", lambda: full_check(*parts), 100),  # noqa: B023
            ("    of which digest_bars", lambda: digest_bars(models), 100),  # noqa: B023
            ("    digest_bars as it was (model_dump per bar)", lambda: old_digest(models), 100),  # noqa: B023
        ]
        for name, fn, number in cases:
            got = fn()
            ffe_us, ref_us = paired_us(fn, lambda: reference(asset, arrays), number)  # noqa: B023
            if name.startswith("(a)"):
                same = str(got == want)
            elif name.startswith(("(b)", "    the rest")):  # the endpoint blends the scores InferDecision rounded
                same = str(got[0] == want[0] and abs(got[1] - want[1]) < 1e-5)  # type: ignore[index]
            else:
                same = ""  # (c): the same check, the seal standing for the rest
            print(f"{asset:<7} {name:<52} {ffe_us:8.0f} {ref_us:10.0f} {ffe_us / ref_us:6.2f}x  {same} {want[0]}")


if __name__ == "__main__":
    main()
