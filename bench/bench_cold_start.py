"""Lambda cold starts beside a bare ``import boto3``, and the layers' sizes beside their budget and Lambda's limit.

Prints figures; asserts nothing. As Lambda runs them, as nearly as one machine can:

- The layers are built the way ``sam build`` builds them: a layer with ``BuildMethod: makefile`` by its own
  Makefile target (``make build-<Layer> ARTIFACTS_DIR=...``), any other by SAM's Python builder (its wheels for
  python3.12/x86_64 unpacked, the source copied without bytecode). Sizes: unzipped and zipped MB of each built
  layer beside the 80 MB target and the 250 MB limit (a function's code and all its layers).
- A cold import is ``import handler`` in a fresh interpreter (``python3.12 -S``) whose path is Lambda's:
  the function's folder (/var/task), its layers in template order (/opt/python), then a runtime folder holding
  boto3 and its dependencies compiled (the runtime's /var/runtime). No bytecode is written (/opt is read-only),
  tracing is off (``POWERTOOLS_TRACE_DISABLED``) unless ``--tracing`` adds the run with it on.
- The reference is ``import boto3`` in a fresh interpreter on the same path, interleaved with the handlers'
  runs: each figure is a median of ``--repeats`` runs, printed beside the reference's and the ratio; wall time,
  and CPU time (steadier when other work loads the machine).

``--baseline REV`` measures the tree at a git revision as well (its template, layers and handlers), in the same
run. ``--profile NAME`` prints where a handler's cold import goes (``-X importtime``, self time by package).
Needs python3.12 on PATH (else ``--python``); with another Python the layers are built for it and ship no
bytecode, as the Makefiles do off the runtime's version. Run: ``.venv/bin/python bench/bench_cold_start.py``.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.template.layers import LAMBDA_LIMIT_MB, LAYER_BUDGET_MB, Function, Layer, functions, layers  # noqa: E402

RUNTIME = "3.12"  # template.yaml Globals: Runtime python3.12
MB = 2**20
# SAM's Python builder copies a layer's source without these (aws-lambda-builders' PythonPipWorkflow.EXCLUDED_FILES).
SAM_EXCLUDED = ("__pycache__", "*.pyc", "*.so", "*.egg-info", ".venv", ".mypy_cache", ".pytest_cache", ".git")
LAMBDA_PLATFORM = ["--platform", "manylinux2014_x86_64", "--implementation", "cp", "--only-binary=:all:"]


@dataclass(frozen=True)
class Tree:
    label: str
    root: Path
    layers: dict[str, Layer]
    functions: dict[str, Function]


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done


def runtime_python() -> str:
    """A python3.12 that runs (a pyenv shim may not), else this interpreter."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{RUNTIME}*/bin/python3"))
    candidates = [shutil.which(f"python{RUNTIME}"), *pyenv]
    for candidate in filter(None, candidates):
        if subprocess.run([str(candidate), "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return str(candidate)
    return sys.executable


def version_of(python: str) -> str:
    return run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip()


def build_layer(layer: Layer, out: Path, python: str) -> Path:
    """The layer as ``sam build`` leaves it (``out/python``), built for ``python``'s version."""
    version = version_of(python)
    if layer.build_method == "makefile":
        args = [f"ARTIFACTS_DIR={out}", f"PYTHON={python}", f"RUNTIME_VERSION={version}"]
        if version != RUNTIME:
            args.append("PLATFORM=")  # this machine's wheels, for this Python
        run(["make", "-s", "-C", str(layer.content), f"build-{layer.logical_id}", *args])
    else:  # SAM's own Python builder: wheels unpacked (no bytecode), then the source without SAM's exclusions
        platform = [*LAMBDA_PLATFORM, "--python-version", version] if version == RUNTIME else []
        target = out / "python"
        pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
        requirements = str(layer.content / "requirements.txt")
        run([*pip, "--no-warn-conflicts", *platform, "--target", str(target), "-r", requirements])
        shutil.copytree(layer.content, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*SAM_EXCLUDED))
    return out / "python"


def sizes_mb(folder: Path) -> tuple[float, float]:
    """Unzipped and zipped (deflate, as ``sam package`` zips) MB of a layer (its python/ folder and all)."""
    files = [p for p in folder.parent.rglob("*") if p.is_file()]
    unzipped = sum(p.stat().st_size for p in files)
    with tempfile.TemporaryFile() as buffer:
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(folder.parent))
        zipped = buffer.tell()
    return unzipped / MB, zipped / MB


