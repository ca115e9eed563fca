"""The ``ffe`` command: run decision cycles offline and inspect what was recorded."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ffe import utc

STATE_DIR = Path(".ffe")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ffe", description=__doc__)
    parser.add_argument(
        "--state-dir", type=_state_dir, default=str(STATE_DIR), metavar="DIR", help="local state (default: ./.ffe)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run one decision cycle through the real state machine, offline")
    run.add_argument(
        "--as-of",
        type=_utc,
        default=None,
        metavar="ISO-8601",
        help="schedule time, e.g. "
        "2019-06-15T12:01:00Z (default: now with "
        "--provider live, else a Saturday in June 2019 where crypto is fresh and FX stale)",
    )
    run.add_argument(
        "--timeframe", default=None, help="which schedule in template.yaml fires: 15m, 1h or 1d (default 1h)"
    )
    run.add_argument(
        "--assets",
        type=symbol_list,
        default=None,
        metavar="A,B",
        help="comma-separated symbols instead of the schedule's universe",
    )
    run.add_argument(
        "--input",
        dest="raw_input",
        type=_json_text,
        default=None,
        metavar="JSON",
        help="start the execution with this exact JSON instead of a schedule event",
    )
    run.add_argument("--logs", action="store_true", help="also print each Lambda invocation's log lines")
    run.add_argument(
        "--bars",
        type=Path,
        default=None,
        metavar="FILE|DIR",
        help="run on the bars of a scenario file (.csv, .json) or a directory of them: their assets "
        "and timeframe, at --as-of or the JSON's as_of (format: examples/README.md)",
    )
    run.add_argument(
        "--universe",
        type=Path,
        default=None,
        metavar="FILE",
        help="store FILE (.csv or .json: asset, class[, venue][, enabled]) as the local stage's universe file for "
        "the cycle's timeframe and decide it on the Distributed Map (docs/universe.md)",
    )
    run.add_argument(
        "--provider",
        choices=["replay", "live"],
        default="replay",
        help="replay: bundled history (default); live: Coinbase/Oanda/Alpha Vantage with the "
        "credentials in ALPHA_VANTAGE_API_KEY, OANDA_API_TOKEN, OANDA_ACCOUNT_ID",
    )
    _wide_argument(run)
    run.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document and nothing else on stdout (notes go to stderr): the run's report as "
        "<state dir>/runs/ keeps it (execution_arn, status, error, cause, cycle_input, rule_name, decisions, "
        "failures, visits, cycle_note, dead_letters, health, inference, database, setup_postgres_s, setup_aws_s, "
        'execution_s) and "portfolio" as `ffe portfolio --json` gives it',
    )

    preflight = commands.add_parser(
        "preflight", help="check every configured live provider (credentials from the environment)"
    )
    preflight.add_argument(
        "--stage", default=None, help="run the deployed stage's Preflight function in AWS instead (its secrets)"
    )
    preflight.add_argument("--region", default=None, help="AWS region of the deployed stage (default: your AWS config)")
    _wide_argument(preflight)

    dlq = commands.add_parser("dlq", help="the dead-letter queue of records the store refused")
    dlq.add_argument(
        "action",
        choices=["replay", "list"],
        help="replay: write every parked record (idempotent), moving any the store refuses as malformed "
        "to the poison shelf; list: the parked records and the shelf, with the reasons",
    )
    dlq.add_argument("--stage", default=None, help="the deployed stage's queues in AWS instead of the local ones")
    dlq.add_argument("--region", default=None, help="AWS region of the deployed stage (default: your AWS config)")
    _wide_argument(dlq)

    breakers = commands.add_parser(
        "breakers", help="the shared circuit breakers (providers, inference endpoint): list them, or close one by hand"
    )
    breakers.add_argument(
        "action",
        nargs="?",
        choices=["list", "reset"],
        default="list",
        help="list (default): name, state, failures, opened at, next half-open; reset NAME --why: close one now, "
        "recorded with who and why",
    )
    breakers.add_argument("name", nargs="?", default=None, metavar="NAME", help="reset: the breaker, as listed")
    breakers.add_argument("--why", default=None, help="reset: the reason, recorded with your name on the breaker")
    breakers.add_argument("--stage", default=None, help="the deployed stage's breaker table in AWS instead of local")
    breakers.add_argument("--region", default=None, help="AWS region of the deployed stage (default: your AWS config)")
    _wide_argument(breakers)
    breakers.add_argument(
        "--json",
        action="store_true",
        help='print one JSON document and nothing else on stdout: {"breakers": [{name, state, failures, opened_at, '
        'next_half_open, reset_by, reset_why, reset_at}]}; with reset {"before": {...}, "after": {...}}',
    )

    api = commands.add_parser(
        "api", help="serve the API on 127.0.0.1 against the local stack (Ctrl-C or SIGTERM stops it)"
    )
    api.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080; 0: any free port)")

    db = commands.add_parser("db", help="the decision store")
    db.add_argument("action", choices=["migrate"], help="apply the schema migrations in order (idempotent)")

    decisions = commands.add_parser("decisions", help="list recorded decisions, newest first, or show one in full")
    decisions.add_argument("--limit", type=_positive, default=None, metavar="N", help="how many (default 20)")
    decisions.add_argument("--asset", default=None, metavar="SYMBOL", help="only this asset")
    decisions.add_argument(
        "--id", type=_positive, default=None, metavar="N", help="one decision in full: every field, the whole reason"
    )
    _wide_argument(decisions)
    decisions.add_argument(
        "--json",
        action="store_true",
        help='print one JSON document and nothing else on stdout: {"decisions": [...]}, newest first (with --id, '
        "that one), each with every field the store keeps (id, cycle_id, execution_id, asset, timeframe, as_of, "
        "bar_time, action, confidence, size, stale, reason, reasons, data_age_seconds, model, model_version, "
        "regime, source, input_sha256, created_at, ...); times ISO 8601, decimals as strings",
    )

    from ffe.training.cli import add_models_arguments, add_train_arguments

    add_train_arguments(
        commands.add_parser(
            "train",
            help="fit the regime mixtures and train the meta-controller "
            "on the bundled data; track and register in MLflow",
        )
    )
    add_models_arguments(
        commands.add_parser("models", help="registered meta-controller versions: list, promote, publish to a stage")
    )
    from ffe.experiments_cli import add_arguments as add_experiments_arguments

    add_experiments_arguments(
        commands.add_parser(
            "experiments",
            help="model experiments (shadow, canary): create, list, show, start, pause, stop, promote, rollback, "
            "advance, results",
        )
    )
    from ffe.secrets_cli import add_arguments as add_secrets_arguments

    add_secrets_arguments(
        commands.add_parser("secrets", help="a deployed stage's secrets in Secrets Manager: put one, list (no values)")
    )
    from ffe.cost_cli import add_arguments as add_cost_arguments

    add_cost_arguments(
        commands.add_parser(
            "cost", help="a stage's monthly cost per component, derived from the template (docs/cost.md)"
        )
    )
    from ffe.universe_cli import add_arguments as add_universe_arguments

    add_universe_arguments(
        commands.add_parser(
            "universe", help="a stage's universe file per timeframe in S3: check, put, show (docs/universe.md)"
        )
    )
    from ffe.backtest.cli import add_arguments as add_backtest_arguments

    add_backtest_arguments(
        commands.add_parser(
            "backtest",
            help="replay the decision pipeline over a bundled series: "
            "metrics for every strategy, JSON report and plots",
        )
    )
    from ffe.evaluation.cli import add_arguments as add_evaluate_arguments

    add_evaluate_arguments(
        commands.add_parser(
            "evaluate",
            help="walk-forward evaluation: retrain per fold, backtest every strategy on the unseen bars, "
            "means with bootstrap intervals (docs/evaluation.md)",
        )
    )

    commands.add_parser(
        "reset", help="stop the embedded Postgres and delete the local state (not while another ffe command uses it)"
    )
    dashboard = commands.add_parser(
        "dashboard", help="render the three CloudWatch dashboards from what local runs recorded, as one HTML file"
    )
    dashboard.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="the page's file (default: <state dir>/dashboard.html)"
    )
    portfolio = commands.add_parser("portfolio", help="the paper account: cash, positions, equity, exposure")
    portfolio.add_argument(
        "--json",
        action="store_true",
        help='print one JSON document and nothing else on stdout: {"portfolio": null} before the first run, else '
        '{"portfolio": {account, currency, cash, equity, peak, drawdown, exposure, pending_orders, positions: '
        "[{asset, quantity, average_price, mark_price, value, unrealised_pnl}]}}; money and quantities as decimal "
        "strings, drawdown and exposure as fractions",
    )

    args = parser.parse_args(argv)
    from ffe.local.errors import LocalError

    with _sigterm_interrupts():
        try:
            no_local_state = {"cost": _cost, "universe": _universe}  # no local state, no moto
            return no_local_state[args.command](args) if args.command in no_local_state else _dispatch(args)
        except LocalError as exc:  # the user's input or set-up: one line, no traceback
            print(f"ffe {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM, after what the command started was stopped
            print(f"ffe {args.command}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader left (`ffe decisions | head`): nothing more to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit, when stdout is flushed
            return 1


def _dispatch(args: argparse.Namespace) -> int:
    from ffe.local.runner import LocalState

    if args.command in ("run", "api") or (args.command in ("preflight", "dlq") and args.stage is None):
        _project()  # these deploy template.yaml: fail before starting anything when it is not there

    state = LocalState(args.state_dir)
    if args.command == "run":
        return _run(state, args)
    if args.command == "decisions":
        return _decisions(state, args)
    if args.command in ("train", "models"):
        from ffe.training.cli import models_command, train_command

        return train_command(args, state) if args.command == "train" else models_command(args, state)
    if args.command == "backtest":
        from ffe.backtest.cli import command as backtest_command

        return backtest_command(args)
    if args.command == "preflight":
        return _preflight(state, args)
    reads = {
        "dashboard": lambda: _dashboard(state, args.out),
        "portfolio": lambda: _portfolio(state, args.json),
        "experiments": lambda: _experiments(state, args),
        "secrets": lambda: _secrets(args),
        "evaluate": lambda: _evaluate(state, args),
    }
    if args.command in reads:
        return reads[args.command]()
    if args.command == "dlq":
        return (
            _dlq_list(state, args.stage, args.region, args.wide)
            if args.action == "list"
            else _dlq_replay(state, args.stage, args.region)
        )
    if args.command == "breakers":
        return _breakers(state, args)
    if args.command == "api":
        from ffe.local.runner import serve_api

        return serve_api(state, args.port)
    if args.command == "db":
        from ffe.local.runner import migrate_locally

        applied = migrate_locally(state)
        print(f"applied {', '.join(applied)}" if applied else "schema already up to date")
        return 0
    state.reset()
    print(f"removed {args.state_dir}/ (embedded Postgres data and run history)")
    return 0


def _run(state: Any, args: argparse.Namespace) -> int:
    from ffe.local.runner import paper_portfolio, run_cycle
    from ffe.terminal import print_json
    from ffe.views import run_document, show_run

    scenario = None
    if args.bars is not None:
        try:
            scenario, args.as_of = _scenario(args)
        except ValueError as exc:  # InvalidInputError too: one line naming the file, line or row, and field
            print(f"ffe run: error: {exc}", file=sys.stderr)
            return 2
    universe = None
    if args.universe is not None:
        try:
            universe = _universe_file(args)
        except ValueError as exc:  # InvalidInputError too: one line naming the file, row and field
            print(f"ffe run: error: {exc}", file=sys.stderr)
            return 2
    timeframe = args.timeframe or "1h"
    with _stdout_to_stderr(args.json):
        if scenario is None:
            _check_schedule(args, timeframe)
        default_as_of = _now_minute() if args.provider == "live" else state.next_as_of(timeframe)
        report = run_cycle(
            state,
            as_of=args.as_of or default_as_of,
            timeframe=timeframe,
            assets=args.assets,
            raw_input=args.raw_input,
            echo_logs=args.logs,
            provider=args.provider,
            scenario=scenario,
            universe=universe,
        )
        book = paper_portfolio(state)
    if args.json:
        print_json(run_document(report, book))
    else:
        show_run(report, book, args.wide)
    return 0 if report.status == "SUCCEEDED" else 1


def _universe_file(args: argparse.Namespace) -> Any:
    """``--universe``: the file's entries, validated as ``ffe universe put`` validates them."""
    from ffe.universe_file import MAX_UNIVERSE_BYTES, parse_universe

    if args.raw_input is not None or args.assets:
        raise ValueError("--universe takes the place of --input and --assets: use one of them")
    try:
        with args.universe.open("rb") as file:
            content = file.read(MAX_UNIVERSE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"--universe {args.universe}: {exc.strerror or exc}") from None
    return parse_universe(content, str(args.universe))


