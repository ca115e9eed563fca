"""``ffe experiments``: the experiment lifecycle against the local stage (the embedded Postgres in ``.ffe/``).

The same store and rules as the API (``ffe.adapters.experiments``, ``ffe.domain.experiments``); every transition
is recorded with the actor ``cli:<os user>``. A treatment or control is a bundle version (``ffe-...``) in the local
model store (``.ffe/models/``) or a registered version (``v3`` or ``3``, mapped to its bundle through MLflow's
``ffe.bundle_version`` run tag, as ``ffe models list`` shows it). Bad input is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from ffe import utc
from ffe.contracts import NAME_PATTERN

_REGISTERED = re.compile(r"^v?(\d{1,9})$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_TRANSITIONS = {
    "start": "running",
    "pause": "paused",
    "stop": "stopped",
    "promote": "promoted",
    "rollback": "rolled_back",
}
DEFAULT_PLAN = "0.05:50:6h,0.25:50:6h,1.0:50:6h"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="experiments_action", required=True)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print one JSON document and nothing else on stdout")

    create = actions.add_parser("create", parents=[as_json], help="a new experiment, as a draft")
    create.add_argument(
        "--treatment", required=True, metavar="V", help="bundle version (ffe-...) or registered version (v3, 3)"
    )
    create.add_argument("--control", default=None, metavar="V", help="default: the local stage's champion")
    create.add_argument("--mode", choices=["shadow", "split"], default="shadow", help="default shadow")
    create.add_argument(
        "--assets", type=_symbols, default=None, metavar="A,B", help="default: the stage's whole universe"
    )
    create.add_argument(
        "--plan",
        type=_plan,
        default=None,
        metavar="SHARE:MIN_DECISIONS:MIN_DURATION,...",
        help=f"canary steps, durations in s/m/h/d (default {DEFAULT_PLAN})",
    )
    create.add_argument(
        "--latency-p95-ms",
        type=_positive_float,
        default=None,
        metavar="MS",
        help="guardrail: decision-path latency p95 at most this (default: EXPERIMENT_LATENCY_P95_MS, else 5000"
        " offline, where the path runs through moto)",
    )
    create.add_argument(
        "--metric",
        choices=["sharpe", "pnl", "max_drawdown"],
        default=None,
        help="guardrail: the performance compared with the control (default: EXPERIMENT_METRIC, sharpe)",
    )
    create.add_argument(
        "--max-degradation",
        type=_fraction,
        default=None,
        metavar="F",
        help="guardrail: how much worse than the control, relative, in (0, 1] (default: EXPERIMENT_MAX_DEGRADATION)",
    )
    create.add_argument(
        "--sustained-cycles",
        type=_positive_int,
        default=None,
        metavar="N",
        help="guardrail: cycles a latency breach must last (default: EXPERIMENT_SUSTAINED_CYCLES, 3)",
    )
    create.add_argument(
        "--id", dest="experiment_id", type=_experiment_id, default=None, help="default: exp-<date>-<hex>"
    )

    listing = actions.add_parser("list", parents=[as_json], help="every experiment, oldest first")
    listing.add_argument(
        "--status",
        choices=["draft", "running", "paused", "stopped", "promoted", "rolled_back"],
        default=None,
        help="only those in this status",
    )
    show = actions.add_parser("show", parents=[as_json], help="one experiment with its transitions")
    show.add_argument("id", type=_experiment_id)
    for action, text in (
        ("start", "start a draft, or resume a paused experiment"),
        ("pause", "pause: every asset is served by the control"),
        ("stop", "stop: all traffic to the control (final)"),
        ("promote", "promote: the treatment becomes the champion (split mode, at the last canary step)"),
        ("rollback", "roll back a running or paused experiment, or undo a promotion"),
        ("advance", "move a running split experiment's canary to its next step by hand"),
    ):
        moved = actions.add_parser(action, parents=[as_json], help=text)
        moved.add_argument("id", type=_experiment_id)
        moved.add_argument("--why", default="", help="the reason, recorded with your name")
        if action == "promote":
            moved.add_argument(
                "--force",
                action="store_true",
                help="promote even when the promotion gate refuses (needs --why, recorded on the registered version)",
            )
    results = actions.add_parser("results", parents=[as_json], help="compare the arms over the experiment's life")
    results.add_argument("id", type=_experiment_id)
    results.add_argument("--since", type=_utc, default=None, metavar="ISO-8601", help="window start")
    results.add_argument("--until", type=_utc, default=None, metavar="ISO-8601", help="window end")


def command(args: argparse.Namespace, state: Any) -> int:
    from ffe.domain.errors import ConflictError, InvalidInputError, UnknownExperimentError
    from ffe.local.errors import LocalError

    try:
        with _store(state) as store:
            return _act(args, state, store)
    except (ConflictError, InvalidInputError, UnknownExperimentError) as exc:
        raise LocalError(str(exc)) from None


def _act(args: argparse.Namespace, state: Any, store: Any) -> int:
    from ffe.domain.experiments import ExperimentStatus, Trigger
    from ffe.local.errors import LocalError

    action = args.experiments_action
    if action == "create":
        experiment = store.create(_new_experiment(args, state, store))
    elif action == "list":
        rows = store.list(ExperimentStatus(args.status) if args.status else None)
        return _print_list(rows, args.json)
    elif action == "show":
        experiment = store.get(args.id)
        if experiment is None:
            raise LocalError(f"no experiment {args.id!r}; `ffe experiments list` lists them")
    elif action == "results":
        return _results(args, state)
    elif action == "advance":
        experiment = store.advance(args.id, actor(), Trigger.MANUAL, args.why)
    elif action == "promote":
        gate = _promotion_gate(args, state, store)
        if isinstance(gate, int):
            return gate
        experiment = store.transition(args.id, ExperimentStatus.PROMOTED, actor(), Trigger.MANUAL, args.why)
        if gate is not None:
            gate()
    else:
        to = ExperimentStatus(_TRANSITIONS[action])
        experiment = store.transition(args.id, to, actor(), Trigger.MANUAL, args.why)
    return _print_one(experiment, store.transitions(experiment.id), args.json)


def _promotion_gate(args: argparse.Namespace, state: Any, store: Any) -> int | Callable[[], None] | None:
    """The promotion gate of ``ffe models promote`` on the treatment, after the lifecycle allows the promotion.

    1: refused (why on stderr), as the API refuses: the treatment has no walk-forward evidence (its bundle was not
    trained with MLflow tracking, it is not a registered version, or its version has none) or the evidence does
    not pass; ``--force --why`` overrules either. Else the call that records the promotion on the registered
    version once the transition is made, or None (an unknown experiment, for the transition to report; a forced
    promotion of an unregistered treatment, which has nowhere to record it). The bar besides the naive router is
    the experiment's control: its registered version's evidence. See docs/models.md, "Promotion gate".
    """
    import sys
    import tempfile
    from pathlib import Path

    from ffe.domain.experiments import ExperimentStatus, check_transition
    from ffe.evaluation.gate import CHAMPION, GateConfig, Verdict, not_compared
    from ffe.local.errors import LocalError
    from ffe.training.cli import local_tracker
    from ffe.training.pipeline import MODEL_NAME
    from ffe.training.promotion import promotion_tags, verdict_for

    force, reason = bool(getattr(args, "force", False)), (args.why or "").strip() or None
    if force and reason is None:
        raise LocalError("--force needs --why TEXT: why the promotion gate is overruled is recorded")
    experiment = store.get(args.id)
    if experiment is None:
        return None  # an unknown experiment is the transition's to report
    check_transition(experiment, ExperimentStatus.PROMOTED)  # the lifecycle's refusal says more than the gate's
    try:
        config = GateConfig.from_env()
    except ValueError as exc:
        raise LocalError(str(exc)) from None
    treatment_run = _mlflow_run_of(state, experiment.treatment_version)
    if treatment_run is None:
        return _without_evidence(
            args.id,
            f"the treatment {experiment.treatment_version} was not trained with MLflow "
            "tracking, so no walk-forward evidence shows it beats anything",
            force,
        )
    with local_tracker(state) as tracker:
        number = _registered_number(tracker, treatment_run)
        if number is None:
            why = f"the treatment {experiment.treatment_version} is not a registered version, so it has no evidence"
            return _without_evidence(args.id, why, force)
        control_run = _mlflow_run_of(state, experiment.control_version)
        control = None if control_run is None else _registered_number(tracker, control_run)
        with tempfile.TemporaryDirectory() as tmp:
            verdict = verdict_for(tracker, MODEL_NAME, number, control, config, Path(tmp))
        if control is None:
            unshown = not_compared(
                CHAMPION,
                f"control {experiment.control_version}",
                "the control is not a registered version, so no evidence shows the treatment beats it:"
                " promote with --force --why TEXT",
            )
            verdict = Verdict(config, (*verdict.comparisons, unshown))
    lines = verdict.lines()
    if not verdict.passed and not force:
        print(*lines, sep="\n", file=sys.stderr)
        print(f"{args.id} stays where it is; --force --why TEXT overrules the gate", file=sys.stderr)
        return 1
    print(*lines, sep="\n", file=sys.stderr)  # stderr: stdout may be the --json document

    def record() -> None:
        tags = promotion_tags(verdict, forced=force, reason=reason, champion=control)
        tags["ffe.promotion.experiment"] = args.id
        with local_tracker(state) as tracker:
            tracker.set_model_version_tags(MODEL_NAME, number, tags)

    return record


def _without_evidence(experiment_id: str, why: str, force: bool) -> int | None:
    """1 and why on stderr, unless ``--force`` (then a note, and the promotion goes ahead)."""
    import sys

    if not force:
        print(f"promotion gate refused: {why}", file=sys.stderr)
        print(
            f"{experiment_id} stays where it is: register the treatment and run `ffe evaluate --version N`, or "
            "promote anyway with --force --why TEXT",
            file=sys.stderr,
        )
        return 1
    print(f"{why}: promoted under --force", file=sys.stderr)
    return None


def _mlflow_run_of(state: Any, version: str) -> str | None:
    """The MLflow run that trained a bundle of the local model store (its manifest's ``mlflow_run_id``), if any."""
    import json

    manifest = state.root / "models" / version / "manifest.json"
    try:
        run_id = json.loads(manifest.read_text()).get("mlflow_run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return str(run_id) if run_id else None


def _registered_number(tracker: Any, run_id: str) -> str | None:
    """The newest registered version of the model whose source is that run; None if it was never registered."""
    from ffe.training.pipeline import MODEL_NAME

    found = tracker.client.search_model_versions(f"name = '{MODEL_NAME}' and run_id = '{run_id}'")
    return str(max(int(mv.version) for mv in found)) if found else None


def _new_experiment(args: argparse.Namespace, state: Any, store: Any) -> Any:
    from ffe.domain.experiments import CanaryPlan, Experiment, Mode

    treatment = resolve_version(state, args.treatment, "--treatment")
    control = resolve_version(state, args.control, "--control") if args.control else store.champion().version
    if not args.control:
        _require_published(state, control, "the champion (the default --control)")
    now = utc.now()
    return Experiment(
        id=args.experiment_id or f"exp-{now:%Y%m%d}-{secrets.token_hex(3)}",
        control_version=control,
        treatment_version=treatment,
        mode=Mode(args.mode),
        created_at=now,
        assets=frozenset(args.assets) if args.assets else None,
        plan=args.plan or CanaryPlan(),
        guardrails=_guardrails(args),
    )


# Offline a decision's path runs through moto's Step Functions interpreter, in-process Lambdas and the embedded
# Postgres: over a second, where AWS answers within the 200 ms the stages default to. The local stage's latency
# guardrail is therefore 5 s unless --latency-p95-ms or EXPERIMENT_LATENCY_P95_MS says otherwise.
LOCAL_LATENCY_P95_MS = 5_000.0


def _guardrails(args: argparse.Namespace) -> Any:
    """The stage's default guardrails with what the options change (the latency one: see LOCAL_LATENCY_P95_MS)."""
    import os
    from dataclasses import replace

    from ffe.api.experiments import default_guardrails

    latency = args.latency_p95_ms
    if latency is None and "EXPERIMENT_LATENCY_P95_MS" not in os.environ:
        latency = LOCAL_LATENCY_P95_MS
    given = {
        "latency_p95_ms": latency,
        "metric": args.metric,
        "max_degradation": args.max_degradation,
        "sustained_cycles": args.sustained_cycles,
    }
    return replace(default_guardrails(), **{k: v for k, v in given.items() if v is not None})


def resolve_version(state: Any, text: str, option: str) -> str:
    """A bundle version in the local model store, from a bundle version or a registered version (``v3``/``3``)."""
    from ffe.local.errors import LocalError

    registered = _REGISTERED.match(text)
    version = _bundle_of_registered(state, registered.group(1), option) if registered else text
    if not re.match(NAME_PATTERN, version):
        raise LocalError(f"{option} {text!r} is not a model version (ffe-... or v3)")
    _require_published(state, version, f"{option} {text}")
    return version


def _require_published(state: Any, version: str, what: str) -> None:
    from ffe.adapters.models import ModelStore
    from ffe.local.errors import LocalError

    local = ModelStore(str(state.root / "models"))
    if not local.exists(version):
        raise LocalError(
            f"{what}: model version {version!r} is not in the local model store {local.root}/; "
            "`ffe train` or `ffe models promote` puts it there"
        )


def _bundle_of_registered(state: Any, number: str, option: str) -> str:
    from ffe.local.errors import LocalError
    from ffe.training.cli import local_tracker
    from ffe.training.pipeline import MODEL_NAME

    with local_tracker(state) as tracker:
        client = tracker.client
        try:
            found = client.get_model_version(MODEL_NAME, number)
        except Exception:  # MLflow's RestException/MlflowException: no such version (or no registry yet)
            raise LocalError(f"{option} v{number}: no such registered version; `ffe models list` lists them") from None
        bundle = client.get_run(found.run_id).data.tags.get("ffe.bundle_version")
    if not bundle:
        raise LocalError(f"{option} v{number}: its MLflow run has no ffe.bundle_version tag")
    return str(bundle)


def actor() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = f"uid {os.getuid()}"
    return f"cli:{user}"


@contextmanager
def _store(state: Any) -> Iterator[Any]:
    from ffe.adapters.experiments import PostgresExperiments

    with state.postgres() as pg:
        store = PostgresExperiments(pg.url)
        try:
            yield store
        finally:
            store.close()


def _results(args: argparse.Namespace, state: Any) -> int:
    from ffe.adapters.experiment_results import PostgresExperimentResults
    from ffe.local.errors import LocalError
    from ffe.terminal import print_json
    from ffe.views import show_experiment_results

    if args.since is not None and args.until is not None and args.since > args.until:
        raise LocalError("--since is after --until")
    with state.postgres() as pg:
        results = PostgresExperimentResults(pg.url)
        try:
            document = results.compare(args.id, args.since, args.until).to_json()
        finally:
            results.database.close()
    if args.json:
        print_json(document)
    else:
        show_experiment_results(document)
    return 0


def _print_list(experiments: list[Any], as_json: bool) -> int:
    from ffe.terminal import print_json
    from ffe.views import experiment_document, show_experiments

    if as_json:
        print_json({"experiments": [experiment_document(e) for e in experiments]})
    else:
        show_experiments(experiments)
    return 0


def _print_one(experiment: Any, transitions: list[Any], as_json: bool) -> int:
    from ffe.terminal import print_json
    from ffe.views import experiment_document, show_experiment

    if as_json:
        print_json({"experiment": experiment_document(experiment, transitions)})
    else:
        show_experiment(experiment, transitions)
    return 0


# --- argument types: a bad value is argparse's one-line error naming the option, and exit code 2 -------------


def _experiment_id(text: str) -> str:
    if not re.match(NAME_PATTERN, text):
        raise argparse.ArgumentTypeError(f"{text[:70]!r} is not an experiment id (letters, digits, . _ -; 64 at most)")
    return text


def _symbols(text: str) -> list[str]:
    from ffe.cli import symbol_list
    from ffe.domain.universe import asset_class_of

    symbols = symbol_list(text)
    for symbol in symbols:
        try:
            asset_class_of(symbol)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return symbols


def _plan(text: str) -> Any:
    from ffe.domain.experiments import CanaryPlan, CanaryStep

    steps = []
    for index, part in enumerate(text.split(",")):
        fields = part.strip().split(":")
        if len(fields) != 3:
            raise argparse.ArgumentTypeError(
                f"step {index} {part!r}: give SHARE:MIN_DECISIONS:MIN_DURATION, e.g. 0.05:50:6h"
            )
        share, decisions, duration = fields
        try:
            step_share, step_decisions = _number(share, float, "SHARE"), _number(decisions, int, "MIN_DECISIONS")
            steps.append(CanaryStep(step_share, step_decisions, _duration(duration)))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"step {index} {part!r}: {exc}") from None
    try:
        return CanaryPlan(tuple(steps))
    except ValueError as exc:  # InvalidInputError: shares not increasing, not ending at 1.0, ...
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(text: str, kind: type[float] | type[int], name: str) -> Any:
    """``text`` as a ``kind``, or a ValueError that names the field and what it takes."""
    try:
        return kind(text)
    except ValueError:
        wanted = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} {text[:20]!r} is not {wanted}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not 0 < value <= 60_000:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{value:g} is not in (0, 60000]")
    return value


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not in (0, 1]")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} is not in 1..1000")
    return value


def _duration(text: str) -> timedelta:
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError(f"duration {text!r} is not a number with s, m, h or d (e.g. 6h)")
    seconds = float(found.group(1)) * _SECONDS[found.group(2)]
    if seconds > 365 * 86_400:
        raise ValueError(f"duration {text!r} is over a year")
    return timedelta(seconds=seconds)


def _utc(text: str) -> Any:
    try:
        return utc.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time such as 2019-06-15T12:01:00Z") from None
