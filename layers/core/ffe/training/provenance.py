"""What it takes to reproduce a bundle: the training config, the code version and the library versions.

``provenance(plan)`` is written into the bundle's manifest (``ffe.training.pipeline._train``, beside the seed
and the data hashes already there) and tagged on the MLflow run; ``plan_from_config`` turns the recorded
config back into the ``TrainPlan`` that ``ffe train --reproduce`` (``ffe.training.reproduce``) retrains with.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import subprocess
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ffe.training.meta_config import MetaTrainConfig

PACKAGE = "ffe"
# Manifest keys that describe where a bundle was trained, not what it is: left out when bundles are compared.
CIRCUMSTANTIAL = ("mlflow_run_id", "code_version", "libraries")
LATE_PLAN_FIELDS = ("data_files",)  # TrainPlan fields recorded only when set (see training_config)


def provenance(plan: Any) -> dict[str, Any]:
    """``training_config``, ``code_version`` and ``libraries``, JSON-ready, for a manifest."""
    return {"training_config": training_config(plan), "code_version": code_version(), "libraries": libraries()}


def mlflow_tags(record: dict[str, Any]) -> dict[str, str]:
    """A ``provenance`` record as MLflow run tags (the config as one JSON tag; the params have it flattened)."""
    tags = {"ffe.code_version": record["code_version"], "ffe.training_config": json.dumps(record["training_config"])}
    tags.update({f"ffe.library.{name}": v for name, v in record["libraries"].items()})
    return tags


def training_config(plan: Any) -> dict[str, Any]:
    """The plan (with its meta config) as JSON values; the progress bar setting is not part of it.

    The meta config is ``MetaTrainConfig.recorded()``: fields added later are left out while at their default,
    so an old version's recorded config and its retraining's are the same (``ffe train --reproduce``)."""
    out = {k: _jsonable(v) for k, v in dataclasses.asdict(plan).items() if k != "progress"}
    if isinstance(getattr(plan, "meta", None), MetaTrainConfig):
        out["meta"] = _jsonable(plan.meta.recorded())
    for late in LATE_PLAN_FIELDS:  # added after configs were first recorded: left out while unset, as there
        if out.get(late) is None:
            out.pop(late, None)
    return out


def plan_from_config(config: dict[str, Any], plan_type: type[Any]) -> Any:
    """The ``plan_type`` (``TrainPlan``) a recorded ``training_config`` describes, without progress bars."""
    hints = typing.get_type_hints(plan_type)
    kwargs: dict[str, Any] = {"progress": False}
    for f in dataclasses.fields(plan_type):
        if f.name not in config or f.name == "progress":
            continue
        value = config[f.name]
        if f.name == "meta":
            meta: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
            value = MetaTrainConfig(**meta)
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict) and "datetime" in str(hints.get(f.name)):  # train_end: symbol -> time
            value = {k: datetime.fromisoformat(v) for k, v in value.items()}
        kwargs[f.name] = value
    unknown = sorted(set(config) - {f.name for f in dataclasses.fields(plan_type)})
    if unknown:
        raise ValueError(f"the recorded training config has fields this code does not know: {', '.join(unknown)}")
    return plan_type(**kwargs)


def code_version() -> str:
    """The git commit of the working tree holding this package (``-dirty`` when it has changes, untracked files
    included), else ``ffe <package version>`` (an installed package), else ``ffe unknown``."""
    root = Path(__file__).resolve().parent
    try:
        commit = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain")
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        try:
            return f"{PACKAGE} {importlib.metadata.version(PACKAGE)}"
        except importlib.metadata.PackageNotFoundError:  # source copied without metadata (a training container)
            return f"{PACKAGE} unknown"
    return f"{commit}-dirty" if dirty else commit


def libraries() -> dict[str, str]:
    """What the trained numbers depend on: the interpreter, the array and network libraries, the regime mixtures."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "scikit-learn": importlib.metadata.version("scikit-learn"),
    }


def _git(cwd: Path, *args: str) -> str:
    cmd = ["git", *args]  # git from PATH, fixed arguments: never user input
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True, timeout=30)  # noqa: S603
    return done.stdout.strip()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