def runtime_folder(out: Path, python: str) -> Path:
    """boto3 and its dependencies, compiled, as the Lambda runtime has them in /var/runtime."""
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts"]
    run([*pip, "--no-compile", "--target", str(out), "boto3"])
    run([python, "-m", "compileall", "-q", "-j", "0", str(out)])
    return out


def timed_import(python: str, path: list[str], module: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of ``import module`` in a fresh interpreter with ``path`` first on sys.path."""
    code = (
        f"import sys, time\nsys.path[0:0] = {path!r}\n"
        f"w, c = time.perf_counter(), time.process_time()\nimport {module}\n"
        "print((time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000)\n"
    )
    done = run([python, "-S", "-c", code], env=env)
    wall, cpu = map(float, done.stdout.split()[-2:])
    return wall, cpu


def lambda_env(tracing: bool, task_root: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "ffe",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def load_tree(label: str, root: Path) -> Tree:
    return Tree(label, root, layers(root), functions(root))


def checkout(rev: str, into: Path) -> Path:
    """The files a build needs at ``rev`` (template, layers, handlers): ``git archive``, the working tree untouched."""
    archive = run_bytes(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "template.yaml", "layers", "functions"]
    )
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_bytes(cmd: list[str]) -> bytes:
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr.decode()[-3000:]}")
    return done.stdout


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_sizes(trees: list[Tree], built: dict[tuple[str, str], Path]) -> None:
    print(f"\nLayers, built as `sam build` builds them (unzipped MB beside the {max(LAYER_BUDGET_MB.values())} MB")
    print(f"target; a function's code and layers beside Lambda's {LAMBDA_LIMIT_MB} MB limit):\n")
    print(f"  {'tree':9} {'layer':13} {'unzipped':>9} {'zipped':>7} {'budget':>7} {'ratio':>6}")
    layer_mb: dict[tuple[str, str], float] = {}
    for tree in trees:
        for logical_id in tree.layers:
            unzipped, zipped = sizes_mb(built[(tree.label, logical_id)])
            layer_mb[(tree.label, logical_id)] = unzipped
            budget = LAYER_BUDGET_MB.get(logical_id, 80)
            print(
                f"  {tree.label:9} {logical_id:13} {unzipped:9.1f} {zipped:7.1f} {budget:7d} {unzipped / budget:6.2f}"
            )
    print(f"\n  {'tree':9} {'largest function (code + layers)':44} {'MB':>6} {'limit':>6} {'share':>6}")
    for tree in trees:
        totals = {
            name: sum(layer_mb[(tree.label, layer)] for layer in fn.layers) for name, fn in tree.functions.items()
        }
        name = max(totals, key=totals.__getitem__)
        share = totals[name] / LAMBDA_LIMIT_MB
        print(f"  {tree.label:9} {name:44} {totals[name]:6.1f} {LAMBDA_LIMIT_MB:6d} {share:6.0%}")


def profile(python: str, tree: Tree, name: str, built: dict[tuple[str, str], Path], rt: Path) -> None:
    """Where one handler's cold import goes: ``-X importtime`` self time summed by package, median of 3 runs."""
    fn = next(f for f in tree.functions.values() if f.code.name == name)
    path = [str(fn.code), *(str(built[(tree.label, layer)]) for layer in fn.layers), str(rt)]
    code = f"import sys\nsys.path[0:0] = {path!r}\nimport {fn.handler_module}"
    runs: list[collections.Counter[str]] = []
    for _ in range(3):
        err = run([python, "-S", "-X", "importtime", "-c", code], env=lambda_env(False, fn.code)).stderr
        by_package: collections.Counter[str] = collections.Counter()
        for line in err.splitlines():
            parts = line.split("|")
            if len(parts) != 3 or "self [us]" in line:
                continue
            module = parts[2].strip()
            top = module.split(".")[0]
            by_package[".".join(module.split(".")[:2]) if top in ("ffe", "pydantic") else top] += int(
                parts[0].split(":")[1]
            )
        runs.append(by_package)
    keys = set().union(*runs)
    med = {k: median([r.get(k, 0) for r in runs]) / 1000 for k in keys}
    total = sum(med.values())
    print(f"\n{tree.label} {name}: where the cold import goes (-X importtime self ms, median of 3; total {total:.0f})")
    for key, ms in sorted(med.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {key:40} {ms:7.1f}  {ms / total:5.1%}")


def main() -> None:  # noqa: C901 (one linear script)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--python", help=f"the interpreter to build and time with (default: a python{RUNTIME})")
    parser.add_argument("--baseline", metavar="REV", help="also measure the tree at this git revision")
    parser.add_argument("--at", metavar="REV", help="measure this git revision instead of the working tree")
    parser.add_argument("--tracing", action="store_true", help="also time the handlers with tracing on")
    parser.add_argument("--profile", metavar="NAME", action="append", default=[], help="e.g. gate_risk")
    args = parser.parse_args()
    python = args.python or runtime_python()
    version = version_of(python)
    work = Path(tempfile.mkdtemp(prefix="ffe-cold-"))
    now = checkout(args.at, Path(tempfile.mkdtemp(dir=work))) if args.at else ROOT
    trees = [load_tree(args.at[:12] if args.at else "now", now)]
    if args.baseline:
        trees.insert(0, load_tree(args.baseline[:12], checkout(args.baseline, Path(tempfile.mkdtemp(dir=work)))))
    print(f"Cold imports on Python {version} ({python}); median of {args.repeats} runs, interleaved.")
    if version != RUNTIME:
        print(f"  (not the runtime's {RUNTIME}: layers built for {version}, without bytecode; sizes are this build's)")

    built: dict[tuple[str, str], Path] = {}
    for tree in trees:
        for logical_id, layer in tree.layers.items():
            built[(tree.label, logical_id)] = build_layer(layer, work / tree.label / logical_id, python)
    rt = runtime_folder(work / "runtime", python)
    print_sizes(trees, built)

    timings: dict[tuple[str, str, bool], list[tuple[float, float]]] = collections.defaultdict(list)
    modes = [False, True] if args.tracing else [False]
    for repeat in range(args.repeats + 1):  # the first pass warms the disk cache and is dropped
        for tracing in modes:
            reference = timed_import(python, [str(rt)], "boto3", lambda_env(tracing, rt))
            if repeat:
                timings[("boto3", "", tracing)].append(reference)
            for tree in trees:
                for fn in tree.functions.values():
                    path = [str(fn.code), *(str(built[(tree.label, layer)]) for layer in fn.layers), str(rt)]
                    figure = timed_import(python, path, fn.handler_module, lambda_env(tracing, fn.code))
                    if repeat:
                        timings[(tree.label, fn.code.name, tracing)].append(figure)

    for tracing in modes:
        ref_wall = median([w for w, _ in timings[("boto3", "", tracing)]])
        ref_cpu = median([c for _, c in timings[("boto3", "", tracing)]])
        print(f"\nHandler cold import, tracing {'ON (as with Tracing: Active)' if tracing else 'off'}, beside")
        print(f"`import boto3` in the same run: {ref_wall:.0f} ms wall, {ref_cpu:.0f} ms CPU (target: ratio <= 1.5)\n")
        print(
            f"  {'handler':18} "
            + "".join(f"{t.label + ' wall':>13} {'ratio':>6} {'CPU':>6} {'ratio':>6}" for t in trees)
        )
        names = sorted({fn.code.name for t in trees for fn in t.functions.values()})
        for name in names:
            row = f"  {name:18} "
            for tree in trees:
                runs = timings.get((tree.label, name, tracing))
                if not runs:
                    row += f"{'-':>13} {'':6} {'':6} {'':6}"
                    continue
                wall, cpu = median([w for w, _ in runs]), median([c for _, c in runs])
                row += f"{wall:13.0f} {wall / ref_wall:6.2f} {cpu:6.0f} {cpu / ref_cpu:6.2f}"
            print(row)
    for name in args.profile:
        for tree in trees:
            profile(python, tree, name, built, rt)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
