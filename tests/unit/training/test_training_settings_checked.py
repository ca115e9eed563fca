"""Every meta-controller setting is checked when its config is built: a bad value is a ``ValueError`` naming the
setting as ``--set`` names it (``meta.<field>``), never a traceback from deep inside the training.

The plan's own settings, ``--set`` and the commands: tests/integration/test_training_overrides.py (``TrainPlan``
lives beside the MLflow tracking, which unit tests do not import)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from ffe.training.meta_config import MetaTrainConfig

# The meta config a registered version recorded (docs/model-card/evaluation.json): it must still build.
RECORDED: dict[str, Any] = {
    "hidden": 32,
    "smoothing": 0.2,
    "roll_bars": 24,
    "epochs": 90,
    "episodes_per_epoch": 1024,
    "batch_episodes": 128,
    "episode_bars": 256,
    "lr": 0.001,
    "exploration_sigma": 0.5,
    "churn_penalty": 0.02,
    "cost_per_turn": 0.0002,
    "entry_threshold": 0.15,
    "folds": 3,
    "min_train_fraction": 0.4,
    "grad_clip": 1.0,
}

# (field, bad value): the values review found failing deep in training or silently accepted, and their neighbours
BAD_META: list[tuple[str, Any]] = [
    ("hidden", 0),
    ("hidden", (-3, 2)),
    ("hidden", (32, 0)),
    ("hidden", 1.5),
    ("smoothing", 0.0),
    ("smoothing", 1.5),
    ("smoothing", math.nan),
    ("roll_bars", 0),
    ("roll_bars", -1),
    ("epochs", 0),
    ("folds", 0),
    ("batch_episodes", 1),
    ("episodes_per_epoch", 0),
    ("episode_bars", 1),
    ("lr", 0.0),
    ("lr", -1e-3),
    ("lr", math.nan),
    ("lr", math.inf),
    ("exploration_sigma", 0.0),
    ("exploration_sigma", math.inf),
    ("churn_penalty", math.nan),
    ("churn_penalty", -0.01),
    ("cost_per_turn", -1e-4),
    ("cost_per_turn", math.inf),
    ("entry_threshold", -0.1),
    ("entry_threshold", 1.0),
    ("entry_threshold", math.nan),
    ("min_train_fraction", 0.0),
    ("min_train_fraction", 1.0),
    ("grad_clip", -1.0),
    ("grad_clip", 0.0),
    ("grad_clip", math.nan),
    ("naive_pull", math.inf),
    ("naive_pull", -1.0),
    ("seed", -1),
]


@pytest.mark.parametrize(("name", "value"), BAD_META)
def test_a_bad_meta_setting_is_refused_naming_it_and_its_value(name: str, value: Any) -> None:
    # Given a value the training loop, the exported policy or the runtime cannot work with
    # When a config is built with it
    with pytest.raises(ValueError, match=rf"^meta\.{name}: ") as caught:
        MetaTrainConfig(**{name: value})

    # Then the message names the setting and the value
    assert repr(value) in str(caught.value)


def test_combinations_the_loop_cannot_run_name_both_settings() -> None:
    with pytest.raises(ValueError, match=r"meta\.folds.*meta\.epochs.*folds=5, epochs=4"):
        MetaTrainConfig.quick(folds=5)
    with pytest.raises(ValueError, match=r"meta\.episodes_per_epoch.*meta\.batch_episodes"):
        MetaTrainConfig.quick(episodes_per_epoch=8)


def test_every_config_in_use_is_accepted() -> None:
    # Given the configs the code, the tests and the recorded bundles train with
    configs = [
        MetaTrainConfig(),
        MetaTrainConfig(seed=7, reward_position="latched"),  # ffe.training.pipeline.recipe()
        MetaTrainConfig.quick(),
        MetaTrainConfig.quick(seed=0, epochs=3),
        MetaTrainConfig(**RECORDED),
        MetaTrainConfig(hidden=(64, 32), entry_threshold=0.0, churn_penalty=0.0, cost_per_turn=0.0, smoothing=1.0),
        MetaTrainConfig(reward_position="traded", naive_pull=0.3, lr=1, grad_clip=5),  # ints where floats go
    ]

    # Then each builds again when one setting changes (dataclasses.replace checks the new config)
    for config in configs:
        assert replace(config, churn_penalty=0.05).churn_penalty == 0.05


def test_a_replaced_setting_is_checked_too() -> None:
    # Given a sound config; when one setting is replaced by a bad value
    with pytest.raises(ValueError, match=r"^meta\.roll_bars: must be an integer >= 1, got 0$"):
        replace(MetaTrainConfig.quick(), roll_bars=0)
