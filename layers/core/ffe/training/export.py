"""Writing a trained model as the bundle the runtime loads (``ffe.adapters.models.load_bundle``).

A bundle folder holds ``manifest.json``, the numpy exports (``meta-controller.json``, ``regime-<class>.json``)
and the TorchScript policy (``meta-controller.pt``) the GPU inference container serves. The bundle version is
a digest of the numpy exports, so the same training run always yields the same version and any change to a
parameter yields a new one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ffe.adapters.models import BUNDLE_FORMAT, MANIFEST
from ffe.domain.meta import MetaPolicy
from ffe.domain.regime import RegimeModel

META_FILE = "meta-controller.json"
TORCH_FILE = "meta-controller.pt"


def bundle_version(meta: MetaPolicy, regimes: Mapping[str, RegimeModel]) -> str:
    """``ffe-<12 hex>``: a digest of every numpy export (version fields excluded, so it can name them)."""
    parts = [_versionless(meta.to_dict())] + [_versionless(regimes[c].to_dict()) for c in sorted(regimes)]
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return f"ffe-{digest[:12]}"


def write_bundle(
    folder: Path,
    meta: MetaPolicy,
    regimes: Mapping[str, RegimeModel],
    torch_file: Path | None,
    info: Mapping[str, Any],
) -> Path:
    """Write the bundle into ``folder`` (emptied first); every artifact carries the bundle version."""
    version = bundle_version(meta, regimes)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    meta_dict = {**meta.to_dict(), "version": version}
    (folder / META_FILE).write_text(json.dumps(meta_dict, indent=1) + "\n")
    names = {}
    for cls in sorted(regimes):
        names[cls] = f"regime-{cls}.json"
        (folder / names[cls]).write_text(json.dumps({**regimes[cls].to_dict(), "version": version}, indent=1) + "\n")
    manifest: dict[str, Any] = {"format": BUNDLE_FORMAT, "version": version, "meta": META_FILE, "regimes": names}
    if torch_file is not None:
        shutil.copyfile(torch_file, folder / TORCH_FILE)
        manifest["torchscript"] = TORCH_FILE
    manifest.update(info)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return folder


def _versionless(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "version"}
