"""``ffe evaluate``: walk-forward evaluation of every strategy row over bundled real series (docs/evaluation.md).

Registered by ``ffe.cli``: ``add_arguments(subparser)`` then ``command(args)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ffe.evaluation.files import PATHS_NPZ, REPORT_JSON, REPORT_MD

if TYPE_CHECKING:
    from ffe.evaluation.walk_forward import EvaluationReport, PlanFactory
    from ffe.training.pipeline import TrainPlan

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
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="folds x seeds trained at once, each in its own process (default 1; the report is the same for any N)",
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
        "--bars",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="your own bars (scenario format: examples/README.md; repeatable): each asset in the file is trained on"
        " and evaluated in place of, or beside, the bundled series",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one training hyper-parameter for every fold (repeatable): meta.churn_penalty=0.05, ewc_lambda=5,"
        " meta.hidden=64,32 ... (docs/evaluation.md)",
    )
    parser.add_argument(
        "--no-mlflow", action="store_true", help="keep the report in --out only (default: also in the local MLflow)"
    )


class _Refused(Exception):
    """A user's mistake: one line on stderr and exit 2."""


def command(args: argparse.Namespace, state: Any) -> int:
    """Run the evaluation the arguments describe, write the report folder (``evaluation.json``, ``paths.npz``, the
    plots), keep it in MLflow unless ``--no-mlflow``, print the table; 2 on a user error."""
    from ffe.domain.errors import InvalidInputError
    from ffe.evaluation.walk_forward import evaluate, format_table

    try:
        seeds = _seeds(args)
        factory, registered, recorded_symbols, recorded_files = _factory(args, state)
        files = {**recorded_files, **_files(args.bars)}
        symbols = _symbols(args.symbols, recorded_symbols, files)
        out = _out(args.out or _default_out(args))
        log = None if args.json else (lambda line: print(line, file=sys.stderr))
        try:
            report = evaluate(
                symbols,
                args.folds,
                seeds,
                factory,
                test_bars=args.test_bars,
                n_boot=args.n_boot,
                log=log,
                files=files,
                jobs=args.jobs,
            )
        except InvalidInputError as exc:  # a series too short for the folds, a bad file, a fold that cannot train
            raise _Refused(str(exc)) from None
    except _Refused as exc:
        return _error(str(exc))
    report.registered_version = registered
    text = _write(report, out)
    where = "not kept in MLflow (--no-mlflow)"
    if not args.no_mlflow:
        from ffe.evaluation.tracking import keep
        from ffe.training.cli import local_tracker

        with local_tracker(state) as tracker:
            run_id = keep(tracker, report, out)
            if registered is not None:
                _evidence_in_local_store(state, tracker.client.get_run(run_id).data.tags.get("ffe.bundle_version"), out)
        where = (
            f"evidence of registered version {registered} (MLflow run {run_id})"
            if registered
            else f"MLflow run {run_id}"
        )
    if args.json:
        sys.stdout.write(text)
    else:
        print(format_table(report))
        print(f"report: {out}/ ({REPORT_JSON}, {PATHS_NPZ}, {REPORT_MD}, plots); {where}")
    return 0


def _evidence_in_local_store(state: Any, bundle: str | None, out: Path) -> None:
    """The evidence beside the version's bundle in the local model store (``.ffe/models/<bundle>/evidence/``),
    where ``ffe api``'s promotion gate reads it as a stage's reads ``models/<version>/evidence/``."""
    import shutil

    from ffe.adapters.models import EVIDENCE, EVIDENCE_FILES

    if bundle is None or not (state.model_dir(bundle) / "manifest.json").is_file():
        return  # not in the local store (trained elsewhere): `ffe models publish` carries it to a stage
    folder = state.model_dir(bundle) / EVIDENCE
    folder.mkdir(exist_ok=True)
    for name in EVIDENCE_FILES:
        shutil.copyfile(out / name, folder / name)


def _seeds(args: argparse.Namespace) -> list[int]:
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise _Refused(f"--seeds takes integers separated by commas, got {args.seeds!r}") from None
    if not seeds or min(args.folds, args.n_boot, args.jobs, 1 if args.test_bars is None else args.test_bars) < 1:
        raise _Refused("need at least one seed, --folds >= 1, --n-boot >= 1, --jobs >= 1 and --test-bars >= 1")
    if len(set(seeds)) != len(seeds):
        raise _Refused(f"--seeds {args.seeds}: a seed given twice would count its path twice")
    return seeds


