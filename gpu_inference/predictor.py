"""The endpoint's model: the RL meta-controller (TorchScript) by version and, when asked and reachable, the LLM voter.

A plain object with no HTTP in it: ``Predictor.load(model_dir, store=...)`` then ``predict(InferenceRequest)``.
Each instance names the bundle version to serve it (``model_version``; None: the version loaded at start); other
versions load on demand from the model store (``FFE_MODEL_STORE``: a folder or ``s3://bucket/prefix`` holding
``<version>/manifest.json`` and ``meta-controller.pt``) and stay in a small LRU. The RL voter rolls the policy
over the last ``roll_bars`` rows of each instance's regime path from equal weights (exactly
``ffe.domain.meta.latest_weights``), one batch per version, so an instance's result never depends on which other
versions share the request; the weights blend the instance's strategy scores with
``ffe.domain.ensemble.weighted_blend``. The LLM voter runs per instance (an instance with ``llm_vote_from``
reuses that earlier instance's vote), and ``ffe.domain.voting.combine`` turns the two votes into the prediction.
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from opentelemetry import trace

from ffe.contracts import InferenceInstance, InferencePrediction, InferenceRequest, InferenceResponse, VoterOutput
from ffe.domain.ensemble import weighted_blend
from ffe.domain.meta import OPTIONS
from ffe.domain.models import Action
from ffe.domain.voting import Vote, VoteStatus, combine
from ffe.version_cache import VersionCache
from gpu_inference.llm import LlmVoter
from gpu_inference.tracing import get_tracer

BUNDLED = "bundled"
MANIFEST = "manifest.json"
RL_MODEL = "meta_controller"
_OPTION_NAMES = [str(o) for o in OPTIONS]
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ModelLoadError(Exception):
    """The model directory cannot be served; the message says why."""


class Policy:
    """One version's TorchScript meta-controller and the shapes it expects."""

    def __init__(self, module: torch.jit.ScriptModule, version: str, device: torch.device) -> None:
        self.module, self.version, self.device = module, version, device
        self.roll_bars = int(module.roll_bars)
        self.n_features = int(cast(torch.Tensor, module.input_mean).shape[0])
        first_weight = dict(module.named_parameters())["layers.0.weight"]  # (out, in): in = F + K + options
        self.n_regimes = int(first_weight.shape[1]) - self.n_features - len(OPTIONS)

    @classmethod
    def load(cls, root: Path, device: torch.device, expected_version: str | None = None) -> Policy:
        """Read ``root``'s manifest and TorchScript file.

        Raises:
            ModelLoadError: a missing or unreadable manifest or TorchScript file, or another version than expected.
        """
        try:
            manifest: dict[str, Any] = json.loads((root / MANIFEST).read_text())
            version = str(manifest["version"])
            path = root / str(manifest.get("torchscript", "meta-controller.pt"))
            if expected_version is not None and version != expected_version:
                raise ModelLoadError(f"the bundle at {root} is version {version}, not {expected_version}")
            with warnings.catch_warnings():
                # torch 2.13 deprecates TorchScript; the artifact stays TorchScript (see ffe.training.meta_network).
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit\.")
                module = torch.jit.load(str(path), map_location=device)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load the model from {root}: {exc}") from exc
        module.eval()
        policy = cls(module, version, device)
        policy.warm()
        return policy

    def warm(self) -> None:
        """One rollout on neutral inputs, at load: torch's first call in a process (and TorchScript's first runs
        of a module) are tens of ms slower, and the first decision served must not pay for it (nor make the arm
        served first look slower)."""
        features = torch.zeros((1, self.roll_bars, self.n_features), dtype=torch.float32, device=self.device)
        posteriors = torch.full((1, self.roll_bars, self.n_regimes), 1.0 / self.n_regimes, device=self.device)
        with torch.inference_mode():
            for _ in range(2):
                self.module.rollout(features, posteriors)

    def rollout(self, instances: list[InferenceInstance]) -> np.ndarray:
        m = self.roll_bars
        features = torch.tensor([inst.path_features[-m:] for inst in instances], dtype=torch.float32)
        posteriors = torch.tensor([inst.path_posteriors[-m:] for inst in instances], dtype=torch.float32)
        with torch.inference_mode():
            weights = self.module.rollout(features.to(self.device), posteriors.to(self.device))
        result: np.ndarray = weights.double().cpu().numpy()
        # float32 rounding can leave a sum a few ulps off 1; weighted_blend checks within 1e-3, this keeps it exact.
        return result / result.sum(axis=1, keepdims=True)


