"""Reproducible training, bit for bit (issue 19): the same seed, data and quick config give the same bundle --
the same version and the same bytes in every file -- also from another process whose ``str`` hashing orders sets
the other way round (``PYTHONHASHSEED``: it once reordered the TorchScript file, ``ffe.training.meta_network.Linear``);
another seed gives another version. The bundle records its training config, code and library versions, and
``ffe train --reproduce`` retrains a recorded bundle (a folder, or a registered version) and says whether it
matches. Quick configs: seconds, not a model anyone trades."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
import torch

from ffe.adapters.replay import datasets, load_bars
from ffe.cli import main
from ffe.local.runner import LocalState
from ffe.training import cli
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.pipeline import EXPERIMENT, TrainPlan, train
from ffe.training.provenance import code_version, plan_from_config, training_config
from ffe.training.tracking import Tracker, tracking_uri

SYMBOLS = ("EURUSD",)

# Trains like ``plan(seed)`` below in a fresh interpreter and prints the bundle version.
_CHILD = """
import sys
from pathlib import Path

import numpy as np
import sklearn
import torch
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.pipeline import TrainPlan, train
seed = int(sys.argv[2])
plan = TrainPlan(seed=seed, symbols={symbols!r}, meta=MetaTrainConfig.quick(seed=seed), ewc_epochs=2, progress=False)
print(train(plan, Path(sys.argv[1])).version)
"""


def plan(seed: int) -> TrainPlan:
    return TrainPlan(seed=seed, symbols=SYMBOLS, meta=MetaTrainConfig.quick(seed=seed), ewc_epochs=2, progress=False)


def files(folder: Path) -> dict[str, str]:
    """Every file of a bundle folder: name -> sha256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def start_training(out: Path, seed: int, hash_seed: int) -> subprocess.Popen[str]:
    """Train in a fresh interpreter with the given ``PYTHONHASHSEED`` (it runs beside this process's training)."""
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    code = _CHILD.format(symbols=SYMBOLS)
    args = [sys.executable, "-c", code, str(out), str(seed)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def version_of(child: subprocess.Popen[str]) -> str:
    out, err = child.communicate()
    assert child.returncode == 0, err
    return out.strip().splitlines()[-1]


def test_same_seed_and_data_give_the_same_bundle_bit_for_bit(tmp_path: Path) -> None:
    # Another process whose str hashing orders {"in_features", "out_features"} the other way round from this one
    # (PYTHONHASHSEED 1 and 2 order it oppositely on CPython 3.11), so a set-ordered export cannot pass by luck
    hash_seed = 2 if next(iter({"in_features", "out_features"})) == "in_features" else 1
    child = start_training(tmp_path / "a", 11, hash_seed=hash_seed)
    here = [train(plan(11), tmp_path / name) for name in ("b", "c")]  # and twice in this process
    elsewhere = version_of(child)
    assert elsewhere == here[0].version == here[1].version
    assert files(tmp_path / "a") == files(here[0].bundle_dir) == files(here[1].bundle_dir)
    assert {"manifest.json", "meta-controller.json", "meta-controller.pt"} <= set(files(tmp_path / "a"))
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["version"] == elsewhere and manifest["seed"] == 11


def test_the_bundle_records_what_it_takes_to_reproduce_it(tmp_path: Path) -> None:
    outcome = train(plan(11), tmp_path / "a")
    manifest = json.loads((outcome.bundle_dir / "manifest.json").read_text())
    assert manifest["seed"] == 11 and set(manifest["data_sha256"]) == set(SYMBOLS)
    # The recorded config is the plan (less its progress bars), and turns back into it
    assert plan_from_config(manifest["training_config"], TrainPlan) == plan(11)
    assert manifest["training_config"]["meta"]["epochs"] == MetaTrainConfig.quick().epochs
    # This checkout's commit (a sha, "-dirty" with changes) and the libraries the numbers depend on
    assert manifest["code_version"] == code_version() and re.fullmatch(r"[0-9a-f]{40}(-dirty)?", code_version())
    assert manifest["libraries"] == {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }


def test_another_seed_gives_another_version(tmp_path: Path) -> None:
    assert train(plan(12), tmp_path / "a").version != train(plan(11), tmp_path / "b").version


def reproduce(capsys: pytest.CaptureFixture[str], tmp_path: Path, version: str, bundle: Path) -> tuple[int, str]:
    """``ffe train --reproduce VERSION --bundle DIR`` (offline: the recorded bundle is a folder, nothing is
    tracked or registered), its exit status and output."""
    code = main(["--state-dir", str(tmp_path / ".ffe"), "train", "--reproduce", version, "--bundle", str(bundle)])
    return code, capsys.readouterr().out


def test_reproduce_retrains_a_recorded_bundle_and_says_whether_it_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = train(plan(11), tmp_path / "recorded")
    code, out = reproduce(capsys, tmp_path, recorded.version, recorded.bundle_dir)
    assert code == 0 and f"version: {recorded.version}, as recorded" in out and "MATCH" in out
    # Another file's bytes (a weight rewritten) and another torch recorded: a mismatch naming both
    tampered = tmp_path / "tampered"
    shutil.copytree(recorded.bundle_dir, tampered)
    meta = json.loads((tampered / "meta-controller.json").read_text())
    meta["smoothing"] += 0.1
    (tampered / "meta-controller.json").write_text(json.dumps(meta, indent=1) + "\n")
    manifest = json.loads((tampered / "manifest.json").read_text())
    manifest["libraries"]["torch"] = "1.0.0"
    (tampered / "manifest.json").write_text(json.dumps(manifest))
    code, out = reproduce(capsys, tmp_path, recorded.version, tampered)
    assert code == 1 and "MISMATCH" in out and "file differs: meta-controller.json" in out
    assert f"changed since: torch 1.0.0 -> {torch.__version__}" in out
    # A bundle saved while TorchScript's debug records were kept (they name the folder it was saved from) matches
    older = tmp_path / "older"
    shutil.copytree(recorded.bundle_dir, older)
    with zipfile.ZipFile(older / "meta-controller.pt", "a") as pt:
        pt.writestr("meta-controller/code/__torch__/ffe/training/meta.py.debug_pkl", b"/elsewhere/meta_network.py")
    code, out = reproduce(capsys, tmp_path, recorded.version, older)
    assert code == 0 and "MATCH" in out


def test_reproduce_refuses_when_the_bundled_data_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = train(plan(11), tmp_path / "recorded")
    manifest = json.loads((recorded.bundle_dir / "manifest.json").read_text())
    manifest["data_sha256"]["EURUSD"] = "0" * 64
    (recorded.bundle_dir / "manifest.json").write_text(json.dumps(manifest))
    code, out = reproduce(capsys, tmp_path, recorded.version, recorded.bundle_dir)
    assert code == 1 and "the training data changed" in out and f"EURUSD: data sha256 {'0' * 64}" not in out
    assert "EURUSD: data sha256" in out and "differs from the recorded " + "0" * 64 in out
    # A bundle from before the config was recorded cannot be reproduced, and says so
    del manifest["training_config"]
    manifest["data_sha256"]["EURUSD"] = recorded.data["EURUSD"]
    (recorded.bundle_dir / "manifest.json").write_text(json.dumps(manifest))
    code, out = reproduce(capsys, tmp_path, recorded.version, recorded.bundle_dir)
    assert code == 1 and "records no training config" in out


def test_reproduce_finds_a_registered_version_in_mlflow(
    postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The way ``ffe models`` finds versions: the registry (by number or bundle version), artifacts downloaded."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri(postgres, database=f"mlflow_{uuid.uuid4().hex[:12]}")
    tracker = Tracker(uri, EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())
    registered = train(plan(11), tmp_path / "bundle", tracker)

    @contextmanager
    def local_tracker(state: Any) -> Iterator[Tracker]:
        yield tracker

    monkeypatch.setattr(cli, "local_tracker", local_tracker)
    state = LocalState(tmp_path / ".ffe")  # an empty local store: only the registry has the bundle
    for version in (str(registered.registered_version), registered.version):
        assert cli.reproduce_command(version, None, None, state) == 0
        assert "MATCH" in capsys.readouterr().out
    assert cli.reproduce_command("ffe-000000000000", None, None, state) == 1
    assert "no bundle ffe-000000000000" in capsys.readouterr().out
    # A version in the local model store (.ffe/models/<version>/, where `ffe train` keeps every bundle) is read
    # from there, without MLflow
    shutil.copytree(registered.bundle_dir, state.model_dir(registered.version))
    monkeypatch.setattr(cli, "local_tracker", None)
    assert cli.reproduce_command(registered.version, None, None, state) == 0
    assert "MATCH" in capsys.readouterr().out


def test_a_walk_forward_fold_plan_round_trips_with_its_cuts() -> None:
    cuts = {"EURUSD": datetime(2017, 6, 1, tzinfo=UTC), "SPX": datetime(2009, 1, 2, tzinfo=UTC)}
    fold = replace(plan(11), symbols=("EURUSD", "SPX"), train_end=cuts)
    config = json.loads(json.dumps(training_config(fold)))  # as a manifest stores it
    assert config["train_end"] == {"EURUSD": "2017-06-01T00:00:00+00:00", "SPX": "2009-01-02T00:00:00+00:00"}
    assert plan_from_config(config, TrainPlan) == fold


def test_a_version_trained_on_your_own_bars_reproduces_from_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / "eurusd.csv"
    bars = load_bars(datasets()["EURUSD"].file)[:3000]
    own.write_text(
        "asset,timeframe,time,open,high,low,close\n"
        + "".join(f"EURUSD,1h,{b.time:%Y-%m-%dT%H:%M:%SZ},{b.open},{b.high},{b.low},{b.close}\n" for b in bars)
    )
    recorded = train(replace(plan(11), data_files={"EURUSD": str(own)}), tmp_path / "recorded")
    assert recorded.data["EURUSD"] == hashlib.sha256(own.read_bytes()).hexdigest()  # the file, not the bundled one
    code, out = reproduce(capsys, tmp_path, recorded.version, recorded.bundle_dir)
    assert code == 0 and "MATCH" in out
    own.write_text(own.read_text().replace(f"{bars[-1].close}\n", f"{bars[-1].close}0\n"))  # same bars, other bytes
    code, out = reproduce(capsys, tmp_path, recorded.version, recorded.bundle_dir)
    assert code == 1 and "the training data changed" in out and "EURUSD: data sha256" in out


def test_a_plan_without_your_own_files_records_the_config_it_recorded_before_they_existed() -> None:
    assert "data_files" not in training_config(plan(11))  # so a version recorded before still compares equal
    with_files = training_config(replace(plan(11), data_files={"EURUSD": "mine.csv"}))
    assert with_files["data_files"] == {"EURUSD": "mine.csv"}
    assert plan_from_config(with_files, TrainPlan).data_files == {"EURUSD": "mine.csv"}


def test_ffe_train_s_recipe_is_recorded_and_old_configs_keep_their_reward() -> None:
    """The recipe differs from the class defaults only in the reward, and says so in what it records; a config
    recorded before the recipe (no reward_position) still means the continuous reward it was trained with."""
    recorded = training_config(TrainPlan())
    assert TrainPlan().meta == replace(MetaTrainConfig(), reward_position="latched")
    assert recorded["meta"]["reward_position"] == "latched"
    assert plan_from_config(recorded, TrainPlan) == replace(TrainPlan(), progress=False)
    old = {**recorded, "meta": {k: v for k, v in recorded["meta"].items() if k != "reward_position"}}
    assert plan_from_config(old, TrainPlan).meta.reward_position == "continuous"