def _scenario(args: argparse.Namespace) -> tuple[Any, datetime]:
    """``--bars``: the scenario and the time its cycle runs at (``--as-of``, else the JSON's ``as_of``)."""
    from ffe.adapters.scenario import load_scenario

    if args.raw_input is not None or args.provider != "replay":
        raise ValueError("--bars takes the place of --input and --provider: use one of them")
    scenario = load_scenario(args.bars)
    if args.timeframe is not None and args.timeframe != scenario.timeframe:
        raise ValueError(f"--timeframe {args.timeframe}, but {args.bars} has {scenario.timeframe} bars")
    as_of = args.as_of or scenario.as_of
    if as_of is None:
        raise ValueError(f'{args.bars}: no as_of; pass --as-of, or give "as_of" in a JSON scenario file')
    return scenario, as_of


def _experiments(state: Any, args: argparse.Namespace) -> int:
    from ffe.experiments_cli import command

    return command(args, state)


def _secrets(args: argparse.Namespace) -> int:
    from ffe.secrets_cli import command

    return command(args)


def _cost(args: argparse.Namespace) -> int:
    from ffe.cost_cli import command

    return command(args)


def _evaluate(state: Any, args: argparse.Namespace) -> int:
    from ffe.evaluation.cli import command

    return command(args, state)