class PolicyStore:
    """Versions loaded on demand from ``root`` (a folder or ``s3://bucket/prefix``), the ``capacity`` most
    recently used kept; one load per version at a time; a failure is remembered ``failure_seconds``."""

    def __init__(
        self,
        root: str | None,
        device: torch.device,
        capacity: int = 8,
        failure_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root.rstrip("/") if root else None
        self.device = device
        self._cache = VersionCache(lambda v: self._load(v), ModelLoadError, capacity, failure_seconds, clock)

    def put(self, policy: Policy) -> None:
        self._cache.put(policy.version, policy)

    def get(self, version: str) -> Policy:
        """The policy of ``version``.

        Raises:
            ModelLoadError: not a version, no store configured, not published there, or unloadable.
        """
        return self._cache.get(version)

    def versions(self) -> list[str]:
        return self._cache.versions()

    def _load(self, version: str) -> Policy:
        if not _VERSION.match(version):
            raise ModelLoadError(f"{version!r} is not a model version")
        if version == _bundled_version():
            return Policy.load(_bundled_root(), self.device, version)
        if self.root is None:
            raise ModelLoadError(
                f"model {version} is not loaded and this endpoint has no model store (FFE_MODEL_STORE)"
            )
        if not self.root.startswith("s3://"):
            folder = Path(self.root.removeprefix("file://")) / version
            if not (folder / MANIFEST).is_file():
                raise ModelLoadError(f"model {version} is not in {self.root}: publish it (ffe models publish)")
            return Policy.load(folder, self.device, version)
        with tempfile.TemporaryDirectory(prefix=f"ffe-{version}-") as tmp:
            _download(self.root, version, Path(tmp))
            return Policy.load(Path(tmp), self.device, version)


def _bundled_root() -> Path:
    return Path(str(resources.files("ffe.data.models")))


def _bundled_version() -> str:
    return str(json.loads((_bundled_root() / MANIFEST).read_text())["version"])


def _download(root: str, version: str, into: Path) -> None:
    """``<root>/<version>/manifest.json`` and the TorchScript file it names, into ``into``."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    base = f"{prefix.strip('/')}/{version}/".lstrip("/")
    s3 = boto3.client("s3")
    try:
        s3.download_file(bucket, base + MANIFEST, str(into / MANIFEST))
        manifest = json.loads((into / MANIFEST).read_text())
        name = Path(str(manifest.get("torchscript", "meta-controller.pt"))).name
        s3.download_file(bucket, base + name, str(into / name))
    except (ClientError, BotoCoreError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model {version} is not readable in {root}: publish it (ffe models publish): {exc}"
        ) from exc


class Predictor:
    def __init__(
        self,
        module: torch.jit.ScriptModule,
        version: str,
        device: torch.device,
        llm: LlmVoter | None = None,
        tracer: trace.Tracer | None = None,
        store: str | None = None,
    ) -> None:
        self.version = version
        self.device = device
        self.llm = llm
        self.tracer = tracer or get_tracer()
        self.default = Policy(module, version, device)
        self.module = module
        self.roll_bars, self.n_features, self.n_regimes = (
            self.default.roll_bars,
            self.default.n_features,
            self.default.n_regimes,
        )
        self.policies = PolicyStore(store, device)
        self.policies.put(self.default)
        self._requests = itertools.count()
        self.ready = True

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        llm: LlmVoter | None = None,
        device: str | torch.device | None = None,
        tracer: trace.Tracer | None = None,
        store: str | None = None,
    ) -> Predictor:
        """Load ``meta-controller.pt`` and the manifest's version from ``model_dir`` (``"bundled"``: the package's);
        ``store`` (a folder or ``s3://bucket/prefix``) serves the other versions instances ask for.

        Raises:
            ModelLoadError: a missing or unreadable manifest or TorchScript file.
        """
        tracer = tracer or get_tracer()
        root = _bundled_root() if str(model_dir) == BUNDLED else Path(model_dir)
        chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        with tracer.start_as_current_span("model_load") as span:
            span.set_attribute("model_dir", str(root))
            span.set_attribute("device", str(chosen))
            policy = Policy.load(root, chosen)
            span.set_attribute("model_version", policy.version)
        return cls(policy.module, policy.version, chosen, llm=llm, tracer=tracer, store=store)

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return str(self.device)

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        with self.tracer.start_as_current_span("rl_voter") as span:
            span.set_attribute("instances", len(request.instances))
            rl_votes = self.rl_votes(request.instances)
            span.set_attribute("model_versions", sorted({v.model_version for v in rl_votes}))
        llm_votes = self._llm_votes(request, rl_votes)
        predictions = [_prediction(rl, llm) for rl, llm in zip(rl_votes, llm_votes, strict=True)]
        return InferenceResponse(predictions=predictions, model_version=self.version, device=self.device_name)

    def rl_votes(self, instances: list[InferenceInstance]) -> list[VoterOutput]:
        """The RL voter's output per instance: one batched rollout per version over the instances it can roll."""
        groups: dict[str, list[int]] = {}
        for i, inst in enumerate(instances):
            groups.setdefault(inst.model_version or self.version, []).append(i)
        out: dict[int, VoterOutput] = {}
        # The first group of a request runs on a cold cache and pays for it (~0.25 ms on a CPU, more under load):
        # the order of the versions turns once per request, so an experiment's arms share that cost over time and
        # their latencies compare fairly. Each group is its own batch: the order never changes an output.
        order = list(groups.items())
        turn = next(self._requests) % len(order)
        for version, indices in order[turn:] + order[:turn]:
            out.update(self._group_votes(version, indices, instances))
        return [out[i] for i in range(len(instances))]

    def _group_votes(
        self, version: str, indices: list[int], instances: list[InferenceInstance]
    ) -> dict[int, VoterOutput]:
        t0 = time.perf_counter()
        try:
            policy = self.policies.get(version)
        except ModelLoadError as exc:
            latency = _ms(t0)
            return {i: _rl_output(version, "unavailable", latency, reasoning=str(exc)[:2000]) for i in indices}
        t0 = time.perf_counter()  # the vote's latency is the rollout's: a version's first load is a cold start
        problems = {i: p for i in indices if (p := _check(policy, instances[i]))}
        rollable = [i for i in indices if i not in problems]
        weights = policy.rollout([instances[i] for i in rollable]) if rollable else np.empty((0, len(OPTIONS)))
        latency = _ms(t0)
        out: dict[int, VoterOutput] = {}
        by_index = dict(zip(rollable, weights, strict=True))
        for i in indices:
            inst = instances[i]
            if i in problems:
                out[i] = _rl_output(version, "unavailable", latency, reasoning=problems[i])
                continue
            w = {name: float(v) for name, v in zip(_OPTION_NAMES, by_index[i], strict=True)}
            blend = weighted_blend(cast(Any, inst.scores), w, inst.entry_threshold)
            out[i] = _rl_output(
                version,
                "voted",
                latency,
                action=blend.action,
                confidence=blend.confidence,
                reasoning=blend.reason,
                weights=w,
            )
        return out

    def _llm_votes(self, request: InferenceRequest, rl_votes: list[VoterOutput]) -> list[VoterOutput]:
        if not request.llm:
            return [_llm_absent("skipped", "the request asked for the RL voter alone")] * len(rl_votes)
        if self.llm is None:
            return [_llm_absent("unavailable", "no LLM voter is configured in this container")] * len(rl_votes)
        with self.tracer.start_as_current_span("llm_voter") as span:
            span.set_attribute("instances", len(request.instances))
            if not self.llm.available():
                span.set_attribute("available", False)
                reason = f"Ollama at {self.llm.host} is unreachable"
                return [_llm_absent("unavailable", reason)] * len(rl_votes)
            out: list[VoterOutput] = []
            for inst, rl in zip(request.instances, rl_votes, strict=True):
                source = out[inst.llm_vote_from] if inst.llm_vote_from is not None else None
                if rl.status != "voted":
                    out.append(_llm_absent("skipped", "the RL voter could not vote"))
                elif source is not None and source.status != "skipped":
                    # the experiment's other arm: the same asset and bars, so the same question; never asked twice
                    why = f"reused from instance {inst.llm_vote_from}: {source.reasoning}"
                    out.append(source.model_copy(update={"reasoning": why[:2000], "latency_ms": 0.0}))
                else:
                    out.append(self.llm.vote(inst))
            span.set_attribute("models", sorted({o.model for o in out if o.model}))
            return out


def _check(policy: Policy, inst: InferenceInstance) -> str:
    if inst.regime_model_version is not None and inst.regime_model_version != policy.version:
        # posteriors of another bundle's mixture: its components need not mean what this policy learned
        return (
            f"the regime path came from model {inst.regime_model_version}, this instance is served by"
            f" {policy.version}: the regime and the policy must be one version"
        )
    rows, posts = inst.path_features, inst.path_posteriors
    if len(rows) < policy.roll_bars or len(posts) < policy.roll_bars:
        return f"the meta-controller needs {policy.roll_bars} path rows, got {min(len(rows), len(posts))}"
    if any(len(r) != policy.n_features for r in rows[-policy.roll_bars :]):
        return f"path_features rows must have {policy.n_features} values"
    if any(len(p) != policy.n_regimes for p in posts[-policy.roll_bars :]):
        return f"path_posteriors rows must have {policy.n_regimes} values (the model's regimes)"
    return ""


def _rl_output(version: str, status: Any, latency: float, **fields: Any) -> VoterOutput:
    return VoterOutput(voter="rl", status=status, model=RL_MODEL, model_version=version, latency_ms=latency, **fields)


def _llm_absent(status: Any, reason: str) -> VoterOutput:
    return VoterOutput(voter="llm", status=status, reasoning=reason)


def _vote(out: VoterOutput) -> Vote:
    status = VoteStatus(out.status)
    if status is VoteStatus.VOTED and out.action is not None:
        return Vote(status, Action(out.action), out.confidence, out.reasoning)
    return Vote(status, reason=out.reasoning)


def _prediction(rl: VoterOutput, llm: VoterOutput) -> InferencePrediction:
    verdict = combine(_vote(rl), _vote(llm))
    return InferencePrediction(
        action=verdict.action,
        confidence=verdict.confidence,
        reason=verdict.reason[:2000],
        rule=str(verdict.rule),
        voters=[rl, llm],
    )


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)
