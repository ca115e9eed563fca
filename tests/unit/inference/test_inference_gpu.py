"""The GPU compatibility check that picks the LLM models."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gpu_inference import gpu
from gpu_inference.gpu import LLAMA_1B_Q4, LLAMA_3B_Q4, choose_llm_models


@pytest.fixture(autouse=True)
def _no_configured_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default models unless a test configures others (a developer's shell may set them)."""
    monkeypatch.delenv("OLLAMA_MODEL", raising=False)
    monkeypatch.delenv("OLLAMA_FALLBACK_MODEL", raising=False)


def test_choose_no_gpu_runs_the_1b_quantized_model_on_cpu_only() -> None:
    plan = choose_llm_models(None, None)
    assert (plan.primary, plan.fallback, plan.device) == (LLAMA_1B_Q4, None, "cpu")
    assert plan.models == (LLAMA_1B_Q4,)


def test_choose_capability_below_5_3_uses_quantized_models_only() -> None:
    plan = choose_llm_models((5, 2), 12.0)
    assert plan.device == "cuda"
    assert all(m.endswith("q4_0") and "fp16" not in m for m in plan.models)
    assert "5.2 < 5.3" in plan.reason


@pytest.mark.parametrize("capability", [(8, 0), (9, 0)])
def test_choose_modern_gpu_3b_primary_1b_fallback(capability: tuple[int, int]) -> None:
    plan = choose_llm_models(capability, 70.0)
    assert (plan.primary, plan.fallback, plan.device) == (LLAMA_3B_Q4, LLAMA_1B_Q4, "cuda")


def test_choose_gpu_short_of_memory_uses_the_1b_model() -> None:
    plan = choose_llm_models((8, 0), 1.5)
    assert plan.models == (LLAMA_1B_Q4,)


