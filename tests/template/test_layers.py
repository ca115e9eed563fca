"""The layers template.yaml ships: numpy only to the functions whose code reaches it, and each layer, and each
function's whole package, within its budget.

Building a layer for real (pip for python3.12/x86_64, ~30 s) is bench/bench_cold_start.py's job, which prints the
built sizes. Here the size is a deterministic proxy: the files of the distributions each layer's requirements
resolve to, as installed in this environment (their RECORDs), less what the layer's Makefile strips, plus the
package it copies, with bytecode counted as BYTECODE_PER_SOURCE of each module's source.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ffe.local.template import load_sam
from tests.conftest import ROOT
from tests.template.layers import LAMBDA_LIMIT_MB, LAYER_BUDGET_MB, Layer, functions, layers
from tests.unit.test_import_boundaries import entries, reached

MB = 2**20
# The compiled module beside each source the Makefiles ship (compileall for the runtime's Python): measured 1.10
# (numpy) to 1.20 (the core layer) times the source's size on the built layers; counted high.
BYTECODE_PER_SOURCE = 1.25
# The Lambda runtime the markers are evaluated for (template.yaml Globals: python3.12, x86_64).
RUNTIME_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "implementation_name": "cpython",
    "implementation_version": "3.12.0",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "platform_release": "",
    "platform_version": "",
}


def requirements(layer: Layer) -> list[Requirement]:
    lines = (layer.content / "requirements.txt").read_text().splitlines()
    return [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]


def resolved(roots: Iterable[Requirement]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``roots`` resolve to, dependencies and requested extras included."""
    found: dict[str, metadata.Distribution] = {}
    extras: dict[str, set[str]] = {}
    queue = list(roots)
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        wanted = set(requirement.extras)
        if name in found and wanted <= extras[name]:
            continue
        try:
            found[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is not installed here: the size proxy reads installed distributions (make install)")
        extras[name] = extras.get(name, set()) | wanted
        for line in found[name].requires or []:
            dependency = Requirement(line)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({**RUNTIME_MARKERS, "extra": e}) for e in {"", *extras[name]}):
                queue.append(dependency)
    return found


def _counted(path: Path, relative: str, layer: Layer) -> float:
    if not layer.shipped(relative) or not path.is_file():
        return 0.0
    size = path.stat().st_size
    return size * (1 + BYTECODE_PER_SOURCE) if relative.endswith(".py") else float(size)


def copied_packages(layer: Layer) -> list[str]:
    """The folders the layer's Makefile copies beside what pip installs (``cp -R ffe ...``)."""
    return re.findall(r"^\tcp -R (\S+) ", layer.makefile.read_text(), re.M)


def proxy_size_mb(layer: Layer) -> float:
    total = 0.0
    for dist in resolved(requirements(layer)).values():
        for file in dist.files or []:
            if str(file).startswith(".."):  # console scripts, installed outside the packages (bin/: stripped)
                continue
            total += _counted(Path(str(file.locate())), str(file), layer)
    for package in copied_packages(layer):
        for path in (layer.content / package).rglob("*"):
            total += _counted(path, str(path.relative_to(layer.content)), layer)
    return total / MB


@pytest.fixture(scope="module")
def sizes() -> dict[str, float]:
    return {logical_id: proxy_size_mb(layer) for logical_id, layer in layers(ROOT).items()}


def test_every_layer_is_built_by_its_makefile_for_the_runtime() -> None:
    runtime = load_sam(ROOT)["Globals"]["Function"]["Runtime"]
    found = layers(ROOT)
    assert set(found) == set(LAYER_BUDGET_MB), "a new layer needs a budget in tests/template/layers.py"
    for layer in found.values():
        assert layer.build_method == "makefile" and f"build-{layer.logical_id}:" in layer.makefile.read_text()
        assert "__pycache__" in layer.make_variable("PRUNE") and "tests" in layer.make_variable("PRUNE")
        assert layer.make_variable("RUNTIME_VERSION") == [runtime.removeprefix("python")]


def test_the_core_layer_leaves_out_what_the_runtime_provides_and_numpy() -> None:
    core = layers(ROOT)["CoreLayer"]
    names = set(resolved(requirements(core)))
    assert "botocore" in names, "the tracer's aws-xray-sdk brings botocore in: the Makefile must strip it"
    for module in ("botocore", "dateutil", "urllib3", "six.py"):
        assert not core.shipped(f"{module}/__init__.py" if "." not in module else module), module
    assert "numpy" not in names and "boto3" not in names
    assert [canonicalize_name(r.name) for r in requirements(layers(ROOT)["NumericLayer"])] == ["numpy"]


@pytest.mark.parametrize("function", sorted(functions(ROOT)))
def test_a_function_has_the_numeric_layer_exactly_when_its_code_reaches_numpy(function: str) -> None:
    fn = functions(ROOT)[function]
    reaches = entries(reached(fn.source_module), ["numpy"])
    assert fn.layers[0] == "CoreLayer"
    if "NumericLayer" in fn.layers:
        assert reaches, f"{function} ships numpy (NumericLayer) but its code never imports it"
    else:
        assert not reaches, f"{function} needs the NumericLayer (Layers: [!Ref NumericLayer]): " + reaches[0]


def test_each_layer_stays_within_its_budget(sizes: dict[str, float]) -> None:
    over = {name: round(size, 1) for name, size in sizes.items() if size > LAYER_BUDGET_MB[name]}
    assert not over, f"unzipped MB over budget {LAYER_BUDGET_MB}: {over}"
    assert sizes["CoreLayer"] > 10  # the proxy found the packages (not an empty sum)


def test_each_function_stays_within_lambdas_limit(sizes: dict[str, float]) -> None:
    for name, fn in functions(ROOT).items():
        code = sum(p.stat().st_size for p in fn.code.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        total = code / MB + sum(sizes[layer] for layer in fn.layers)
        assert total <= LAMBDA_LIMIT_MB * 0.8, f"{name}: {total:.0f} MB unzipped (limit {LAMBDA_LIMIT_MB} MB)"
