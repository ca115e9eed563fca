"""``ffe evaluate``: walk-forward evaluation of every strategy row over bundled real series (docs/evaluation.md).

Registered by ``ffe.cli``: ``add_arguments(subparser)`` then ``command(args)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPORT_JSON = "evaluation.json"
PATHS_NPZ = "paths.npz"
DEFAULT_STATE_DIR = Path(".ffe")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbols", default=None, help="bundled series, comma-separated (default: every one)")
    parser.add_argument("--folds", type=int, default=4, help="walk-forward folds per series (default 4)")
    parser.add_argument("--seeds", default="1,2,3", help="training seeds per fold, comma-separated (default 1,2,3)")
    parser.add_argument(
        "--quick", action="store_true", help="the few-second training config per fold: a smoke run, not evidence"
    )
    parser.add_argument(
        "--test-bars",
        type=int,
        default=None,
        help="how many final bars the folds' test windows cover (default: the second half of each series)",
    )
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples per interval (default 2000)")
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default: <state dir>/evaluations/<timestamp>/)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the JSON report (schema: docs/evaluation.md) instead of the table"
    )
    parser.add_argument(
        "--version",
        default=None,
        metavar="V",
        help="evaluate a registered version's recorded training config (v3, 3 or ffe-...) and attach the report to"
        " it as its evidence, which `ffe models promote` requires",
    )
    parser.add_argument(
        "--no-mlflow", action="store_true", help="keep the report in --out only (default: also in the local MLflow)"
    )


def command(args: argparse.Namespace, state: Any) -> int:
    """Run the evaluation the arguments describe, write the report folder (``evaluation.json``, ``paths.npz``, the
    plots), keep it in MLflow unless ``--no-mlflow``, print the table; 2 on a user error."""
    import numpy as np

    from ffe.adapters.replay import datasets
    from ffe.evaluation.plots import write_plots
    from ffe.evaluation.walk_forward import PlanFactory, evaluate, format_table, full_plan, quick_plan

    known = datasets()
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        return _error(f"--seeds takes integers separated by commas, got {args.seeds!r}")
    if not seeds or args.folds < 1 or args.n_boot < 1 or (args.test_bars is not None and args.test_bars < 1):
        return _error("need at least one seed, --folds >= 1, --n-boot >= 1 and --test-bars >= 1")
    registered: str | None = None
    factory: PlanFactory = quick_plan if args.quick else full_plan
    recorded_symbols: tuple[str, ...] = ()
    if args.version is not None:
        if args.no_mlflow or args.quick:
            return _error(
                "--version evaluates the version's recorded config from the registry: drop --no-mlflow/--quick"
            )
        from ffe.evaluation.tracking import VersionNotFoundError, plan_factory, registered_plan
        from ffe.training.cli import local_tracker

        try:
            with local_tracker(state) as tracker:
                registered, recorded = registered_plan(tracker, args.version)
        except (VersionNotFoundError, ValueError) as exc:
            return _error(str(exc))
        factory, recorded_symbols = plan_factory(recorded), recorded.symbols
    if args.symbols:
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    else:
        symbols = list(recorded_symbols) or sorted(known)
    unknown = [s for s in symbols if s not in known]
    if unknown:
        return _error(f"no bundled series for {', '.join(unknown)}; bundled: {', '.join(sorted(known))}")
    log = None if args.json else (lambda line: print(line, file=sys.stderr))
    try:
        report = evaluate(symbols, args.folds, seeds, factory, test_bars=args.test_bars, n_boot=args.n_boot, log=log)
    except ValueError as exc:  # a series too short for the folds asked for
        return _error(str(exc))
    report.registered_version = registered
    document = report.as_dict()
    out = args.out or _default_out(args)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    (out / REPORT_JSON).write_text(text)
    arrays: dict[str, Any] = report.arrays()
    np.savez(out / PATHS_NPZ, **arrays)  # the returns the promotion gate pairs (docs/evaluation.md)
    write_plots(report, out)
    where = "not kept in MLflow (--no-mlflow)"
    if not args.no_mlflow:
        from ffe.evaluation.tracking import keep
        from ffe.training.cli import local_tracker

        with local_tracker(state) as tracker:
            run_id = keep(tracker, report, out)
        where = (
            f"evidence of registered version {registered} (MLflow run {run_id})"
            if registered
            else f"MLflow run {run_id}"
        )
    if args.json:
        sys.stdout.write(text)
    else:
        print(format_table(report))
        print(f"report: {out}/ ({REPORT_JSON}, {PATHS_NPZ}, plots); {where}")
    return 0


def _error(message: str) -> int:
    print(f"ffe evaluate: error: {message}", file=sys.stderr)
    return 2


def _default_out(args: argparse.Namespace) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(getattr(args, "state_dir", None) or DEFAULT_STATE_DIR) / "evaluations" / stamp
