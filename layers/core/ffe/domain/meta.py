"""The RL meta-controller at inference time: numpy over an exported policy (trained in ``ffe.training.meta``).

The policy reads (standardized features, regime posterior, current weights) and outputs a softmax over the
strategy options; the new weights move a fixed fraction ``smoothing`` of the way towards that softmax, so a
regime change re-weights the portfolio over several bars instead of whipsawing it. Weights are always a
convex combination: non-negative and summing to 1.

Stateless by design: the *current* weights are not read from a store but re-derived by rolling the policy
over the ``roll_bars`` bars before the decision from equal weights. A decision is therefore a pure function
of the bars it was given (reproducible, replayable, no hidden state), and the backtester computes exactly
the same thing for every bar at once (:func:`rolled_weights`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ffe.domain.errors import InvalidInputError

META_FORMAT = "ffe.meta/1"


class StrategyOption(StrEnum):
    """What the meta-controller weights: the skeleton's three strategies and staying out of the market."""

    TREND_FOLLOWING = "trend_following"
    MEAN_REVERSION = "mean_reversion"
    BREAKOUT = "breakout"
    FLAT = "flat"


OPTIONS: tuple[StrategyOption, ...] = tuple(StrategyOption)


@dataclass(frozen=True)
class MetaPolicy:
    version: str
    feature_names: tuple[str, ...]
    n_regimes: int
    input_mean: NDArray[np.float64]  # (F,) standardizes the features part of the input
    input_scale: NDArray[np.float64]  # (F,)
    layers: tuple[tuple[NDArray[np.float64], NDArray[np.float64]], ...]  # (W (in, out), b (out,)), tanh between
    smoothing: float
    roll_bars: int

    @property
    def input_size(self) -> int:
        return len(self.feature_names) + self.n_regimes + len(OPTIONS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": META_FORMAT,
            "version": self.version,
            "feature_names": list(self.feature_names),
            "options": [str(o) for o in OPTIONS],
            "n_regimes": self.n_regimes,
            "input_mean": self.input_mean.tolist(),
            "input_scale": self.input_scale.tolist(),
            "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in self.layers],
            "activation": "tanh",
            "smoothing": self.smoothing,
            "roll_bars": self.roll_bars,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MetaPolicy:
        """Validate an exported policy: format, options, layer shapes, finiteness.

        Raises:
            InvalidInputError: naming what is wrong with the artifact.
        """
        if raw.get("format") != META_FORMAT:
            raise InvalidInputError(f"meta-controller artifact format {raw.get('format')!r}, expected {META_FORMAT!r}")
        if list(raw.get("options", [])) != [str(o) for o in OPTIONS]:
            raise InvalidInputError(f"meta-controller options {raw.get('options')!r} differ from {list(OPTIONS)}")
        try:
            names = tuple(str(n) for n in raw["feature_names"])
            layers = tuple(
                (_finite(layer["weight"], "weight"), _finite(layer["bias"], "bias")) for layer in raw["layers"]
            )
            policy = cls(
                version=str(raw["version"]),
                feature_names=names,
                n_regimes=int(raw["n_regimes"]),
                input_mean=_finite(raw["input_mean"], "input_mean"),
                input_scale=_finite(raw["input_scale"], "input_scale"),
                layers=layers,
                smoothing=float(raw["smoothing"]),
                roll_bars=int(raw["roll_bars"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"meta-controller artifact is malformed: {exc!r}") from exc
        _check_shapes(policy)
        return policy


def step(
    policy: MetaPolicy,
    features: NDArray[np.float64],
    posteriors: NDArray[np.float64],
    current: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Next weights for a batch of rows: ``(N, F)``, ``(N, K)``, ``(N, S)`` -> ``(N, S)``."""
    z = (features - policy.input_mean) / policy.input_scale
    h = np.concatenate([z, posteriors, current], axis=1)
    return _advance(policy, h, current)


def rolled_weights(
    policy: MetaPolicy, features: NDArray[np.float64], posteriors: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Weights at every row ``t``: the policy rolled over rows ``t-roll_bars+1..t`` from equal weights.

    Rows whose roll would touch a NaN feature row (the warm-up) are NaN. Vectorized over ``t``: the work is
    ``roll_bars`` batched steps, whatever the length of the series. Each is :func:`step`'s arithmetic on the same
    numbers, with what does not depend on the weights (the standardized features) done once for all rows.
    """
    n, m = features.shape[0], policy.roll_bars
    out = np.full((n, len(OPTIONS)), np.nan)
    valid = np.all(np.isfinite(features), axis=1) & np.all(np.isfinite(posteriors), axis=1)
    if n < m:
        return out
    # t is rollable when all of its m rows are valid.
    window_ok = np.lib.stride_tricks.sliding_window_view(valid, m).all(axis=1)
    ts = np.arange(m - 1, n)[window_ok]
    if ts.size == 0:
        return out
    head = _head(policy, features, posteriors)
    first, last = int(ts[0]), int(ts[-1])
    if last - first + 1 == ts.size:  # one run of rollable rows (a series without gaps): views, not gathered copies
        steps = (head[first - back : last + 1 - back] for back in range(m - 1, -1, -1))
        out[first : last + 1] = _roll(policy, steps, ts.size, head.shape[1])
    else:
        out[ts] = _roll(policy, (head[ts - back] for back in range(m - 1, -1, -1)), ts.size, head.shape[1])
    return out


def latest_weights(
    policy: MetaPolicy, features: NDArray[np.float64], posteriors: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Weights for the last row, from the last ``roll_bars`` rows: in numpy what the endpoint's RL voter computes
    with the TorchScript policy (the reference its tests and ``bench/bench_decision.py`` use).

    One row rolled ``roll_bars`` times through :func:`step`'s arithmetic, bit for bit
    (tests/unit/domain/test_models_math.py), with the standardized features computed once for all the rows.
    """
    m = policy.roll_bars
    if features.shape[0] < m:
        raise ValueError(f"the meta-controller needs {m} feature rows, got {features.shape[0]}")
    features, posteriors = features[-m:], posteriors[-m:]
    if not (np.isfinite(features).all() and np.isfinite(posteriors).all()):
        return np.full(len(OPTIONS), np.nan)
    head = _head(policy, features, posteriors)
    return _roll(policy, head, 1, head.shape[1])[0]


def _head(policy: MetaPolicy, features: NDArray[np.float64], posteriors: NDArray[np.float64]) -> NDArray[np.float64]:
    """The part of the policy's input that does not depend on the weights, ``[standardized features | posterior]``,
    for every row at once: elementwise, so the same bits :func:`step` computes row by row."""
    return np.concatenate([(features - policy.input_mean) / policy.input_scale, posteriors], axis=1)


def _roll(policy: MetaPolicy, heads: Iterable[NDArray[np.float64]], batch: int, width: int) -> NDArray[np.float64]:
    """The weights of ``batch`` rows after one step per block of ``heads`` (``width`` columns), from equal weights.

    One input buffer ``[head | weights]`` is filled in place each step instead of concatenated: the same values in
    the same C-contiguous layout as :func:`step`'s, so the same matrix products and the same bits.
    """
    weights = np.full((batch, len(OPTIONS)), 1.0 / len(OPTIONS))
    inputs = np.empty((batch, width + len(OPTIONS)))
    for head in heads:
        inputs[:, :width] = head
        inputs[:, width:] = weights
        weights = _advance(policy, inputs, weights)
    return weights


def _advance(policy: MetaPolicy, h: NDArray[np.float64], current: NDArray[np.float64]) -> NDArray[np.float64]:
    """The policy's forward pass on inputs ``h`` and the smoothed move of ``current`` towards its softmax.

    Each operation writes into the array the one before made (``out=``): the same ufuncs on the same operands as
    ``tanh(h @ w + b)`` ... and ``(1 - s) * current + s * softmax``, so the same bits (a sum is the same either
    way round), without an array per operation.
    """
    last = len(policy.layers) - 1
    for i, (w, b) in enumerate(policy.layers):
        h = np.matmul(h, w)
        np.add(h, b, out=h)
        if i < last:
            np.tanh(h, out=h)
    target = _softmax(h)
    np.multiply(target, policy.smoothing, out=target)
    return np.add(target, (1.0 - policy.smoothing) * current, out=target)


def _softmax(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise softmax of ``x``, in place: ``exp(x - max) / sum``, the same numbers as ``x.max(axis=1)`` and
    ``x.sum(axis=1)`` give, folded over the columns instead of reduced along each short row (numpy's reduction
    loop per row of 4 cost more than the arithmetic). A maximum is exact in any order; numpy sums a row of fewer
    than 8 numbers left to right, as the fold does (tests/unit/domain/test_models_math.py holds them equal bit for
    bit); wider rows go through the reduction itself, and so do few rows (one decision's roll), where the fold's
    extra calls cost more than the reduction's loop.
    """
    rows, columns = x.shape
    # numpy's pairwise summation takes over from 8 numbers: reduce as numpy does; and below 64 rows, fewer calls win
    if columns >= 8 or rows < 64:
        np.subtract(x, np.maximum.reduce(x, axis=1, keepdims=True), out=x)
        np.exp(x, out=x)
        return np.true_divide(x, np.add.reduce(x, axis=1, keepdims=True), out=x)
    fold = x[:, 0].copy()
    for j in range(1, columns):
        np.maximum(fold, x[:, j], out=fold)
    np.subtract(x, fold[:, None], out=x)
    np.exp(x, out=x)
    fold[:] = x[:, 0]
    for j in range(1, columns):
        np.add(fold, x[:, j], out=fold)
    return np.true_divide(x, fold[:, None], out=x)


def _finite(value: Any, name: str) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    return arr


def _check_shapes(policy: MetaPolicy) -> None:
    f = len(policy.feature_names)
    problems = []
    if policy.input_mean.shape != (f,) or policy.input_scale.shape != (f,) or np.any(policy.input_scale <= 0):
        problems.append("input_mean/input_scale must be positive vectors of one value per feature")
    if not 0.0 < policy.smoothing <= 1.0:
        problems.append(f"smoothing must be in (0, 1], got {policy.smoothing}")
    if policy.roll_bars < 1 or policy.n_regimes < 1:
        problems.append("roll_bars and n_regimes must be positive")
    width = policy.input_size
    for i, (w, b) in enumerate(policy.layers):
        if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
            problems.append(f"layer {i} has weight {w.shape} and bias {b.shape} after a width of {width}")
            break
        width = w.shape[1]
    if not policy.layers or width != len(OPTIONS):
        problems.append(f"the last layer must output {len(OPTIONS)} logits")
    if problems:
        raise InvalidInputError("meta-controller artifact is malformed: " + "; ".join(problems))