def _universe(args: argparse.Namespace) -> int:
    from ffe.universe_cli import command

    return command(args)


def _dashboard(state: Any, out: Path | None) -> int:
    """``ffe dashboard``: the page from the EMF lines and the store that local runs left; prints its path."""
    from ffe.local.errors import LocalError
    from ffe.monitoring.page import write_dashboard

    target = out if out is not None else state.root / "dashboard.html"
    if target.is_dir() or (out is not None and not target.parent.is_dir()):
        where = "is a folder" if target.is_dir() else f"is in {target.parent}, which is not a folder"
        raise LocalError(f"--out {out}: {where}; name a file in an existing folder")
    if out is None:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        path, values = write_dashboard(state, target)
    except OSError as exc:
        raise LocalError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(path.resolve())
    if not values:
        print("note: no metrics recorded yet; run `ffe run` first (widgets say what is missing)", file=sys.stderr)
    return 0


def _portfolio(state: Any, as_json: bool) -> int:
    from ffe.local.runner import paper_portfolio
    from ffe.terminal import print_json
    from ffe.views import portfolio_document, show_portfolio

    with _stdout_to_stderr(as_json):
        book = paper_portfolio(state)
    if as_json:
        print_json({"portfolio": portfolio_document(book)})
    else:
        show_portfolio(book)
    return 0


