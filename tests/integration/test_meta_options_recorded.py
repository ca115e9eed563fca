"""The meta-controller's late training options (``MetaTrainConfig.reward_position``, ``naive_pull``) in the
recorded training config: at their defaults the config is recorded exactly as before they existed (so every
recorded version reproduces), set they are recorded and come back, and ``--set`` parses and checks them.
(Integration: ``TrainPlan`` imports the pipeline, which reaches Postgres' driver; nothing here trains.)"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from ffe.training.meta_config import LATE_FIELDS, MetaTrainConfig
from ffe.training.overrides import apply_overrides
from ffe.training.pipeline import TrainPlan
from ffe.training.provenance import plan_from_config, training_config


def test_defaults_record_the_same_config_as_before_the_options() -> None:
    config = MetaTrainConfig.quick()
    before = {k: v for k, v in asdict(config).items() if k not in LATE_FIELDS}  # the config as recorded before
    assert config.recorded() == before
    plan = TrainPlan(symbols=("EURUSD",), meta=config, progress=False)
    assert training_config(plan)["meta"] == json.loads(json.dumps(before))
    assert plan_from_config(json.loads(json.dumps(training_config(plan))), TrainPlan) == plan


def test_set_options_are_recorded_and_come_back() -> None:
    plan = apply_overrides(TrainPlan(progress=False), ["meta.reward_position=latched", "meta.naive_pull=0.3"])
    assert plan.meta.reward_position == "latched" and plan.meta.naive_pull == 0.3
    recorded = json.loads(json.dumps(training_config(plan)))
    assert recorded["meta"]["reward_position"] == "latched" and recorded["meta"]["naive_pull"] == 0.3
    assert plan_from_config(recorded, TrainPlan) == plan


@pytest.mark.parametrize("bad", ["meta.reward_position=sideways", "meta.naive_pull=-1"])
def test_bad_option_values_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"reward_position|naive_pull"):
        apply_overrides(TrainPlan(progress=False), [bad])
