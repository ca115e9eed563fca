"""The meta-controller's training hyperparameters, in one frozen dataclass.

``MetaTrainConfig`` is shared by the environment's evaluation (costs, entry band, the reward's churn penalty
and episode length), the network (width, smoothing, rolled bars), the REINFORCE updates (exploration noise,
learning rate, batch sizes, gradient clip) and the walk-forward loop (epochs, folds). It checks the
combinations the training loop cannot run with when it is built, and ``quick`` gives the few-second
configuration the tests and smoke runs use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

    def __post_init__(self) -> None:
        if self.epochs < self.folds or self.folds < 1:
            raise ValueError(f"need 1 <= folds <= epochs, got folds={self.folds}, epochs={self.epochs}")
        if self.batch_episodes < 2 or self.episodes_per_epoch < self.batch_episodes:
            raise ValueError("need 2 <= batch_episodes <= episodes_per_epoch (the baseline is a batch mean)")
        if not 0.0 < self.smoothing <= 1.0 or self.exploration_sigma <= 0 or self.episode_bars < 2:
            raise ValueError("need smoothing in (0, 1], exploration_sigma > 0 and episode_bars >= 2")

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