def _out(out: Path) -> Path:
    """The report folder, made now (before hours of training) and empty: everything in it is the evidence MLflow
    keeps, so files from another run must not ride along."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        leftovers = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise _Refused(f"--out {out}: cannot use it as the report folder ({exc.strerror or exc})") from None
    if leftovers:
        raise _Refused(f"--out {out} is not empty ({', '.join(leftovers[:3])}...): give a new or empty folder")
    return out


def _factory(args: argparse.Namespace, state: Any) -> tuple[PlanFactory, str | None, tuple[str, ...], dict[str, Path]]:
    """The fold plans (the code's config, or a registered version's), the registry number, and the series and
    user files the version was trained on."""
    from ffe.evaluation.walk_forward import full_plan, quick_plan

    factory: PlanFactory = quick_plan if args.quick else full_plan
    registered: str | None = None
    recorded_symbols: tuple[str, ...] = ()
    recorded_files: dict[str, Path] = {}
    if args.version is not None:
        if args.no_mlflow or args.quick:
            raise _Refused(
                "--version evaluates the version's recorded config from the registry: drop --no-mlflow/--quick"
            )
        changed = [
            flag for flag, given in (("--set", args.set), ("--bars", args.bars), ("--symbols", args.symbols)) if given
        ]
        if changed:
            raise _Refused(
                f"--version evaluates the version as it was trained (its recorded config, on its own series), since "
                f"the report becomes its promotion evidence: drop {', '.join(changed)}"
            )
        from ffe.evaluation.tracking import VersionNotFoundError, plan_factory, registered_plan
        from ffe.training.cli import local_tracker

        try:
            with local_tracker(state) as tracker:
                registered, recorded = registered_plan(tracker, args.version)
        except (VersionNotFoundError, ValueError) as exc:
            raise _Refused(str(exc)) from None
        factory, recorded_symbols = plan_factory(recorded), recorded.symbols
        recorded_files = {sym: Path(path) for sym, path in (recorded.data_files or {}).items()}
    if args.set:
        factory = _with_overrides(factory, args.set)
    return factory, registered, recorded_symbols, recorded_files


def _files(paths: list[Path]) -> dict[str, Path]:
    """``--bars``: every asset of every file -> its file (an asset in two files is refused)."""
    from ffe.adapters.scenario import load_scenario
    from ffe.domain.errors import InvalidInputError

    found: dict[str, Path] = {}
    for path in paths:
        try:
            assets = load_scenario(path).assets
        except (OSError, InvalidInputError) as exc:
            raise _Refused(str(exc)) from None
        for asset in assets:
            if asset in found:
                raise _Refused(f"{asset} has bars in both {found[asset]} and {path}")
            found[asset] = path.resolve()  # recorded in the bundles: --reproduce must find it from any folder
    return found


def _symbols(text: str | None, recorded: tuple[str, ...], files: dict[str, Path]) -> list[str]:
    from ffe.adapters.replay import datasets

    known = datasets()
    if text:
        symbols = [s.strip() for s in text.split(",") if s.strip()]
    else:
        symbols = list(recorded) or list(dict.fromkeys([*sorted(known), *files]))
    unknown = [s for s in symbols if s not in known and s not in files]
    if unknown:
        raise _Refused(f"no bundled series for {', '.join(unknown)}; bundled: {', '.join(sorted(known))}")
    return symbols


def _write(report: EvaluationReport, out: Path) -> str:
    """The report folder; returns the JSON text."""
    import numpy as np

    from ffe.evaluation.plots import write_plots
    from ffe.evaluation.walk_forward import format_markdown

    out.mkdir(parents=True, exist_ok=True)
    document = report.as_dict()
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    (out / REPORT_JSON).write_text(text)
    arrays: dict[str, Any] = report.arrays()
    np.savez(out / PATHS_NPZ, **arrays)  # the returns the promotion gate pairs (docs/evaluation.md)
    (out / REPORT_MD).write_text(format_markdown(document))
    write_plots(report, out)
    return text


def _with_overrides(factory: PlanFactory, assignments: list[str]) -> PlanFactory:
    """``factory`` with ``--set`` applied to every fold's plan; refused before any training when they are bad."""
    from datetime import UTC, datetime

    from ffe.training.overrides import apply_overrides

    try:
        apply_overrides(factory((), 0, {"": datetime.now(UTC)}), assignments)
    except ValueError as exc:
        raise _Refused(str(exc)) from None

    def make(symbols: tuple[str, ...], seed: int, train_end: dict[str, datetime]) -> TrainPlan:
        plan: TrainPlan = apply_overrides(factory(symbols, seed, train_end), assignments)
        return plan

    return make


def _error(message: str) -> int:
    print(f"ffe evaluate: error: {message}", file=sys.stderr)
    return 2


def _default_out(args: argparse.Namespace) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(getattr(args, "state_dir", None) or DEFAULT_STATE_DIR) / "evaluations" / stamp
