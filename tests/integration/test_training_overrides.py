"""``--set KEY=VALUE`` on a training plan: typed, checked, and never the seed or the cuts; a value out of range is
refused before any training, and ``ffe train`` never keeps a bundle the runtime could not load."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ffe.adapters import models
from ffe.adapters.models import ModelUnavailableError
from ffe.cli import main
from ffe.training import cli, pipeline
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.overrides import apply_overrides, settable
from ffe.training.pipeline import TrainPlan, UnloadableBundleError


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


# --- values out of range: refused before any training ---------------------------------------------------------

BAD_PLAN: list[tuple[str, Any]] = [
    ("seed", -1),
    ("holdout_fraction", 0.0),
    ("holdout_fraction", 1.0),
    ("holdout_fraction", math.nan),
    ("online_fraction", 0.0),
    ("online_fraction", 1.0),
    ("online_fraction", 2.0),
    ("n_components", 0),
    ("ewc_lambda", -1.0),
    ("ewc_lambda", math.inf),
    ("ewc_lambda", math.nan),
    ("ewc_epochs", 0),
]


# the --set assignments of the review, each with the key its refusal must name
BAD_ASSIGNMENTS = [
    ("meta.hidden=0", "meta.hidden"),
    ("meta.hidden=-3,2", "meta.hidden"),
    ("meta.churn_penalty=nan", "meta.churn_penalty"),
    ("meta.naive_pull=inf", "meta.naive_pull"),
    ("meta.roll_bars=0", "meta.roll_bars"),
    ("n_components=0", "n_components"),
    ("meta.lr=nan", "meta.lr"),
    ("online_fraction=2", "online_fraction"),
    ("meta.grad_clip=-1", "meta.grad_clip"),
    ("ewc_lambda=inf", "ewc_lambda"),
    ("meta.entry_threshold=1", "meta.entry_threshold"),
]


@pytest.mark.parametrize(("name", "value"), BAD_PLAN)
def test_a_bad_plan_setting_is_refused_naming_it_and_its_value(name: str, value: Any) -> None:
    # Given a plan setting out of its range; when a plan is built with it
    with pytest.raises(ValueError, match=rf"^{name}: ") as caught:
        TrainPlan(**{name: value})

    # Then the message names the setting and the value
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(("assignment", "key"), BAD_ASSIGNMENTS)
def test_apply_overrides_refuses_a_value_out_of_range_naming_the_key(assignment: str, key: str) -> None:
    with pytest.raises(ValueError, match=rf"^--set: {key}: "):
        apply_overrides(TrainPlan(progress=False), [assignment])


@pytest.mark.parametrize(("assignment", "key"), BAD_ASSIGNMENTS[:4])
def test_ffe_train_refuses_a_bad_value_before_any_training(
    assignment: str,
    key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a training function that must never be reached
    trained: list[Any] = []
    monkeypatch.setattr(pipeline, "train", lambda *args, **kwargs: trained.append(args))

    # When ffe train is asked to train with a bad value
    code = main(
        [
            *("--state-dir", str(tmp_path / ".ffe"), "train", "--quick", "--no-mlflow", "--no-progress"),
            *("--symbols", "SPX", "--set", assignment),
        ]
    )

    # Then it is a usage error: one line naming the key, nothing trained, no bundle kept
    err = capsys.readouterr().err.strip()
    assert code == 2 and not trained
    assert len(err.splitlines()) == 1 and key in err and "Traceback" not in err
    assert not list((tmp_path / ".ffe").glob("models/*/manifest.json"))


def test_ffe_train_refuses_bad_command_options_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: list[Any] = []
    monkeypatch.setattr(pipeline, "train", lambda *args, **kwargs: trained.append(args))
    state = ["--state-dir", str(tmp_path / ".ffe")]

    assert main([*state, "train", "--quick", "--no-mlflow", "--epochs", "0"]) == 2
    assert "meta.epochs" in capsys.readouterr().err and not trained


def test_ffe_evaluate_refuses_a_bad_value_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a training function that must never be reached
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("trained with a bad setting")

    monkeypatch.setattr(pipeline, "train", never)

    # When ffe evaluate is asked to train its folds with a bad value
    code = main(
        [
            *("--state-dir", str(tmp_path / ".ffe"), "evaluate", "--quick", "--no-mlflow", "--symbols", "EURUSD"),
            *("--folds", "1", "--seeds", "1", "--out", str(tmp_path / "report"), "--set", "meta.hidden=0"),
        ]
    )

    # Then it is a usage error naming the key, before any fold trains
    err = capsys.readouterr().err.strip()
    assert code == 2 and "meta.hidden" in err and "Traceback" not in err
    assert not (tmp_path / "report" / "evaluation.json").exists()


# --- a bundle the runtime could not load: never registered, kept or made the champion ----------------------------


def _unloadable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's loader refuses every bundle, as it refused one trained with a layer of width 0."""

    def refuse(uri: str) -> Any:
        raise ModelUnavailableError(f"model bundle at {uri} is unusable: layer 0 has a width of 0")

    monkeypatch.setattr(models, "load_bundle", refuse)


class _RecordingTracker:
    """What ``pipeline.train`` asks of a tracker, recorded; a run that raises ends FAILED, as ``Tracker.run``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @contextmanager
    def run(self, run_name: str, params: Any = None, tags: Any = None) -> Iterator[str]:
        try:
            yield "run-1"
        except Exception:
            self.calls.append("FAILED")
            raise
        self.calls.append("FINISHED")

    def log_data_hashes(self, run_id: str, hashes: Any) -> None:
        pass

    def log_metrics(self, run_id: str, metrics: Any, step: int | None = None) -> None:
        pass

    def set_tags(self, run_id: str, tags: Any) -> None:
        self.calls.append("set_tags")

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str) -> None:
        self.calls.append("log_artifacts")

    def register_and_alias(self, run_id: str, artifact_path: str, model_name: str) -> tuple[str, str]:
        self.calls.append("register")
        return "1", "champion"


def test_train_registers_nothing_when_its_bundle_does_not_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a runtime loader that refuses the bundle training writes
    _unloadable(monkeypatch)
    tracker = _RecordingTracker()
    plan = TrainPlan(symbols=("EURUSD",), meta=MetaTrainConfig.quick(), ewc_epochs=2, progress=False)

    # When the plan is trained with tracking
    with pytest.raises(UnloadableBundleError, match=r"cannot be loaded.*width of 0"):
        pipeline.train(plan, tmp_path / "bundle", tracker)  # type: ignore[arg-type]

    # Then the run failed before any artifact was logged or any version registered
    assert tracker.calls == ["FAILED"]


def test_ffe_train_keeps_no_bundle_and_sets_no_champion_when_it_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a runtime loader that refuses the bundle training writes, and a champion that must not change
    _unloadable(monkeypatch)
    champions: list[str] = []
    monkeypatch.setattr(cli, "set_local_champion", lambda state, version, reason: champions.append(version))
    out = tmp_path / "out"

    # When ffe train trains (no MLflow: the champion would be set directly)
    code = main(
        [
            *("--state-dir", str(tmp_path / ".ffe"), "train", "--quick", "--no-mlflow", "--no-progress"),
            *("--symbols", "EURUSD", "--out", str(out)),
        ]
    )

    # Then it refuses in one line: no champion, nothing in the model store, nothing in --out
    err = capsys.readouterr().err.strip()
    assert code == 1 and not champions
    assert len(err.splitlines()) == 1 and "cannot be loaded" in err and "Traceback" not in err
    assert not list((tmp_path / ".ffe").glob("models/*/manifest.json")) and not out.exists()
