"""The GPU compatibility check that picks the LLM models."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gpu_inference import gpu
from gpu_inference.gpu import LLAMA_1B_Q4, LLAMA_3B_Q4, choose_llm_models


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
