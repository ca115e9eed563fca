"""Regenerate the golden files from a pristine checkout of the commit whose behaviour they pin.

    git worktree add /tmp/golden-base <commit>
    PYTHONPATH=/tmp/golden-base/layers/core:/tmp/golden-base .venv/bin/python tests/golden/generate.py > /dev/null
    git worktree remove --force /tmp/golden-base

``ffe``, ``functions/`` and ``gpu_inference`` all come from the checkout ``ffe`` is imported from (the
PYTHONPATH's); this script and the rest of tests/golden come from the tree it sits in. It refuses a checkout with
uncommitted changes to the code (``--allow-dirty`` to override). The handlers' logs go to stdout; what the
generator says goes to stderr. Regenerating is a behaviour change: read tests/golden/README.md first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# tests.golden from this tree, after the PYTHONPATH (ffe, functions/ and gpu_inference from the checkout there)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE.parents[1])]

import numpy  # noqa: E402
import torch  # noqa: E402

import ffe  # noqa: E402
import gpu_inference  # noqa: E402
from ffe.local.postgres import EmbeddedPostgres  # noqa: E402
from tests.database import own_database  # noqa: E402
from tests.golden import compare  # noqa: E402
from tests.golden.backtests import SERIES, backtest_records  # noqa: E402
from tests.golden.records import walk_records  # noqa: E402
from tests.golden.walk import run_walk  # noqa: E402

DECISIONS = HERE / "decisions.jsonl.gz"
BACKTESTS = HERE / "backtests.jsonl.gz"
CODE = ("layers", "functions", "gpu_inference")


def checkout() -> tuple[Path, str, bool]:
    """The checkout ``ffe`` is imported from, its commit, and whether its code has uncommitted changes."""
    root = Path(ffe.__file__).resolve().parents[3]
    if Path(gpu_inference.__file__).resolve().parents[1] != root:
        raise SystemExit(f"gpu_inference comes from {gpu_inference.__file__}, not {root}: put {root} on PYTHONPATH")
    git = ["git", "-C", str(root)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    status = subprocess.run([*git, "status", "--porcelain", "--", *CODE], capture_output=True, text=True, check=True)
    return root, commit, bool(status.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the files (default: tests/golden)")
    parser.add_argument("--allow-dirty", action="store_true", help="generate from uncommitted code (never commit it)")
    args = parser.parse_args()
    root, commit, dirty = checkout()
    print(f"ffe from {root} at {commit}{' with uncommitted changes' if dirty else ''}", file=sys.stderr)
    if dirty and not args.allow_dirty:
        raise SystemExit("the checkout's code has uncommitted changes: generate from a pristine worktree")
    about = {
        "commit": commit,
        "dirty": dirty,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "regenerate": "tests/golden/README.md",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ffe-golden-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data").start()
        try:
            url = own_database(server.url, "ffe_golden_generate")
            steps = run_walk(url, root)
            records = walk_records(steps, url)
        finally:
            server.stop()
    compare.write(args.out / DECISIONS.name, about, records)
    print(f"{len(steps)} decisions, {len(records)} records -> {args.out / DECISIONS.name}", file=sys.stderr)
    runs = [record for asset in SERIES for record in backtest_records(asset)]
    compare.write(args.out / BACKTESTS.name, about, runs)
    print(f"{len(runs)} backtest records -> {args.out / BACKTESTS.name}", file=sys.stderr)


if __name__ == "__main__":
    main()