def _dlq_replay(state: Any, stage: str | None, region: str | None) -> int:
    if stage is None:
        from ffe.local.runner import replay_dead_letters_locally

        report = replay_dead_letters_locally(state)
    else:  # the deployed stage: the queue and function names come from the template's naming
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        from ffe.dlq import replay
        from ffe.local.errors import LocalError

        try:
            session = boto3.Session(region_name=region)
            sqs = session.client("sqs")
            queue, poison = (
                sqs.get_queue_url(QueueName=f"ffe-{stage}-{q}")["QueueUrl"] for q in ("decision-dlq", "decision-poison")
            )
            report = replay(sqs, session.client("lambda"), queue, f"ffe-{stage}-record-decision", poison)
        except (BotoCoreError, ClientError) as exc:  # credentials, region, a stage that is not deployed
            raise LocalError(f"stage {stage!r} in AWS: {exc}") from None
    from ffe.views import show_dlq_replay

    show_dlq_replay(report)
    return 0 if not report.failed else 1


def _dlq_list(state: Any, stage: str | None, region: str | None, wide: bool) -> int:
    if stage is None:
        from ffe.local.runner import parked_locally

        waiting, shelved = parked_locally(state)
    else:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        from ffe.dlq import peek
        from ffe.local.errors import LocalError

        try:
            sqs = boto3.Session(region_name=region).client("sqs")
            waiting, shelved = (
                peek(sqs, sqs.get_queue_url(QueueName=f"ffe-{stage}-{q}")["QueueUrl"])
                for q in ("decision-dlq", "decision-poison")
            )
        except (BotoCoreError, ClientError) as exc:
            raise LocalError(f"stage {stage!r} in AWS: {exc}") from None
    from ffe.views import show_dlq_list

    show_dlq_list(waiting, shelved, wide)
    return 0


