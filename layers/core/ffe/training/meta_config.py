"""The meta-controller's training hyperparameters, in one frozen dataclass.

``MetaTrainConfig`` is shared by the environment's evaluation (costs, entry band, the reward's churn penalty
and episode length), the network (width, smoothing, rolled bars), the REINFORCE updates (exploration noise,
learning rate, batch sizes, gradient clip) and the walk-forward loop (epochs, folds). It checks the
combinations the training loop cannot run with when it is built, and ``quick`` gives the few-second
configuration the tests and smoke runs use.

Fields added after versions were first recorded (``LATE_FIELDS``) default to the old behaviour and are left out
of ``recorded()`` while at their default, so a default config names the same policy version
(``ffe.training.meta._derive_version``) and records the same training config (``ffe.training.provenance``) as
before they existed: every recorded version still reproduces bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
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
        if self.epochs < self.folds or self.folds < 1:
            raise ValueError(f"need 1 <= folds <= epochs, got folds={self.folds}, epochs={self.epochs}")
        if self.batch_episodes < 2 or self.episodes_per_epoch < self.batch_episodes:
            raise ValueError("need 2 <= batch_episodes <= episodes_per_epoch (the baseline is a batch mean)")
        if not 0.0 < self.smoothing <= 1.0 or self.exploration_sigma <= 0 or self.episode_bars < 2:
            raise ValueError("need smoothing in (0, 1], exploration_sigma > 0 and episode_bars >= 2")
        if self.reward_position not in REWARD_POSITIONS:
            raise ValueError(
                f"reward_position must be one of {', '.join(REWARD_POSITIONS)}, got {self.reward_position!r}"
            )
        if not self.naive_pull >= 0.0:
            raise ValueError(f"need naive_pull >= 0, got {self.naive_pull}")

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
