"""Which LLM the container can run: a GPU compatibility check made once at start-up.

Ollama runs fp16 weights only on GPUs of compute capability 5.3 or newer (native half precision); older cards,
and the CPU, get 4-bit quantized (``q4_0``) models. Without a GPU the 1B model is the only one fast enough to
answer inside the endpoint's budget, so the CPU plan has no fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

LLAMA_3B_Q4 = "llama3.2:3b-instruct-q4_0"
LLAMA_1B_Q4 = "llama3.2:1b-instruct-q4_0"
MIN_FP16_CAPABILITY = (5, 3)
MIN_3B_MEMORY_GB = 3.0  # 3B q4_0 weights (~2 GB) plus a context's KV cache

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


def choose_llm_models(capability: tuple[int, int] | None, free_memory_gb: float | None) -> LlmPlan:
    """The models to ask, primary first, for a GPU of ``capability`` (None: no GPU)."""
    if capability is None:
        return LlmPlan(LLAMA_1B_Q4, None, "cpu", "no GPU: the quantized 1B model on CPU only")
    cc = f"{capability[0]}.{capability[1]}"
    if free_memory_gb is not None and free_memory_gb < MIN_3B_MEMORY_GB:
        return LlmPlan(
            LLAMA_1B_Q4, None, "cuda", f"GPU {cc} with {free_memory_gb:.1f} GB free: the quantized 1B model only"
        )
    if capability < MIN_FP16_CAPABILITY:
        return LlmPlan(
            LLAMA_3B_Q4,
            LLAMA_1B_Q4,
            "cuda",
            f"GPU compute capability {cc} < 5.3 (no native fp16): quantized q4_0 models only",
        )
    return LlmPlan(LLAMA_3B_Q4, LLAMA_1B_Q4, "cuda", f"GPU compute capability {cc}: 3B primary, 1B fallback")


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
    """Read the GPU, choose the LLM plan and log both (called once at start-up)."""
    info = gpu_info()
    plan = choose_llm_models(info.capability, info.free_memory_gb)
    logger.info(
        "llm plan",
        extra={
            "gpu": info.name,
            "capability": info.capability,
            "free_memory_gb": info.free_memory_gb,
            "primary": plan.primary,
            "fallback": plan.fallback,
            "reason": plan.reason,
        },
    )
    return info, plan
