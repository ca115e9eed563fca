"""``ffe train --reproduce``: retrain a recorded bundle from its manifest and say whether the result matches.

A bundle's manifest records its seed, training config, data hashes, code and library versions
(``ffe.training.provenance``). ``check_data`` hashes the bundled series again; ``reproduce`` retrains with the
recorded plan (tracked nowhere, registered nowhere) and ``compare``s: a match is the same bundle version and
the same bytes in every file but the manifest, whose recorded fields must agree too except where it was trained
(``CIRCUMSTANTIAL``: the MLflow run, the code and library versions, which are reported when they changed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffe.adapters.models import MANIFEST
from ffe.domain.errors import InvalidInputError
from ffe.training.data import load_series, series_from_file
from ffe.training.export import TORCH_FILE
from ffe.training.meta_network import without_debug_info
from ffe.training.pipeline import TrainPlan, train
from ffe.training.provenance import CIRCUMSTANTIAL, code_version, libraries, plan_from_config


@dataclass
class Comparison:
    recorded_version: str
    new_version: str
    differing_files: list[str] = field(default_factory=list)  # missing on either side, or other bytes
    differing_record: list[str] = field(default_factory=list)  # manifest fields (seed, config, data hashes...)
    changed: list[str] = field(default_factory=list)  # code and library versions: "torch 2.12.0 -> 2.13.0"

    @property
    def matches(self) -> bool:
        return self.recorded_version == self.new_version and not self.differing_files and not self.differing_record

    def lines(self) -> list[str]:
        out = []
        if self.recorded_version == self.new_version:
            out.append(f"version: {self.new_version}, as recorded")
        else:
            out.append(f"version differs: recorded {self.recorded_version}, retrained {self.new_version}")
        out.extend(f"file differs: {name}" for name in self.differing_files)
        out.extend(f"manifest field differs: {name}" for name in self.differing_record)
        out.extend(f"changed since: {what}" for what in self.changed)
        out.append("MATCH: same version, same bytes" if self.matches else "MISMATCH")
        return out


def read_manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    return manifest


def check_data(manifest: dict[str, Any]) -> list[str]:
    """What no longer hashes as recorded (one line per series); empty when every bundled file is the same."""
    problems = []
    files = (manifest.get("training_config") or {}).get("data_files") or {}
    for symbol, recorded in sorted(manifest.get("data_sha256", {}).items()):
        try:
            now = (
                series_from_file(Path(files[symbol]), symbol).sha256 if symbol in files else load_series(symbol).sha256
            )
        except KeyError:
            problems.append(f"{symbol}: no longer bundled")
            continue
        except (OSError, InvalidInputError) as exc:  # the user's file moved or changed shape
            problems.append(f"{symbol}: {exc}")
            continue
        if now != recorded:
            problems.append(f"{symbol}: data sha256 {now} differs from the recorded {recorded}")
    return problems


def recorded_plan(manifest: dict[str, Any]) -> TrainPlan:
    """The plan a manifest records.

    Raises:
        ValueError: the bundle was trained before training configs were recorded (or by other code).
    """
    if "training_config" not in manifest:
        raise ValueError(f"bundle {manifest.get('version')} records no training config: it cannot be reproduced")
    plan: TrainPlan = plan_from_config(manifest["training_config"], TrainPlan)
    return plan


def reproduce(recorded_dir: Path, out_dir: Path) -> Comparison:
    """Retrain ``recorded_dir``'s bundle into ``out_dir`` from its recorded plan and compare the two."""
    manifest = read_manifest(recorded_dir)
    outcome = train(recorded_plan(manifest), out_dir)  # no tracker: nothing is logged or registered
    return compare(recorded_dir, outcome.bundle_dir)


def compare(recorded_dir: Path, new_dir: Path) -> Comparison:
    old, new = read_manifest(recorded_dir), read_manifest(new_dir)
    old_files, new_files = _files(recorded_dir), _files(new_dir)
    keys = (set(old) | set(new)) - set(CIRCUMSTANTIAL)
    changed = [
        f"{name} {old.get('libraries', {}).get(name, '?')} -> {now}"
        for name, now in libraries().items()
        if old.get("libraries", {}).get(name) != now
    ]
    if old.get("code_version") != code_version():
        changed.insert(0, f"code {old.get('code_version', '?')} -> {code_version()}")
    return Comparison(
        recorded_version=str(old.get("version")),
        new_version=str(new.get("version")),
        differing_files=sorted(n for n in set(old_files) | set(new_files) if old_files.get(n) != new_files.get(n)),
        differing_record=sorted(k for k in keys if old.get(k) != new.get(k)),
        changed=changed,
    )


def _files(folder: Path) -> dict[str, str]:
    """Every file of a bundle folder but the manifest (compared field by field): name -> sha256. The TorchScript
    file is hashed without its debug records, which older bundles carry and which name the folder it was saved
    from, not the model (``without_debug_info``)."""
    return {
        p.name: hashlib.sha256(without_debug_info(raw) if p.name == TORCH_FILE else raw).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST
        for raw in [p.read_bytes()]
    }
