"""The endpoint's model: the RL meta-controller (TorchScript) and, when asked and reachable, the LLM voter.

A plain object with no HTTP in it: ``Predictor.load(model_dir)`` then ``predict(InferenceRequest)``. The RL voter
rolls the policy over the last ``roll_bars`` rows of each instance's regime path from equal weights (exactly
``ffe.domain.meta.latest_weights``), batched across the request's instances, on the GPU when there is one; the
weights blend the instance's strategy scores with ``ffe.domain.ensemble.weighted_blend``. The LLM voter runs
per instance, and ``ffe.domain.voting.combine`` turns the two votes into the prediction.
"""

from __future__ import annotations

import json
import time
import warnings
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
from gpu_inference.llm import LlmVoter
from gpu_inference.tracing import get_tracer

BUNDLED = "bundled"
MANIFEST = "manifest.json"
RL_MODEL = "meta_controller"
_OPTION_NAMES = [str(o) for o in OPTIONS]


class ModelLoadError(Exception):
    """The model directory cannot be served; the message says why."""


class Predictor:
    def __init__(
        self,
        module: torch.jit.ScriptModule,
        version: str,
        device: torch.device,
        llm: LlmVoter | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.module = module
        self.version = version
        self.device = device
        self.llm = llm
        self.tracer = tracer or get_tracer()
        self.roll_bars = int(module.roll_bars)
        self.n_features = int(cast(torch.Tensor, module.input_mean).shape[0])
        first_weight = dict(module.named_parameters())["layers.0.weight"]  # (out, in): in = F + K + options
        self.n_regimes = int(first_weight.shape[1]) - self.n_features - len(OPTIONS)
        self.ready = True

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        llm: LlmVoter | None = None,
        device: str | torch.device | None = None,
        tracer: trace.Tracer | None = None,
    ) -> Predictor:
        """Load ``meta-controller.pt`` and the manifest's version from ``model_dir`` (``"bundled"``: the package's).

        Raises:
            ModelLoadError: a missing or unreadable manifest or TorchScript file.
        """
        tracer = tracer or get_tracer()
        root = Path(str(resources.files("ffe.data.models"))) if str(model_dir) == BUNDLED else Path(model_dir)
        chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        with tracer.start_as_current_span("model_load") as span:
            span.set_attribute("model_dir", str(root))
            span.set_attribute("device", str(chosen))
            try:
                manifest: dict[str, Any] = json.loads((root / MANIFEST).read_text())
                version = str(manifest["version"])
                path = root / str(manifest.get("torchscript", "meta-controller.pt"))
                with warnings.catch_warnings():
                    # torch 2.13 deprecates TorchScript; the artifact stays TorchScript (see ffe.training.meta_network).
                    warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit\.")
                    module = torch.jit.load(str(path), map_location=chosen)
            except (OSError, KeyError, ValueError, RuntimeError) as exc:
                raise ModelLoadError(f"cannot load the model from {root}: {exc}") from exc
            module.eval()
            span.set_attribute("model_version", version)
        return cls(module, version, chosen, llm=llm, tracer=tracer)

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return str(self.device)

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        with self.tracer.start_as_current_span("rl_voter") as span:
            span.set_attribute("instances", len(request.instances))
            rl_votes = self.rl_votes(request.instances)
        llm_votes = self._llm_votes(request, rl_votes)
        predictions = [_prediction(rl, llm) for rl, llm in zip(rl_votes, llm_votes, strict=True)]
        return InferenceResponse(predictions=predictions, model_version=self.version, device=self.device_name)

    def rl_votes(self, instances: list[InferenceInstance]) -> list[VoterOutput]:
        """The RL voter's output per instance: one batched rollout over every instance it can roll."""
        t0 = time.perf_counter()
        problems = {i: p for i, inst in enumerate(instances) if (p := self._check(inst))}
        rollable = [i for i in range(len(instances)) if i not in problems]
        weights = self._rollout([instances[i] for i in rollable]) if rollable else np.empty((0, len(OPTIONS)))
        latency = _ms(t0)
        out: list[VoterOutput] = []
        by_index = dict(zip(rollable, weights, strict=True))
        for i, inst in enumerate(instances):
            if i in problems:
                out.append(self._rl_output("unavailable", latency, reasoning=problems[i]))
                continue
            w = {name: float(v) for name, v in zip(_OPTION_NAMES, by_index[i], strict=True)}
            blend = weighted_blend(cast(Any, inst.scores), w, inst.entry_threshold)
            out.append(
                self._rl_output(
                    "voted",
                    latency,
                    action=blend.action,
                    confidence=blend.confidence,
                    reasoning=blend.reason,
                    weights=w,
                )
            )
        return out

    def _check(self, inst: InferenceInstance) -> str:
        if inst.regime_model_version is not None and inst.regime_model_version != self.version:
            # posteriors of another bundle's mixture: its components need not mean what this policy learned
            return (
                f"the regime path came from model {inst.regime_model_version}, this endpoint serves {self.version}:"
                " publish one champion to both (ffe models publish) and redeploy"
            )
        rows, posts = inst.path_features, inst.path_posteriors
        if len(rows) < self.roll_bars or len(posts) < self.roll_bars:
            return f"the meta-controller needs {self.roll_bars} path rows, got {min(len(rows), len(posts))}"
        if any(len(r) != self.n_features for r in rows[-self.roll_bars :]):
            return f"path_features rows must have {self.n_features} values"
        if any(len(p) != self.n_regimes for p in posts[-self.roll_bars :]):
            return f"path_posteriors rows must have {self.n_regimes} values (the model's regimes)"
        return ""

    def _rollout(self, instances: list[InferenceInstance]) -> np.ndarray:
        m = self.roll_bars
        features = torch.tensor([inst.path_features[-m:] for inst in instances], dtype=torch.float32)
        posteriors = torch.tensor([inst.path_posteriors[-m:] for inst in instances], dtype=torch.float32)
        with torch.inference_mode():
            weights = self.module.rollout(features.to(self.device), posteriors.to(self.device))
        result: np.ndarray = weights.double().cpu().numpy()
        # float32 rounding can leave a sum a few ulps off 1; weighted_blend checks within 1e-3, this keeps it exact.
        return result / result.sum(axis=1, keepdims=True)

    def _rl_output(self, status: Any, latency: float, **fields: Any) -> VoterOutput:
        return VoterOutput(
            voter="rl", status=status, model=RL_MODEL, model_version=self.version, latency_ms=latency, **fields
        )

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
            out = []
            for inst, rl in zip(request.instances, rl_votes, strict=True):
                if rl.status != "voted":
                    out.append(_llm_absent("skipped", "the RL voter could not vote"))
                else:
                    out.append(self.llm.vote(inst))
            span.set_attribute("models", sorted({o.model for o in out if o.model}))
            return out


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
