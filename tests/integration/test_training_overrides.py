"""``--set KEY=VALUE`` on a training plan: typed, checked, and never the seed or the cuts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ffe.cli import main
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.overrides import apply_overrides, settable
from ffe.training.pipeline import TrainPlan


def test_values_take_the_type_of_their_field() -> None:
    plan = apply_overrides(
        TrainPlan(),
        ["meta.churn_penalty=0.05", "meta.epochs=12", "ewc_lambda=2", "meta.hidden=64,32", "n_components=4"],
    )
    assert plan.meta.churn_penalty == 0.05 and plan.meta.epochs == 12 and plan.meta.hidden == (64, 32)
    assert plan.ewc_lambda == 2.0 and isinstance(plan.ewc_lambda, float) and plan.n_components == 4
    assert plan.meta.seed == TrainPlan().meta.seed and plan.seed == TrainPlan().seed  # nothing else moved
    assert apply_overrides(TrainPlan(), ["meta.hidden=16"]).meta.hidden == 16
    assert apply_overrides(TrainPlan(), []) == TrainPlan()


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("meta.churn_penalty", "takes KEY=VALUE"),
        ("=3", "takes KEY=VALUE"),
        ("seed=3", "set by the command itself"),
        ("meta.seed=3", "set by the command itself"),
        ("train_end=2019-01-01", "set by the command itself"),
        ("meta.nope=1", "no such setting"),
        ("nope=1", "no such setting"),
        ("meta.epochs=1.5", "not a int"),
        ("meta.lr=fast", "not a float"),
        ("meta.hidden=64,x", "not integers"),
        ("meta.folds=500", "folds"),  # the config's own check: more folds than epochs
    ],
)
def test_a_bad_assignment_is_refused_naming_it(assignment: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_overrides(TrainPlan(meta=MetaTrainConfig()), [assignment])


def test_every_settable_key_is_accepted() -> None:
    keys = settable(TrainPlan())
    assert "meta.churn_penalty" in keys and "ewc_lambda" in keys and "seed" not in keys and "meta.seed" not in keys


def test_ffe_train_set_trains_and_records_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = ["--state-dir", str(tmp_path / ".ffe")]
    base = [*state, "train", "--quick", "--symbols", "EURUSD", "--no-mlflow", "--no-progress"]
    assert main([*base, "--set", "meta.churn_penalty=0.07", "--out", str(tmp_path / "bundle")]) == 0
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["training_config"]["meta"]["churn_penalty"] == 0.07
    assert main([*base, "--set", "meta.nope=1"]) == 2
    assert "no such setting" in capsys.readouterr().err
