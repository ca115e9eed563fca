"""What template.yaml ships to each function: its layers (built by their Makefiles) and its code.

Shared by tests/template/test_layers.py (the budget and which function gets which layer) and
bench/bench_cold_start.py (the layers built as ``sam build`` builds them, sized and timed).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffe.local.template import load_sam

#: Lambda's limit on a function's code and all its layers, unzipped (MB of 2**20 bytes).
LAMBDA_LIMIT_MB = 250
#: Each layer's budget, unzipped (issue 16: the core layer <= 80 MB; numpy alone fits the same budget).
LAYER_BUDGET_MB = {"CoreLayer": 80, "NumericLayer": 80}


@dataclass(frozen=True)
class Layer:
    logical_id: str
    content: Path  # ContentUri: the folder its Makefile (or SAM's own builder) builds from
    build_method: str

    @property
    def makefile(self) -> Path:
        return self.content / "Makefile"

    def make_variable(self, name: str) -> list[str]:
        """The words of ``NAME := ...`` in the layer's Makefile (continuation lines joined)."""
        text = self.makefile.read_text().replace("\\\n", " ")
        found = re.search(rf"^{name}\s*[:?]?=(.*)$", text, re.M)
        return found.group(1).split() if found else []

    def shipped(self, relative: str) -> bool:
        """Whether the build keeps ``relative`` (a path inside the layer's python/ folder): not one of the
        top-level entries it strips (STRIP), not inside a folder it prunes anywhere (PRUNE), no stray bytecode."""
        parts = Path(relative).parts
        if any(fnmatch.fnmatch(parts[0], pattern) for pattern in self.make_variable("STRIP")):
            return False
        if set(parts[:-1]) & set(self.make_variable("PRUNE")):
            return False
        return not relative.endswith(".pyc")


@dataclass(frozen=True)
class Function:
    logical_id: str
    code: Path  # CodeUri: /var/task
    handler_module: str  # what Lambda imports from /var/task ("handler")
    layers: tuple[str, ...]  # Globals' layers, then the function's own, in order

    @property
    def source_module(self) -> str:
        """The handler as the repository names it (``functions.<folder>.handler``)."""
        return f"functions.{self.code.name}.{self.handler_module}"


def _ref(value: Any) -> str:
    assert isinstance(value, dict) and set(value) == {"Ref"}, f"a layer by !Ref only: {value!r}"
    return str(value["Ref"])


def layers(root: Path) -> dict[str, Layer]:
    sam = load_sam(root)
    return {
        logical_id: Layer(
            logical_id, root / resource["Properties"]["ContentUri"], resource.get("Metadata", {}).get("BuildMethod")
        )
        for logical_id, resource in sam["Resources"].items()
        if resource["Type"] == "AWS::Serverless::LayerVersion"
    }


def functions(root: Path) -> dict[str, Function]:
    sam = load_sam(root)
    defaults = sam.get("Globals", {}).get("Function", {})
    out = {}
    for logical_id, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        handler = props.get("Handler", defaults.get("Handler", ""))
        attached = [*defaults.get("Layers", []), *props.get("Layers", [])]  # SAM appends a function's list
        out[logical_id] = Function(
            logical_id,
            root / props["CodeUri"],
            handler.rpartition(".")[0],
            tuple(_ref(layer) for layer in attached),
        )
    return out
