"""Model bundles by version: the numpy export the runtime reads (regime mixtures per asset class, meta-controller).

A bundle is a folder (or S3 prefix) holding ``manifest.json`` and the files it names, as written by ``ffe train``
(``ffe.training.export``). Every reader resolves a bundle BY VERSION from one ``ModelStore``: the root
``MODEL_STORE`` names (``bundled``: only the bundle shipped in the layer; a local folder; or
``s3://bucket/prefix``) holds ``<root>/<version>/manifest.json`` and the files it names. The layer's own version
(``bundled_version()``) always resolves from the package, whatever the root. Which version decides is not the
store's business: the champion is the newest ``model_champions`` row (``ffe.adapters.experiments``), resolved
once per cycle. A missing or corrupt bundle is not an error for the cycle: the steps fall back to the naive
router and say why in every decision.

A version may also have its walk-forward evidence beside it, ``<root>/<version>/evidence/`` (``evaluation.json``
and ``paths.npz``, what ``ffe evaluate --version`` attached to it in MLflow; ``ffe models publish`` uploads them
before the manifest): the API's promotion gate reads it (``ModelStore.evidence``; docs/models.md, "Promotion gate").
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ffe.containers import container_cached
from ffe.domain.errors import InvalidInputError, TransientError
from ffe.domain.meta import MetaPolicy
from ffe.domain.regime import RegimeModel
from ffe.evaluation.files import PATHS_NPZ, REPORT_JSON
from ffe.version_cache import VersionCache

BUNDLE_FORMAT = "ffe.models/1"
BUNDLED = "bundled"
MANIFEST = "manifest.json"
EVIDENCE = "evidence"
EVIDENCE_FILES = (REPORT_JSON, PATHS_NPZ)  # ffe.evaluation.files imports nothing: the store never loads numpy
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # contracts.NAME_PATTERN: one path segment, no ..


@dataclass(frozen=True)
class ModelBundle:
    version: str
    meta: MetaPolicy
    regimes: Mapping[str, RegimeModel]  # by asset class
    source: str
    manifest: Mapping[str, Any] = field(default_factory=dict)


class ModelUnavailableError(Exception):
    """The bundle could not be read or validated; the message is the reason the decisions will carry."""


@functools.cache
def bundled_version() -> str:
    """The version of the bundle shipped in the layer: the champion until one is set (``model_champions``)."""
    manifest = json.loads(resources.files("ffe.data.models").joinpath(MANIFEST).read_bytes())
    return str(manifest["version"])


def load_bundle(uri: str) -> ModelBundle:
    """Read and validate the bundle at ``uri`` (``bundled``, a folder or ``s3://bucket/prefix``).

    Raises:
        ModelUnavailableError: missing files, unreadable storage, or an artifact that fails validation.
    """
    read = _reader(uri)
    try:
        manifest = json.loads(read(MANIFEST))
        if manifest.get("format") != BUNDLE_FORMAT:
            raise InvalidInputError(f"manifest format {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}")
        meta = MetaPolicy.from_dict(json.loads(read(manifest["meta"])))
        regimes = {cls: RegimeModel.from_dict(json.loads(read(name))) for cls, name in manifest["regimes"].items()}
    except ModelUnavailableError:
        raise
    except (InvalidInputError, KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        raise ModelUnavailableError(f"model bundle at {uri} is unusable: {exc}") from exc
    for cls, model in regimes.items():
        if model.n_components != meta.n_regimes or model.feature_names != meta.feature_names:
            raise ModelUnavailableError(
                f"model bundle at {uri} is inconsistent: the {cls} regime model has {model.n_components} "
                f"regimes over {model.feature_names}, the meta-controller expects {meta.n_regimes} over "
                f"{meta.feature_names}"
            )
    return ModelBundle(str(manifest["version"]), meta, regimes, uri, manifest)


def _reader(uri: str) -> Callable[[str], bytes]:
    if uri == BUNDLED:
        root = resources.files("ffe.data.models")
        return lambda name: _read_file(uri, name, lambda: root.joinpath(name).read_bytes())
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return lambda name: _s3_get(uri, bucket, _key(prefix, name))
    folder = Path(uri.removeprefix("file://"))
    return lambda name: _read_file(uri, name, (folder / name).read_bytes)


def _key(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}".lstrip("/")


def _read_file(uri: str, name: str, read: Callable[[], bytes]) -> bytes:
    try:
        return read()
    except OSError as exc:
        raise ModelUnavailableError(f"model bundle at {uri} has no readable {name}: {exc}") from exc


def _s3_get(uri: str, bucket: str, key: str) -> bytes:
    """One object; a missing or forbidden object means no model, anything else is worth a retry."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body: bytes = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if 400 <= int(status) < 500:
            raise ModelUnavailableError(f"model bundle at {uri}: cannot read {key}: {exc}") from exc
        raise TransientError(f"S3 error reading the model bundle at {uri}: {exc}", bucket=bucket, key=key) from exc
    except BotoCoreError as exc:
        raise TransientError(
            f"S3 unreachable reading the model bundle at {uri}: {exc}", bucket=bucket, key=key
        ) from exc
    return body


class ModelStore:
    """Bundles by version under one root: ``bundled``, a folder, or ``s3://bucket/prefix``.

    Versions are immutable, so a loaded bundle is kept with no expiry (the ``capacity`` most recently used);
    a failure is kept ``failure_seconds`` so a missing version does not hammer S3 on every decision.
    """

    def __init__(
        self,
        root: str = BUNDLED,
        capacity: int = 8,
        failure_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root.rstrip("/") if root != BUNDLED else root
        self._cache = VersionCache(lambda v: self._load(v), ModelUnavailableError, capacity, failure_seconds, clock)

    def uri(self, version: str) -> str:
        """Where ``version`` lives (``bundled`` for the layer's own version).

        Raises:
            ModelUnavailableError: ``version`` is not a version name (one path segment).
        """
        if not _VERSION.match(version):
            raise ModelUnavailableError(f"{version!r} is not a model version")
        if version == bundled_version():
            return BUNDLED
        if self.root == BUNDLED:
            return f"{BUNDLED}/{version}"  # never readable: the layer ships one version
        return f"{self.root}/{version}"

    def bundle(self, version: str) -> ModelBundle:
        """The validated bundle of ``version`` (cached).

        Raises:
            ModelUnavailableError: the version is not published here or is unusable; the message says why.
            TransientError: S3 failed in a way worth retrying (not cached).
        """
        return self._cache.get(version)

    def _load(self, version: str) -> ModelBundle:
        uri = self.uri(version)
        if uri.startswith(f"{BUNDLED}/"):
            raise ModelUnavailableError(
                f"model {version} is not in the layer's bundle (only {bundled_version()} is): set MODEL_STORE to "
                "the model bucket (ModelSource=bucket) and publish it (ffe models publish)"
            )
        if not self.exists(version):
            raise ModelUnavailableError(f"model {version} is not in {self.root}: publish it (ffe models publish)")
        loaded = load_bundle(uri)
        if loaded.version != version:
            raise ModelUnavailableError(
                f"model bundle at {uri} is version {loaded.version}, not {version}: republish it"
            )
        return loaded

    def exists(self, version: str) -> bool:
        """Whether ``version`` is published here (its manifest is readable; the bundled version always is)."""
        try:
            uri = self.uri(version)
        except ModelUnavailableError:
            return False
        if uri == BUNDLED:
            return True
        if self.root == BUNDLED:
            return False
        if self.root.startswith("s3://"):
            bucket, _, prefix = self.root.removeprefix("s3://").partition("/")
            return _s3_exists(bucket, _key(prefix, f"{version}/{MANIFEST}"))
        return (Path(uri.removeprefix("file://")) / MANIFEST).is_file()

    def versions(self) -> list[str]:
        """The published versions (those with a manifest), the bundled one included, sorted."""
        found = {bundled_version()}
        if self.root.startswith("s3://"):
            bucket, _, prefix = self.root.removeprefix("s3://").partition("/")
            found.update(_s3_versions(bucket, _key(prefix, "")))
        elif self.root != BUNDLED:
            folder = Path(self.root.removeprefix("file://"))
            if folder.is_dir():
                found.update(p.parent.name for p in folder.glob(f"*/{MANIFEST}") if _VERSION.match(p.parent.name))
        return sorted(found)

    def evidence(self, version: str, dst: Path | str) -> Path | None:
        """``version``'s walk-forward evidence (``<root>/<version>/evidence/``) downloaded into ``dst``; None when
        the store has none for it (the ``bundled`` root never has; a folder missing one of the files still comes
        back, for ``ffe.evaluation.gate.load_evidence`` to name what is missing).

        Raises:
            TransientError: S3 failed in a way worth retrying.
        """
        if self.root == BUNDLED or not _VERSION.match(version):
            return None
        folder = Path(dst)
        found = []
        for name in EVIDENCE_FILES:
            body = self._evidence_file(version, name)
            if body is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(body)
                found.append(name)
        return folder if found else None

    def _evidence_file(self, version: str, name: str) -> bytes | None:
        if self.root.startswith("s3://"):
            bucket, _, prefix = self.root.removeprefix("s3://").partition("/")
            return _s3_get_if_any(bucket, _key(prefix, f"{version}/{EVIDENCE}/{name}"))
        path = Path(self.root.removeprefix("file://")) / version / EVIDENCE / name
        return path.read_bytes() if path.is_file() else None

    def clear(self) -> None:
        self._cache.clear()


def _s3_exists(bucket: str, key: str) -> bool:
    return _s3_or_none(bucket, key, "looking for", lambda s3: s3.head_object(Bucket=bucket, Key=key)) is not None


def _s3_get_if_any(bucket: str, key: str) -> bytes | None:
    """One object's bytes; None when it is missing (or forbidden: without s3:ListBucket a missing key reads 403)."""
    body: bytes | None = _s3_or_none(
        bucket, key, "reading", lambda s3: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    )
    return body


def _s3_or_none(bucket: str, key: str, doing: str, call: Callable[[Any], Any]) -> Any:
    """``call`` on an S3 client; None on a 4xx (the object is missing, or forbidden); TransientError otherwise."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call(boto3.client("s3"))
    except ClientError as exc:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if 400 <= status < 500:
            return None
        raise TransientError(f"S3 error {doing} s3://{bucket}/{key}: {exc}", bucket=bucket, key=key) from exc
    except BotoCoreError as exc:
        raise TransientError(f"S3 unreachable {doing} s3://{bucket}/{key}: {exc}", bucket=bucket, key=key) from exc


def _s3_versions(bucket: str, prefix: str) -> set[str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    found: set[str] = set()
    try:
        pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                version, _, name = str(obj["Key"]).removeprefix(prefix).partition("/")
                if name == MANIFEST and _VERSION.match(version):
                    found.add(version)
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(f"cannot list the models in s3://{bucket}/{prefix}: {exc}", bucket=bucket) from exc
    return found


@container_cached
def get_model_store() -> ModelStore:
    """The container's store over ``MODEL_STORE``: its cache is forgotten on ``ffe.containers.reset()``."""
    from ffe.settings import ModelSettings, get_settings

    return ModelStore(get_settings(ModelSettings).model_store)
