"""`ffe models promote VERSION` and `ffe experiments promote ID` behind the promotion gate, through the real MLflow
tracker on the test Postgres.

Registered versions carry seeded fake bundles and synthetic walk-forward evidence (tests/fakes/evidence.py), attached
the way `ffe evaluate --version V` attaches it (run artifacts under evidence/, model-version tag ffe.evidence): no
training, a few seconds.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ffe import experiments_cli
from ffe.adapters.models import ModelStore
from ffe.domain.experiments import CanaryPlan, CanaryStep, Experiment, Mode
from ffe.evaluation.gate import load_evidence
from ffe.local.errors import LocalError
from ffe.training import cli
from ffe.training.pipeline import BUNDLE_ARTIFACT_PATH, EXPERIMENT, MODEL_NAME
from ffe.training.tracking import CHALLENGER, CHAMPION, EVIDENCE_TAG, PREVIOUS_CHAMPION, Tracker, tracking_uri
from tests.database import StateOnDatabase, own_database
from tests.fakes.evidence import returns, write_evidence
from tests.fakes.models import random_bundle, write_bundle

NAIVE = returns(1, 0.0002)
WINNER = NAIVE + returns(2, 0.002, sd=0.002)
LOSER = NAIVE - returns(3, 0.002, sd=0.002)


@pytest.fixture
def registry(postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Tracker, StateOnDatabase]:
    """Versions 1 (champion), 2 and 3 (challengers) of the model, each with its own bundle, no evidence yet."""
    for key in ("MLFLOW_TRACKING_URI", "FFE_PROMOTION_METRIC", "FFE_PROMOTION_CONFIDENCE"):
        monkeypatch.delenv(key, raising=False)
    name = uuid.uuid4().hex[:12]
    tracker = Tracker(
        tracking_uri(postgres, database=f"mlflow_{name}"), EXPERIMENT, artifact_location=(tmp_path / "art").as_uri()
    )
    runs: dict[str, str] = {}
    for v in (1, 2, 3):
        run_id = tracker.start_run(f"v{v}", tags={"ffe.bundle_version": f"ffe-gate{v}"})
        bundle = write_bundle(random_bundle(seed=v, version=f"ffe-gate{v}"), tmp_path / f"bundle{v}")
        tracker.log_artifacts(run_id, bundle, BUNDLE_ARTIFACT_PATH)
        tracker.end_run(run_id)
        tracker.register_and_alias(run_id, BUNDLE_ARTIFACT_PATH, MODEL_NAME)
        runs[f"ffe-gate{v}"] = run_id

    @contextmanager
    def local_tracker(state: Any) -> Iterator[Tracker]:
        yield tracker

    monkeypatch.setattr(cli, "local_tracker", local_tracker)
    state = StateOnDatabase(tmp_path / ".ffe", own_database(postgres, f"promote_gate_{name}"))
    for version, run_id in runs.items():  # what `ffe train` leaves in the local store: the manifest names the run
        folder = write_bundle(random_bundle(seed=int(version[-1]), version=version), state.model_dir(version))
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps(manifest | {"mlflow_run_id": run_id}))
    return tracker, state


def attach(tracker: Tracker, tmp_path: Path, version: str, meta: np.ndarray) -> None:
    folder = write_evidence(
        tmp_path / f"evidence{version}",
        {s: {"meta_controller": meta, "naive_router": NAIVE} for s in ("BTCUSD", "EURUSD")},
        registered_version=version,
    )
    tracker.attach_evidence(MODEL_NAME, version, folder)


def promote(state: StateOnDatabase, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    cli.add_models_arguments(parser)
    code = cli.models_command(parser.parse_args(["promote", *argv]), state)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def aliases(tracker: Tracker) -> dict[str, str]:
    return {alias: str(v) for alias, v in tracker.client.get_registered_model(MODEL_NAME).aliases.items()}


def test_refused_without_evidence_or_on_losing_evidence_and_usage_mistakes_exit_2(
    registry: tuple[Tracker, StateOnDatabase], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker, state = registry
    attach(tracker, tmp_path, "1", NAIVE)
    before, local_before = aliases(tracker), cli.local_champion(state)
    assert before == {CHAMPION: "1", CHALLENGER: "3"}
    # No evidence on v2: refused, saying how to get some
    code, out, err = promote(state, capsys, "2")
    assert code == 1 and out == ""
    assert "promotion gate refused" in err and "v2 has no walk-forward evidence" in err
    assert "`ffe evaluate --version 2`" in err and "--force --reason" in err
    # Losing evidence on v3: refused, every comparison on its own line with the per-series figures
    attach(tracker, tmp_path, "3", LOSER)
    code, _, err = promote(state, capsys, "v3")
    assert code == 1
    assert "FAIL vs naive_router: P(mean sharpe gap > 0) = 0.000 < 0.9" in err and "FAIL vs champion v1" in err
    assert "    BTCUSD: candidate " in err
    # Usage mistakes are exit 2 and change nothing
    for argv, message in (
        (["3", "--force"], "--force needs --reason"),
        (["3", "--force", "--reason", "  "], "--force needs --reason"),
        (["3", "--reason", "because"], "--reason goes with --force"),
        (["3", "--confidence", "1.5"], "--confidence lies strictly between 0.5 and 1"),
        (["3", "--confidence", "0.3"], "--confidence lies strictly between 0.5 and 1"),
        (["9"], "has no version '9'"),
        (["ffe-gate3"], "is not a registry number"),
    ):
        code, _, err = promote(state, capsys, *argv)
        assert code == 2 and message in err, argv
    assert aliases(tracker) == before
    assert EVIDENCE_TAG in tracker.model_version_tags(MODEL_NAME, "3")
    assert not any(k.startswith("ffe.promotion.") for k in tracker.model_version_tags(MODEL_NAME, "3"))
    assert cli.local_champion(state) == local_before  # nothing was promoted locally either


def test_winning_evidence_promotes_and_records_the_gate_on_the_version(
    registry: tuple[Tracker, StateOnDatabase], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker, state = registry
    attach(tracker, tmp_path, "1", NAIVE)
    attach(tracker, tmp_path, "2", WINNER)
    code, out, _ = promote(state, capsys, "2", "--metric", "sortino", "--confidence", "0.95")
    assert code == 0 and "promotion gate passed (sortino, confidence 0.95)" in out
    assert "v2 (ffe-gate2) is the champion" in out
    assert aliases(tracker) == {CHAMPION: "2", PREVIOUS_CHAMPION: "1", CHALLENGER: "3"}
    tags = tracker.model_version_tags(MODEL_NAME, "2")
    assert tags["ffe.promotion.gate"] == "passed" and "ffe.promotion.reason" not in tags
    assert (tags["ffe.promotion.metric"], tags["ffe.promotion.confidence"]) == ("sortino", "0.95")
    assert float(tags["ffe.promotion.p_naive_router"]) >= 0.95 and float(tags["ffe.promotion.p_champion"]) >= 0.95
    assert tags["ffe.promotion.previous_champion"] == "1" and tags["ffe.promotion.by"]
    assert datetime.fromisoformat(tags["ffe.promotion.at"]).utcoffset() is not None
    # The bundle is in the local store and is the local champion, as before the gate
    assert cli.local_champion(state) == "ffe-gate2" and (state.model_dir("ffe-gate2") / "manifest.json").is_file()
    # ...with its evidence beside it, where `ffe api`'s gate reads the champion's (ModelStore.evidence)
    local = ModelStore(str(state.models)).evidence("ffe-gate2", tmp_path / "read-back")
    assert local is not None and load_evidence(local).series.keys() == {"BTCUSD", "EURUSD"}


def test_a_champion_without_evidence_refuses_until_forced_with_a_reason(
    registry: tuple[Tracker, StateOnDatabase],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracker, state = registry
    attach(tracker, tmp_path, "3", WINNER)
    code, _, err = promote(state, capsys, "3")
    assert code == 1 and "pass vs naive_router" in err
    assert "FAIL vs champion v1: v1 has no walk-forward evidence, so nothing shows v3 beats it" in err
    assert "`ffe evaluate --version 1`" in err
    # The project's settings come from the environment; forcing overrules the gate and records why
    monkeypatch.setenv("FFE_PROMOTION_CONFIDENCE", "0.8")
    code, out, _ = promote(state, capsys, "3", "--force", "--reason", "v1's evaluation predates the gate")
    assert code == 0 and "forced: v1's evaluation predates the gate" in out
    assert aliases(tracker)[CHAMPION] == "3"
    tags = tracker.model_version_tags(MODEL_NAME, "3")
    assert tags["ffe.promotion.gate"] == "forced" and tags["ffe.promotion.confidence"] == "0.8"
    assert tags["ffe.promotion.reason"] == "v1's evaluation predates the gate"
    assert float(tags["ffe.promotion.p_naive_router"]) >= 0.99 and tags["ffe.promotion.p_champion"] == "not computed"
    assert cli.local_champion(state) == "ffe-gate3"


def experiments(state: StateOnDatabase, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    experiments_cli.add_arguments(parser)
    code = experiments_cli.command(parser.parse_args(list(argv)), state)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def split_experiment(
    state: StateOnDatabase, capsys: pytest.CaptureFixture[str], name: str, treatment: str, asset: str
) -> None:
    """A running split experiment of ``treatment`` against ffe-gate1 on ``asset``, at its last (only) canary step."""
    plan = CanaryPlan((CanaryStep(1.0, 0, timedelta(0)),))
    assets = frozenset({asset})
    experiment = Experiment(name, "ffe-gate1", treatment, Mode.SPLIT, datetime.now(UTC), assets, plan=plan)
    with experiments_cli._store(state) as store:
        store.create(experiment)
    assert experiments(state, capsys, "start", name)[0] == 0


def test_experiment_promotion_runs_the_gate_on_a_registered_treatment_with_evidence(
    registry: tuple[Tracker, StateOnDatabase], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker, state = registry
    attach(tracker, tmp_path, "1", NAIVE)
    attach(tracker, tmp_path, "3", LOSER)
    attach(tracker, tmp_path, "2", WINNER)
    # Losing evidence: refused, the experiment keeps running; --force needs a reason
    split_experiment(state, capsys, "exp-lose", "ffe-gate3", "BTCUSD")
    code, _, err = experiments(state, capsys, "promote", "exp-lose")
    assert code == 1 and "FAIL vs naive_router" in err and "FAIL vs champion v1" in err
    with pytest.raises(LocalError, match="--force needs --why"):
        experiments(state, capsys, "promote", "exp-lose", "--force")
    assert experiments(state, capsys, "show", "exp-lose", "--json")[1].count('"status": "running"') == 1
    # Winning evidence against the control's: promoted, and the promotion recorded on the registered version
    split_experiment(state, capsys, "exp-win", "ffe-gate2", "EURUSD")
    code, _, err = experiments(state, capsys, "promote", "exp-win", "--why", "canary clean")
    assert code == 0 and "promotion gate passed" in err
    tags = tracker.model_version_tags(MODEL_NAME, "2")
    assert tags["ffe.promotion.gate"] == "passed" and tags["ffe.promotion.experiment"] == "exp-win"
    assert tags["ffe.promotion.previous_champion"] == "1" and tags["ffe.promotion.reason"] == "canary clean"
    # Forced past a refusal: promoted, recorded as forced with the reason
    code, _, _ = experiments(state, capsys, "promote", "exp-lose", "--force", "--why", "accepting the risk")
    assert code == 0
    tags = tracker.model_version_tags(MODEL_NAME, "3")
    assert tags["ffe.promotion.gate"] == "forced" and tags["ffe.promotion.reason"] == "accepting the risk"
