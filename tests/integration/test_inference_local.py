"""The offline endpoint (ffe.local.inference) and the local Lambda runtime's cold start, as they use inference."""

from __future__ import annotations

import sys

import pytest

from ffe.adapters.inference import get_inference
from ffe.local.inference import LocalInference
from ffe.local.lambdas import cold_start
from ffe.settings import InferenceSettings
from gpu_inference.llm import DEFAULT_TIMEOUT_S
from tests.conftest import ROOT


@pytest.mark.parametrize(("env", "expected"), [(None, DEFAULT_TIMEOUT_S), ("7", 7.0)])
def test_local_endpoint_takes_the_containers_llm_timeout_without_the_deploy_tool(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: float
) -> None:
    # Given the operator's deploy tool is not loaded
    monkeypatch.delitem(sys.modules, "gpu_inference.deploy", raising=False)
    if env is None:
        monkeypatch.delenv("FFE_LLM_TIMEOUT_S", raising=False)
    else:
        monkeypatch.setenv("FFE_LLM_TIMEOUT_S", env)
    local = LocalInference(project=ROOT)
    # When the local endpoint starts
    try:
        local.start()
        # Then its LLM voter times out per call as the container does, and deploy.py stayed unloaded
        assert local.predictor.llm.timeout_s == expected
        assert "gpu_inference.deploy" not in sys.modules
    finally:
        local.stop()


def test_cold_start_forgets_the_inference_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a warm container's cached InferDecision client
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    settings = InferenceSettings(inference_endpoint="ffe-dev-inference", inference_endpoint_url="http://127.0.0.1:9")
    warm = get_inference(settings)
    assert get_inference(settings) is warm
    # When the container starts cold
    cold_start()
    # Then a new client is built (with whatever the new settings say)
    assert get_inference.cache_info().currsize == 0
    assert get_inference(settings) is not warm
