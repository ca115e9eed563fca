"""The container's build files, checked statically (no Docker here): what the Dockerfile copies exists, the
entry points SageMaker runs are executable and start our modules, and the pins agree with pyproject.toml."""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from pathlib import Path

from gpu_inference import serve

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = (ROOT / "gpu_inference" / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)  # continuation lines
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(f"{name} ")]


def test_base_is_a_cuda_runtime_image_and_the_port_is_sagemakers() -> None:
    (base,) = instructions("FROM")
    assert re.fullmatch(r"nvidia/cuda:[\d.]+-cudnn-runtime-ubuntu[\d.]+", base), base
    assert instructions("EXPOSE") == [str(serve.DEFAULT_PORT)] == ["8080"]
    assert "SAGEMAKER_BIND_TO_PORT=8080" in DOCKERFILE


def test_every_copied_path_exists_in_the_repository() -> None:
    copies = instructions("COPY")
    assert copies
    for copy in copies:
        source = copy.split()[0]
        assert (ROOT / source).exists(), source


def test_serve_and_train_are_executable_and_start_our_modules() -> None:
    for script, module in (("serve", "gpu_inference.serve"), ("train", "ffe.training.sagemaker_entry")):
        path = ROOT / "gpu_inference" / script
        assert os.access(path, os.X_OK), script
        assert f"exec python -m {module}" in path.read_text(), script
        assert importlib.util.find_spec(module) is not None, module
    assert "PATH=/opt/program/gpu_inference:" in DOCKERFILE  # SageMaker runs `<image> serve` / `<image> train`


def test_torch_pin_and_python_requirements_agree_with_pyproject() -> None:
    inference = PYPROJECT["project"]["optional-dependencies"]["inference"]
    torch_pin = next(r for r in inference if r.startswith("torch"))
    assert f"pip install {torch_pin}" in DOCKERFILE
    requirements = (ROOT / "gpu_inference" / "requirements.txt").read_text()
    for requirement in inference:
        name = re.split(r"[<>=\[]", requirement)[0]
        if name not in ("ffe", "torch"):
            assert re.search(rf"^{re.escape(name)}\b", requirements, re.M), name
    (python,) = re.findall(r"python3\.(\d+) -m venv", DOCKERFILE)
    assert int(python) >= 11  # ffe's own floor (the Lambdas run 3.12)