def test_detect_reads_torch_cuda_and_logs_the_plan(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a mocked CUDA device of capability 5.2
    fake_cuda = SimpleNamespace(
        is_available=lambda: True,
        get_device_capability=lambda _i: (5, 2),
        mem_get_info=lambda _i: (8 * 1024**3, 12 * 1024**3),
        get_device_name=lambda _i: "Tesla M40",
    )
    import torch

    monkeypatch.setattr(torch, "cuda", fake_cuda)
    caplog.set_level("INFO", logger="gpu_inference.gpu")
    # When the container starts
    info, plan = gpu.detect()
    # Then it saw the GPU, chose quantized models and logged it
    assert info.capability == (5, 2) and info.free_memory_gb == pytest.approx(8.0)
    assert info.device == "cuda:0 (Tesla M40)"
    assert plan.primary == LLAMA_3B_Q4
    assert any(r.message == "llm plan" and r.__dict__["capability"] == (5, 2) for r in caplog.records)


def test_detect_without_cuda_is_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    info, plan = gpu.detect()
    assert info.device == "cpu" and plan.device == "cpu"


@pytest.mark.parametrize(
    ("capability", "free", "expected"),
    [
        (None, None, gpu.LlmPlan(LLAMA_1B_Q4, None, "cpu", "no GPU: the quantized 1B model on CPU only")),
        ((8, 0), 1.5, gpu.LlmPlan(LLAMA_1B_Q4, None, "cuda", "GPU 8.0 with 1.5 GB free: the quantized 1B model only")),
        (
            (5, 2),
            12.0,
            gpu.LlmPlan(
                LLAMA_3B_Q4,
                LLAMA_1B_Q4,
                "cuda",
                "GPU compute capability 5.2 < 5.3 (no native fp16): quantized q4_0 models only",
            ),
        ),
        (
            (8, 6),
            20.0,
            gpu.LlmPlan(LLAMA_3B_Q4, LLAMA_1B_Q4, "cuda", "GPU compute capability 8.6: 3B primary, 1B fallback"),
        ),
    ],
)
def test_choose_with_the_default_models_configured_is_the_plan_it_always_was(
    capability: tuple[int, int] | None, free: float | None, expected: gpu.LlmPlan
) -> None:
    assert choose_llm_models(capability, free) == expected
    assert choose_llm_models(capability, free, LLAMA_3B_Q4, LLAMA_1B_Q4) == expected


def test_choose_modern_gpu_asks_the_configured_primary_then_the_configured_fallback() -> None:
    plan = choose_llm_models((8, 6), 20.0, "qwen2.5:7b-instruct-fp16", "qwen2.5:1.5b-instruct-q4_K_M")
    assert plan.models == ("qwen2.5:7b-instruct-fp16", "qwen2.5:1.5b-instruct-q4_K_M")
    assert plan.device == "cuda"


def test_choose_without_gpu_asks_only_the_configured_fallback_on_cpu() -> None:
    plan = choose_llm_models(None, None, "qwen2.5:7b-instruct-q4_0", "qwen2.5:1.5b-instruct-q4_0")
    assert (plan.models, plan.device) == (("qwen2.5:1.5b-instruct-q4_0",), "cpu")


def test_choose_gpu_short_of_memory_asks_only_the_configured_fallback() -> None:
    plan = choose_llm_models((8, 0), 1.5, "qwen2.5:7b-instruct-q4_0", "qwen2.5:1.5b-instruct-q4_0")
    assert plan.models == ("qwen2.5:1.5b-instruct-q4_0",)


def test_choose_capability_below_5_3_leaves_out_a_configured_fp16_model() -> None:
    plan = choose_llm_models((5, 2), 12.0, "llama3.2:3b-instruct-fp16", LLAMA_1B_Q4)
    assert plan.models == (LLAMA_1B_Q4,)
    assert "llama3.2:3b-instruct-fp16 left out (not quantized)" in plan.reason


@pytest.mark.parametrize("capability", [None, (5, 2)])
def test_choose_without_native_fp16_and_no_quantized_model_configured_uses_the_q4_defaults(
    capability: tuple[int, int] | None,
) -> None:
    plan = choose_llm_models(capability, 12.0, "llama3.2:3b-instruct-fp16", "llama3.2:1b-instruct-bf16")
    assert all(gpu.is_quantized(m) for m in plan.models)
    assert plan.primary == (LLAMA_1B_Q4 if capability is None else LLAMA_3B_Q4)


def test_choose_the_same_model_configured_twice_is_asked_once() -> None:
    assert choose_llm_models((8, 6), 20.0, LLAMA_3B_Q4, LLAMA_3B_Q4).models == (LLAMA_3B_Q4,)


@pytest.mark.parametrize(
    ("model", "quantized"),
    [
        (LLAMA_3B_Q4, True),
        ("qwen2.5:7b-instruct-q4_K_M", True),
        ("llama3.2", True),  # the library's untagged models are quantized
        ("llama3.2:3b-instruct-fp16", False),
        ("gemma2:2b-instruct-bf16", False),
    ],
)
def test_is_quantized_reads_the_tag(model: str, quantized: bool) -> None:
    assert gpu.is_quantized(model) is quantized


def test_detect_honours_ollama_model_and_fallback_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a modern GPU and configured models
    fake_cuda = SimpleNamespace(
        is_available=lambda: True,
        get_device_capability=lambda _i: (8, 6),
        mem_get_info=lambda _i: (20 * 1024**3, 24 * 1024**3),
        get_device_name=lambda _i: "NVIDIA A10G",
    )
    import torch

    monkeypatch.setattr(torch, "cuda", fake_cuda)
    monkeypatch.setenv("OLLAMA_MODEL", "qwen2.5:7b-instruct-q4_0")
    monkeypatch.setenv("OLLAMA_FALLBACK_MODEL", "qwen2.5:1.5b-instruct-q4_0")
    # When the container starts / Then the plan asks the configured models
    _, plan = gpu.detect()
    assert plan.models == ("qwen2.5:7b-instruct-q4_0", "qwen2.5:1.5b-instruct-q4_0")
    # And unset or empty variables mean the defaults
    monkeypatch.delenv("OLLAMA_MODEL")
    monkeypatch.setenv("OLLAMA_FALLBACK_MODEL", "")
    assert gpu.detect()[1].models == (LLAMA_3B_Q4, LLAMA_1B_Q4)


def test_detect_without_cuda_runs_the_configured_fallback_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("OLLAMA_MODEL", "qwen2.5:7b-instruct-q4_0")
    monkeypatch.setenv("OLLAMA_FALLBACK_MODEL", "qwen2.5:1.5b-instruct-q4_0")
    assert gpu.detect()[1].models == ("qwen2.5:1.5b-instruct-q4_0",)
