"""Which LLM the container can run: a GPU compatibility check made once at start-up.

Ollama runs fp16 weights only on GPUs of compute capability 5.3 or newer (native half precision); older cards,
and the CPU, get 4-bit quantized (``q4_0``) models. Without a GPU the 1B model is the only one fast enough to
answer inside the endpoint's budget, so the CPU plan has no fallback. The models are ``OLLAMA_MODEL`` (primary)
and ``OLLAMA_FALLBACK_MODEL`` when set, else the 3B and 1B q4_0 models below; the rules apply to them alike.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

LLAMA_3B_Q4 = "llama3.2:3b-instruct-q4_0"
LLAMA_1B_Q4 = "llama3.2:1b-instruct-q4_0"
MIN_FP16_CAPABILITY = (5, 3)
MIN_3B_MEMORY_GB = 3.0  # 3B q4_0 weights (~2 GB) plus a context's KV cache
_SIZES = {LLAMA_3B_Q4: "3B", LLAMA_1B_Q4: "1B"}
_FULL_PRECISION = re.compile(r"[-_:](?:fp16|f16|bf16|fp32|f32)$", re.IGNORECASE)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LlmPlan:
    primary: str
    fallback: str | None
    device: str
    reason: str

    @property
    def models(self) -> tuple[str, ...]:
        return (self.primary,) if self.fallback is None else (self.primary, self.fallback)


@dataclass(frozen=True, slots=True)
class GpuInfo:
    name: str | None
    capability: tuple[int, int] | None
    free_memory_gb: float | None

    @property
    def device(self) -> str:
        return "cpu" if self.capability is None else f"cuda:0 ({self.name or 'GPU'})"


def is_quantized(model: str) -> bool:
    """Whether an Ollama model runs without native fp16: any tag but an explicit fp16/bf16/fp32 one (the library's
    untagged models are 4-bit quantized)."""
    return _FULL_PRECISION.search(model) is None


def choose_llm_models(
    capability: tuple[int, int] | None,
    free_memory_gb: float | None,
    model: str = LLAMA_3B_Q4,
    fallback: str = LLAMA_1B_Q4,
) -> LlmPlan:
    """The models to ask, primary first, for a GPU of ``capability`` (None: no GPU).

    ``model`` and ``fallback`` are the configured ones (``OLLAMA_MODEL``, ``OLLAMA_FALLBACK_MODEL``). Without
    native fp16 (no GPU, or compute capability < 5.3) only the quantized ones are kept (the q4_0 defaults when
    neither is); on CPU, or on a GPU short of memory, only the smaller of them (the fallback) is asked.
    """
    models = list(dict.fromkeys((model, fallback)))  # the same model twice is asked once
    native_fp16 = capability is not None and capability >= MIN_FP16_CAPABILITY
    note = ""
    if not native_fp16:
        quantized = [m for m in models if is_quantized(m)]
        if not quantized:
            note = f"; {', '.join(models)} not quantized: the q4_0 defaults instead"
            quantized = [LLAMA_3B_Q4, LLAMA_1B_Q4]
        elif len(quantized) < len(models):
            note = f"; {', '.join(m for m in models if m not in quantized)} left out (not quantized)"
        models = quantized
    small = models[-1]
    if capability is None:
        return LlmPlan(small, None, "cpu", f"no GPU: the {_describe(small)} model on CPU only{note}")
    cc = f"{capability[0]}.{capability[1]}"
    if free_memory_gb is not None and free_memory_gb < MIN_3B_MEMORY_GB:
        return LlmPlan(
            small, None, "cuda", f"GPU {cc} with {free_memory_gb:.1f} GB free: the {_describe(small)} model only{note}"
        )
    primary, second = models[0], (models[1] if len(models) > 1 else None)
    if not native_fp16:
        kind = "quantized q4_0" if all(m.endswith("q4_0") for m in models) else "quantized"
        return LlmPlan(
            primary, second, "cuda", f"GPU compute capability {cc} < 5.3 (no native fp16): {kind} models only{note}"
        )
    roles = f"{_short(primary)} only" if second is None else f"{_short(primary)} primary, {_short(second)} fallback"
    return LlmPlan(primary, second, "cuda", f"GPU compute capability {cc}: {roles}")


def _short(model: str) -> str:
    return _SIZES.get(model, model)


def _describe(model: str) -> str:
    return f"quantized {_SIZES[model]}" if model in _SIZES else model


def gpu_info() -> GpuInfo:
    """What torch sees of GPU 0 (no GPU, or no torch CUDA build: all None)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - the container always has torch
        return GpuInfo(None, None, None)
    if not torch.cuda.is_available():
        return GpuInfo(None, None, None)
    capability = tuple(torch.cuda.get_device_capability(0))
    free, _total = torch.cuda.mem_get_info(0)
    return GpuInfo(torch.cuda.get_device_name(0), (int(capability[0]), int(capability[1])), free / 1024**3)


def detect() -> tuple[GpuInfo, LlmPlan]:
    """Read the GPU and the configured models (``OLLAMA_MODEL``, ``OLLAMA_FALLBACK_MODEL``; unset or empty: the
    defaults), choose the LLM plan and log it (called once at start-up)."""
    info = gpu_info()
    model = os.environ.get("OLLAMA_MODEL", "").strip() or LLAMA_3B_Q4
    fallback = os.environ.get("OLLAMA_FALLBACK_MODEL", "").strip() or LLAMA_1B_Q4
    plan = choose_llm_models(info.capability, info.free_memory_gb, model, fallback)
    logger.info(
        "llm plan",
        extra={
            "gpu": info.name,
            "capability": info.capability,
            "free_memory_gb": info.free_memory_gb,
            "configured": (model, fallback),
            "primary": plan.primary,
            "fallback": plan.fallback,
            "reason": plan.reason,
        },
    )
    return info, plan
