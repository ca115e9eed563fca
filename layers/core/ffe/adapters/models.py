"""The champion's numpy export for the runtime: regime mixtures per asset class and the meta-controller.

A bundle is a folder (or S3 prefix) holding ``manifest.json`` and the JSON files it names, as written by
``ffe train`` (``ffe.training.export``). ``MODEL_URI`` says where: ``bundled`` (the champion shipped in the
layer, ``ffe/data/models``), a local folder, or ``s3://bucket/prefix``. A missing or corrupt bundle is not
an error for the cycle: the steps fall back to the naive router and say why in every decision.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ffe.containers import on_reset
from ffe.domain.errors import InvalidInputError, TransientError
from ffe.domain.meta import MetaPolicy
from ffe.domain.regime import RegimeModel

BUNDLE_FORMAT = "ffe.models/1"
BUNDLED = "bundled"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelBundle:
    version: str
    meta: MetaPolicy
    regimes: Mapping[str, RegimeModel]  # by asset class
    source: str
    manifest: Mapping[str, Any] = field(default_factory=dict)


class ModelUnavailableError(Exception):
    """The bundle could not be read or validated; the message is the reason the decisions will carry."""


def bundled_version() -> str:
    """The version of the bundle shipped in the layer: the champion until one is set (``model_champions``)."""
    manifest = json.loads(resources.files("ffe.data.models").joinpath(MANIFEST).read_bytes())
    return str(manifest["version"])


def load_bundle(uri: str) -> ModelBundle:
    """Read and validate the bundle at ``uri``.

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
    except (InvalidInputError, KeyError, TypeError, ValueError, OSError) as exc:
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
        return lambda name: _s3_get(uri, bucket, f"{prefix.rstrip('/')}/{name}".lstrip("/"))
    folder = Path(uri.removeprefix("file://"))
    return lambda name: _read_file(uri, name, (folder / name).read_bytes)


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


class BundleCache:
    """One bundle per container, re-read after ``max_age`` seconds so a promotion reaches warm containers."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entry: tuple[str, float, ModelBundle | ModelUnavailableError] | None = None

    def get(self, uri: str, max_age: float) -> ModelBundle:
        """The bundle at ``uri`` (cached, failures included, so a broken bucket is not hammered).

        Raises:
            ModelUnavailableError: the bundle is unusable; the message says why.
        """
        with self._lock:
            now = self._clock()
            if self._entry is None or self._entry[0] != uri or now - self._entry[1] >= max_age:
                try:
                    value: ModelBundle | ModelUnavailableError = load_bundle(uri)
                except ModelUnavailableError as exc:
                    value = exc
                self._entry = (uri, now, value)
            value = self._entry[2]
        if isinstance(value, ModelUnavailableError):
            raise value
        return value

    def clear(self) -> None:
        with self._lock:
            self._entry = None


BUNDLES = BundleCache()
on_reset(f"{__name__}.BUNDLES", BUNDLES.clear)


def champion(uri: str, max_age: float) -> ModelBundle | ModelUnavailableError:
    """The container's cached bundle, or the reason it cannot be used (the steps fall back on it)."""
    try:
        return BUNDLES.get(uri, max_age)
    except ModelUnavailableError as exc:
        return exc