def _breakers(state: Any, args: argparse.Namespace) -> int:
    from ffe.breakers import UnknownBreakerError, reset_breaker, shared_breakers
    from ffe.local.errors import LocalError
    from ffe.terminal import print_json
    from ffe.views import show_breaker_reset, show_breakers

    if args.action == "list" and (args.name is not None or args.why is not None):
        raise LocalError("listing takes no NAME or --why; `ffe breakers reset NAME --why ...` closes one")
    if args.action == "reset" and not args.name:
        raise LocalError("reset needs the NAME of a breaker, as `ffe breakers` lists them")
    if args.action == "reset" and not (args.why or "").strip():
        raise LocalError('reset needs --why "...": the reason is recorded with your name')
    with _breaker_table(state, args.stage, args.region) as (table, stage, who):
        if args.action == "list":
            rows = shared_breakers(table, stage)
        else:
            try:
                with _log_to_stderr():
                    before, after = reset_breaker(table, stage, args.name, who(), args.why.strip())
            except UnknownBreakerError as exc:
                raise LocalError(str(exc)) from None
    if args.action == "reset":
        if args.json:
            print_json({"before": before, "after": after})
        else:
            show_breaker_reset(before, after)
    elif args.json:
        print_json({"breakers": rows})
    else:
        show_breakers(rows, stage if args.stage else None, args.wide)
    return 0


@contextlib.contextmanager
def _breaker_table(state: Any, stage: str | None, region: str | None) -> Iterator[tuple[Any, str, Any]]:
    """The breaker table, its stage and who is acting: the local runtime's (the OS user) or the deployed
    stage's in AWS (the caller identity)."""
    if stage is None:
        from ffe.local.breakers import LOCAL_STAGE, local_breaker_table

        with local_breaker_table(state.breakers) as table:
            yield table, LOCAL_STAGE, _os_user
        return
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from ffe.local.errors import LocalError

    try:
        session = boto3.Session(region_name=region)
        table = session.resource("dynamodb").Table(f"ffe-{stage}-circuit-breakers")
        yield table, stage, lambda: str(session.client("sts").get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError) as exc:  # credentials, region, a stage that is not deployed
        raise LocalError(f"stage {stage!r} in AWS: {exc}") from None


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[None]:
    """The structured log lines a command writes (ffe's logger, stdout in Lambda) go to stderr: stdout is its output."""
    from ffe.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        yield
        return
    previous = handler.setStream(sys.stderr)
    try:
        yield
    finally:
        if previous is not None:
            handler.setStream(previous)


def _preflight(state: Any, args: argparse.Namespace) -> int:
    from ffe.local.runner import run_preflight_locally
    from ffe.stage_preflight import stage_preflight
    from ffe.views import show_preflight

    report = run_preflight_locally(state) if args.stage is None else stage_preflight(args.stage, args.region)
    show_preflight(report, args.wide)
    return 0 if report["healthy"] else 1


def _decisions(state: Any, args: argparse.Namespace) -> int:
    from ffe.local.errors import LocalError
    from ffe.local.runner import recent_decisions, recorded_decision
    from ffe.terminal import print_json
    from ffe.views import show_decision, show_decisions

    if args.id is not None:
        if args.limit is not None or args.asset is not None:
            raise LocalError("--id shows one decision: leave out --limit and --asset")
        with _stdout_to_stderr(args.json):
            found = recorded_decision(state, args.id)
        if found is None:
            raise LocalError(f"--id {args.id}: no decision with that id; `ffe decisions` lists the recorded ones")
        rows = [found]
    else:
        with _stdout_to_stderr(args.json):
            rows = recent_decisions(state, limit=args.limit or 20, asset=args.asset)
    if args.json:
        print_json({"decisions": rows})
    elif args.id is not None:
        show_decision(rows[0])
    else:
        show_decisions(rows, args.wide)
    return 0


