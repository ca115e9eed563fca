"""`ffe train` keeps every bundle in the local store (.ffe/models/<version>/); a champion also lands in Postgres."""

from __future__ import annotations

import shutil
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from ffe.adapters.experiments import PostgresExperiments
from ffe.adapters.models import ModelStore, bundled_version
from ffe.training import cli, pipeline
from tests.database import StateOnDatabase, own_database
from tests.fakes.models import random_bundle, write_bundle


def fake_train(version: str, alias: str | None) -> Any:
    """``pipeline.train`` writing a valid bundle of ``version`` and registering it as ``alias``."""

    def train(plan: Any, bundle_dir: Path, tracker: Any = None) -> pipeline.TrainOutcome:
        write_bundle(random_bundle(seed=3, version=version), bundle_dir)
        return pipeline.TrainOutcome(version, bundle_dir, "run-1", "1", alias, {}, {}, {}, {})

    return train


@pytest.fixture
def state(postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StateOnDatabase:
    monkeypatch.setattr(pipeline, "summary", lambda outcome: f"bundle {outcome.version}")
    monkeypatch.setattr(cli, "local_tracker", lambda state: _nothing())
    return StateOnDatabase(tmp_path / ".ffe", own_database(postgres, "train_local_store"))


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def args(**change: Any) -> Namespace:
    base = {"seed": 7, "symbols": "", "epochs": None, "quick": True, "out": None, "no_progress": True}
    return Namespace(**{**base, "no_mlflow": False, **change})


def champion(state: StateOnDatabase) -> str:
    store = PostgresExperiments(state.url)
    try:
        return store.champion().version
    finally:
        store.close()


def test_a_champion_is_stored_and_recorded_a_challenger_only_stored(
    state: StateOnDatabase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert champion(state) == bundled_version()  # nothing set yet: the layer's bundle
    # When a first version trains and becomes the champion
    monkeypatch.setattr(pipeline, "train", fake_train("ffe-00000000c001", "champion"))
    assert cli.train_command(args(), state) == 0
    # Then its bundle is in the local store and it is the champion in Postgres
    assert ModelStore(str(state.models)).bundle("ffe-00000000c001").version == "ffe-00000000c001"
    assert champion(state) == "ffe-00000000c001"
    # When a second trains as a challenger
    monkeypatch.setattr(pipeline, "train", fake_train("ffe-00000000c002", "challenger"))
    assert cli.train_command(args(), state) == 0
    out = capsys.readouterr().out
    # Then it is in the store too (an experiment can serve it), and the champion did not change
    assert ModelStore(str(state.models)).exists("ffe-00000000c002")
    assert champion(state) == "ffe-00000000c001"
    assert "ffe experiments create --treatment ffe-00000000c002" in out
    assert cli.local_champion(state) == "ffe-00000000c001"


def test_publish_defaults_to_the_local_champion(state: StateOnDatabase, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the shipped bundle in the store but a champion with no local bundle
    shutil.copytree(
        Path(str(resources.files("ffe.data.models"))),
        state.model_dir(bundled_version()),
        ignore=shutil.ignore_patterns("__init__.py", "__pycache__", "*.md"),
    )
    store = PostgresExperiments(state.url)
    store.set_champion("ffe-0000000000aa", actor="test")
    store.close()
    # Then publish names what it lacks and what the store holds, before touching AWS
    assert cli._publish(state, "dev", "ffe-dev-models", "us-east-1", None) == 1
    out = capsys.readouterr().out
    assert "no bundle ffe-0000000000aa" in out and bundled_version() in out
