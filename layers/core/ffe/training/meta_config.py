"""The meta-controller's training hyperparameters, in one frozen dataclass.

``MetaTrainConfig`` is shared by the environment's evaluation (costs, entry band, the reward's churn penalty
and episode length), the network (width, smoothing, rolled bars), the REINFORCE updates (exploration noise,
learning rate, batch sizes, gradient clip) and the walk-forward loop (epochs, folds). It checks every value when
it is built (``require_*``, which ``ffe.training.pipeline.TrainPlan`` uses too), so a setting the training loop,
the exported policy or the runtime cannot work with is a ``ValueError`` naming it before any training; ``quick``
gives the few-second configuration the tests and smoke runs use.

Fields added after versions were first recorded (``LATE_FIELDS``) default to the old behaviour and are left out
of ``recorded()`` while at their default, so a default config names the same policy version
(``ffe.training.meta._derive_version``) and records the same training config (``ffe.training.provenance``) as
before they existed: every recorded version still reproduces bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

# The position the training reward earns on (``ffe.training.reinforce.reward_positions``):
#   continuous  clip(Σ w_i · score_i, -1, 1), the blend itself (the original reward);
#   traded      the blend outside the entry band, flat inside it (``meta_env.evaluate``'s decision position);
#   latched     long (1) from a blend above the band until one below it, then flat, held inside the band: an
#               approximation of the spot position ``ffe backtest`` and production hold (no shorting; a BUY adds a
#               volatility-targeted order up to the per-asset cap and a SELL reduces the long,
#               ``ffe.domain.risk.gate_on_stats``; inside the band the decision is HOLD).
REWARD_POSITIONS = ("continuous", "traded", "latched")
LATE_FIELDS = ("reward_position", "naive_pull")  # recorded only when not at their default (see the docstring)


@dataclass(frozen=True)
class MetaTrainConfig:
    seed: int = 7
    hidden: int | tuple[int, ...] = 32
    smoothing: float = 0.2
    roll_bars: int = 24
    epochs: int = 90
    episodes_per_epoch: int = 1024
    batch_episodes: int = 128
    episode_bars: int = 256
    lr: float = 1e-3
    exploration_sigma: float = 0.5
    churn_penalty: float = 0.02
    cost_per_turn: float = 2e-4  # 2 bp per unit of exposure traded
    entry_threshold: float = 0.15
    folds: int = 3
    min_train_fraction: float = 0.4  # of a series' training rows before the first walk-forward test block
    grad_clip: float = 1.0
    reward_position: str = "continuous"  # one of REWARD_POSITIONS
    naive_pull: float = 0.0  # weight of KL(equal blend || softmax(logits)) in the loss (ffe.training.reinforce)

    def __post_init__(self) -> None:
        """Every value the training loop, the exported policy and the runtime can work with, else a ``ValueError``
        naming the setting (as ``--set`` and the MLflow params do: ``meta.<field>``), its value and what it needs."""
        require_integer("meta.seed", self.seed, 0)
        widths = (self.hidden,) if isinstance(self.hidden, int) else self.hidden
        if not isinstance(widths, tuple) or not all(_is_int(w) and w >= 1 for w in widths):
            raise ValueError(f"meta.hidden: every layer width must be an integer >= 1, got {self.hidden!r}")
        require_fraction("meta.smoothing", self.smoothing, "(0, 1]")
        require_integer("meta.roll_bars", self.roll_bars, 1)
        require_integer("meta.epochs", self.epochs, 1)
        require_integer("meta.folds", self.folds, 1)
        if self.folds > self.epochs:  # every walk-forward fold trains at least one epoch
            raise ValueError(f"meta.folds: must be <= meta.epochs, got folds={self.folds}, epochs={self.epochs}")
        require_integer("meta.batch_episodes", self.batch_episodes, 2)  # the REINFORCE baseline is a batch mean
        require_integer("meta.episodes_per_epoch", self.episodes_per_epoch, 2)
        if self.episodes_per_epoch < self.batch_episodes:  # an epoch is whole batches, at least one
            raise ValueError(
                "meta.episodes_per_epoch: must be >= meta.batch_episodes,"
                f" got episodes_per_epoch={self.episodes_per_epoch}, batch_episodes={self.batch_episodes}"
            )
        require_integer("meta.episode_bars", self.episode_bars, 2)
        require_positive("meta.lr", self.lr)
        require_positive("meta.exploration_sigma", self.exploration_sigma)
        require_positive("meta.grad_clip", self.grad_clip)
        require_non_negative("meta.churn_penalty", self.churn_penalty)
        require_non_negative("meta.cost_per_turn", self.cost_per_turn)
        require_non_negative("meta.naive_pull", self.naive_pull)
        # the blend is clipped to [-1, 1]; a band of 1 or more never trades, a negative one has no inside
        require_fraction("meta.entry_threshold", self.entry_threshold, "[0, 1)")
        require_fraction("meta.min_train_fraction", self.min_train_fraction, "(0, 1)")
        if self.reward_position not in REWARD_POSITIONS:
            raise ValueError(
                f"meta.reward_position: must be one of {', '.join(REWARD_POSITIONS)}, got {self.reward_position!r}"
            )

    def recorded(self) -> dict[str, Any]:
        """The config as a dict, without the ``LATE_FIELDS`` still at their default (see the module docstring)."""
        defaults = {f.name: f.default for f in fields(self) if f.name in LATE_FIELDS}
        return {k: v for k, v in asdict(self).items() if k not in defaults or v != defaults[k]}

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)

    @classmethod
    def quick(cls, **overrides: Any) -> MetaTrainConfig:
        """A few seconds of training: for tests and smoke runs, not for a model anyone trades."""
        params: dict[str, Any] = {
            "hidden": 16,
            "epochs": 4,
            "episodes_per_epoch": 32,
            "batch_episodes": 16,
            "episode_bars": 96,
            "folds": 2,
            "lr": 1e-2,
        }
        params.update(overrides)
        return cls(**params)


# --- the checks: a ValueError naming the setting, its value and what it needs ---------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def require_integer(name: str, value: Any, least: int) -> None:
    """``value`` is an integer >= ``least``."""
    if not _is_int(value) or value < least:
        raise ValueError(f"{name}: must be an integer >= {least}, got {value!r}")


def _finite(name: str, value: Any, need: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number {need}, got {value!r}")
    return float(value)


def require_positive(name: str, value: Any) -> None:
    if not _finite(name, value, "> 0") > 0.0:
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")


def require_non_negative(name: str, value: Any) -> None:
    if not _finite(name, value, ">= 0") >= 0.0:
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")


def require_fraction(name: str, value: Any, interval: str) -> None:
    """``value`` in ``interval``: ``(0, 1)``, ``(0, 1]`` or ``[0, 1)``."""
    x = _finite(name, value, f"in {interval}")
    above = x >= 0.0 if interval.startswith("[") else x > 0.0
    below = x <= 1.0 if interval.endswith("]") else x < 1.0
    if not (above and below):
        raise ValueError(f"{name}: must be in {interval}, got {value!r}")