def _wide_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wide", action="store_true", help="print reasons and messages whole, wrapped in their column, not cut to fit"
    )


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """With ``--json`` whatever the command prints while it works goes to stderr: stdout carries the document."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(_Stderr()):
        yield


class _Stderr(io.TextIOBase):
    """Writes to stderr, as a stream of its own: the local Lambdas still capture their log handlers' writes to it
    (they leave handlers on stderr itself alone), so only what would have been on stdout moves."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _now_minute() -> datetime:
    """Live data is judged against the wall clock: a live run's schedule fires now."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _check_schedule(args: argparse.Namespace, timeframe: str) -> None:
    """``--timeframe`` names a schedule in template.yaml; replay says up front which assets it has no such bars for."""
    from ffe.adapters.replay import no_bars_at
    from ffe.domain.models import Timeframe
    from ffe.local.errors import LocalError
    from ffe.local.runner import default_universe, scheduled_inputs
    from ffe.terminal import show

    scheduled = scheduled_inputs(_project())
    if timeframe not in scheduled:
        *rest, last = scheduled or ["(none)"]
        choices = f"{', '.join(rest)} or {last}" if rest else last
        raise LocalError(f"--timeframe {timeframe}: template.yaml has no such schedule; use {choices}, or --bars")
    if args.provider != "replay":
        return
    cycle = json.loads(args.raw_input) if args.raw_input is not None else scheduled[timeframe]
    cycle = cycle if isinstance(cycle, dict) else {}  # a malformed --input is the state machine's to refuse
    named = (args.assets if args.raw_input is None else None) or cycle.get("assets")
    fired, assets = cycle.get("timeframe"), named if named is not None else default_universe(_project())
    if fired not in [t.value for t in Timeframe] or not isinstance(assets, list):
        return
    bundled: dict[str, list[str]] = {}
    for asset, native in no_bars_at(Timeframe(fired), [a for a in assets if isinstance(a, str)]).items():
        bundled.setdefault(native, []).append(asset)
    if bundled:
        listed = "; ".join(f"{', '.join(names)} (bundled at {native})" for native, names in bundled.items())
        show(
            f"note: replay has no {fired} bars for {listed}: they will HOLD on 'no bars'; "
            "use a coarser --timeframe, or --bars with your own bars"
        )


def _project() -> Path:
    from ffe.local.errors import LocalError
    from ffe.local.template import project_root

    try:
        return project_root()
    except FileNotFoundError as exc:
        raise LocalError(f"{exc}: run ffe from the project folder") from None


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C: what the command started (Postgres, the stack, the API server) is stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# --- argument types: a bad value is argparse's one-line error naming the option, and exit code 2 -------------


def _utc(text: str) -> datetime:
    try:
        return utc.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time such as 2019-06-15T12:01:00Z") from None


def symbol_list(text: str) -> list[str]:
    """An argparse type: a comma-separated list of symbols, each once (one clear line, exit 2, otherwise)."""
    symbols = [a.strip() for a in text.split(",") if a.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError(f"{text!r} names no symbol; give e.g. BTCUSD,ETHUSD")
    twice = sorted({a for a in symbols if symbols.count(a) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} given more than once")
    return symbols


def _json_text(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text[:60]!r}") from None
    return text


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _positive(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def _port(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0-65535; 0 picks a free one)")
    return value


def _state_dir(text: str) -> Path:
    path = Path(text)
    for existing in (path, *path.absolute().parents):
        if existing.exists():
            if not existing.is_dir():
                where = "is a file" if existing == path else f"is inside {existing}, which is a file"
                raise argparse.ArgumentTypeError(f"{text} {where}, not a folder")
            break
    return path


if __name__ == "__main__":
    sys.exit(main())
