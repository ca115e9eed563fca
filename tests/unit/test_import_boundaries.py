"""The layers' import rules, read from the source (nothing is imported to check them).

- ``ffe.domain`` is pure: at run time it imports, within ffe, only ffe.domain; outside, only the standard
  library (none of its I/O modules) and the package's own dependencies (pyproject.toml's ``dependencies``).
  For type checking only (``if TYPE_CHECKING:``) it may name ffe.contracts, never the layers above it.
- A Lambda handler (functions/**) never reaches ffe.local, ffe.training, torch, pandas, scikit-learn or
  MLflow, through any chain of ffe modules.
- ``ffe.steps`` never reaches ffe.local.

Every ``import`` that can run counts, at module level or inside a function: a lazy import is still one the
code can run. Imports under ``if TYPE_CHECKING:`` never run, so chains are not followed through them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCE_ROOTS = (ROOT / "layers" / "core", ROOT)  # where ffe.* and functions.* live
PACKAGES = (ROOT / "layers" / "core" / "ffe", ROOT / "functions")

# The standard library's I/O: files, processes, sockets, HTTP, databases, the environment.
STDLIB_IO = {
    "asyncio",
    "ftplib",
    "glob",
    "http",
    "io",
    "mmap",
    "os",
    "pathlib",
    "select",
    "selectors",
    "shutil",
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "ssl",
    "subprocess",
    "tempfile",
    "urllib",
    "xmlrpc",
}
# pyproject.toml's `dependencies` (the bare package): what the domain may import beyond the standard library.
DOMAIN_THIRD_PARTY = {"numpy", "tzdata"}
# The layers above the domain: it never names them, even in a type annotation (the request/response contracts
# in ffe.contracts, which the ports take, may be named for type checking).
DOMAIN_NEVER_EVEN_FOR_TYPES = ("ffe.adapters", "ffe.steps", "ffe.local", "ffe.api", "ffe.training", "ffe.cli")
HANDLERS_NEVER = ("ffe.local", "ffe.training", "torch", "pandas", "sklearn", "mlflow")
STEPS_NEVER = ("ffe.local",)


def module_name(path: Path) -> str:
    base = SOURCE_ROOTS[0] if SOURCE_ROOTS[0] in path.parents else SOURCE_ROOTS[1]
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every first-party module (ffe.*, functions.*), by dotted name."""
    return {module_name(path): path for package in PACKAGES for path in sorted(package.rglob("*.py"))}


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:``: read by the type checker, never run."""
    blocks = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
    ]
    return {child for block in blocks for statement in block.body for child in ast.walk(statement)}


@cache
def _imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """What ``module`` imports directly, at run time and for type checking only (``from a import b`` gives
    ``a.b`` when that is a module)."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = _type_checking_only(tree)
    found: tuple[set[str], set[str]] = (set(), set())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names = [source, *(f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in modules())]
        found[node in typing_only].update(names)
    return frozenset(found[0]), frozenset(found[1])


def imports(module: str) -> frozenset[str]:
    """What ``module`` imports at run time (at module level or inside a function)."""
    return _imports(module)[0]


def typing_imports(module: str) -> frozenset[str]:
    """What ``module`` imports under ``if TYPE_CHECKING:`` only."""
    return _imports(module)[1]


def reached(module: str) -> dict[str, list[str]]:
    """Every name ``module`` reaches through first-party modules, each with one chain of imports to it."""
    chains: dict[str, list[str]] = {module: [module]}
    queue = [module]
    while queue:
        current = queue.pop(0)
        for name in sorted(imports(current)):
            if name in chains:
                continue
            chains[name] = [*chains[current], name]
            if name in modules():
                queue.append(name)
    return chains


def entries(chains: dict[str, list[str]], forbidden: Iterable[str]) -> list[str]:
    """The chains that reach a forbidden name from an allowed one (not those that go on inside it)."""
    return [
        " -> ".join(chain)
        for name, chain in chains.items()
        if within(name, forbidden) and not within(chain[-2], forbidden)
    ]


def within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


def top(name: str) -> str:
    return name.split(".")[0]


def under(prefix: str) -> list[str]:
    return sorted(name for name in modules() if within(name, [prefix]))


def test_the_source_is_found() -> None:
    assert "ffe.domain.risk" in modules()
    assert "functions.gate_risk.handler" in modules()
    assert "ffe.domain.models" in imports("ffe.domain.risk")


@pytest.mark.parametrize("module", under("ffe.domain"))
def test_the_domain_is_pure(module: str) -> None:
    wrong = []
    for name in sorted(imports(module)):
        if top(name) == "ffe":
            if not within(name, ["ffe.domain"]):
                wrong.append(f"{name} (at run time the domain imports only ffe.domain)")
        elif top(name) == "__future__":
            continue
        elif top(name) in sys.stdlib_module_names:
            if top(name) in STDLIB_IO:
                wrong.append(f"{name} (I/O)")
        elif top(name) not in DOMAIN_THIRD_PARTY:
            wrong.append(f"{name} (not one of the package's own dependencies: {sorted(DOMAIN_THIRD_PARTY)})")
    for name in sorted(typing_imports(module)):
        if within(name, DOMAIN_NEVER_EVEN_FOR_TYPES) or top(name) in STDLIB_IO:
            wrong.append(f"{name} (not even for type checking)")
    assert not wrong, f"{module} imports: {wrong}"


@pytest.mark.parametrize("handler", [name for name in under("functions") if name.endswith(".handler")])
def test_a_handler_never_reaches_the_offline_runtime_or_training(handler: str) -> None:
    wrong = entries(reached(handler), HANDLERS_NEVER)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("step", under("ffe.steps"))
def test_a_step_never_reaches_the_offline_runtime(step: str) -> None:
    wrong = entries(reached(step), STEPS_NEVER)
    assert not wrong, "\n".join(wrong)
