"""The ``ffe`` command: run decision cycles offline and inspect what was recorded."""

from __future__ import annotations

import argparse
import contextlib
import json
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
        type=_symbols,
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
        "--provider",
        choices=["replay", "live"],
        default="replay",
        help="replay: bundled history (default); live: Coinbase/Oanda/Alpha Vantage with the "
        "credentials in ALPHA_VANTAGE_API_KEY, OANDA_API_TOKEN, OANDA_ACCOUNT_ID",
    )

    commands.add_parser("preflight", help="check every configured live provider (credentials from the environment)")

    dlq = commands.add_parser("dlq", help="the dead-letter queue of records the store refused")
    dlq.add_argument(
        "action",
        choices=["replay", "list"],
        help="replay: write every parked record (idempotent), moving any the store refuses as malformed "
        "to the poison shelf; list: the parked records and the shelf, with the reasons",
    )
    dlq.add_argument("--stage", default=None, help="the deployed stage's queues in AWS instead of the local ones")
    dlq.add_argument("--region", default=None, help="AWS region of the deployed stage (default: your AWS config)")

    api = commands.add_parser(
        "api", help="serve the API on 127.0.0.1 against the local stack (Ctrl-C or SIGTERM stops it)"
    )
    api.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080; 0: any free port)")

    db = commands.add_parser("db", help="the decision store")
    db.add_argument("action", choices=["migrate"], help="apply the schema migrations in order (idempotent)")

    decisions = commands.add_parser("decisions", help="list recorded decisions, newest first")
    decisions.add_argument("--limit", type=_positive, default=20, metavar="N", help="how many (default 20)")
    decisions.add_argument("--asset", default=None, metavar="SYMBOL", help="only this asset")

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
    from ffe.backtest.cli import add_arguments as add_backtest_arguments

    add_backtest_arguments(
        commands.add_parser(
            "backtest",
            help="replay the decision pipeline over a bundled series: "
            "metrics for every strategy, JSON report and plots",
        )
    )

    commands.add_parser(
        "reset", help="stop the embedded Postgres and delete the local state (not while another ffe command uses it)"
    )
    commands.add_parser("portfolio", help="the paper account: cash, positions, equity, exposure")

    args = parser.parse_args(argv)
    from ffe.local.errors import LocalError

    with _sigterm_interrupts():
        try:
            return _dispatch(args)
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

    if args.command in ("run", "preflight", "api") or (args.command == "dlq" and args.stage is None):
        _project()  # these deploy template.yaml: fail before starting anything when it is not there

    state = LocalState(args.state_dir)
    if args.command == "run":
        return _run(state, args)
    if args.command == "decisions":
        return _decisions(state, args.limit, args.asset)
    if args.command in ("train", "models"):
        from ffe.training.cli import models_command, train_command

        return train_command(args, state) if args.command == "train" else models_command(args, state)
    if args.command == "backtest":
        from ffe.backtest.cli import command as backtest_command

        return backtest_command(args)
    if args.command == "preflight":
        return _preflight(state)
    if args.command == "portfolio":
        return _portfolio(state, heading=True)
    if args.command == "dlq":
        return (
            _dlq_list(state, args.stage, args.region)
            if args.action == "list"
            else _dlq_replay(state, args.stage, args.region)
        )
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
    from ffe.domain.staleness import human_duration
    from ffe.local.runner import run_cycle

    scenario = None
    if args.bars is not None:
        try:
            scenario, args.as_of = _scenario(args)
        except ValueError as exc:  # InvalidInputError too: one line naming the file, line or row, and field
            print(f"ffe run: error: {exc}", file=sys.stderr)
            return 2
    timeframe = args.timeframe or "1h"
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
    )
    cycle = report.cycle_input if isinstance(report.cycle_input, dict) else {}
    print(
        f"DecisionCycle {cycle.get('timeframe', '?')} as of {cycle.get('as_of', '?')}"
        f"  (schedule {report.rule_name}, cycle {cycle.get('cycle_id', '?')})"
    )
    print(
        f"execution {report.execution_arn}: {report.status}"
        + (f"  {report.error}: {report.cause}" if report.error else "")
    )
    if report.cycle_note:
        print(report.cycle_note)
    if report.health is not None:
        providers = ", ".join(
            f"{p.provider} {'configured' if p.configured else 'not configured'} (breaker {p.breaker})"
            for p in report.health.providers
        )
        cache = "reachable" if report.health.cache_reachable else "UNREACHABLE"
        print(f"market data: {providers}; bar cache {cache}")
    print(
        f"set-up {report.setup_postgres_s + report.setup_aws_s:.1f} s (Postgres {report.setup_postgres_s:.1f} s, "
        f"moto stack {report.setup_aws_s:.1f} s), execution {report.execution_s:.1f} s; database: {report.database}"
    )
    if report.inference:
        print(f"inference: {report.inference}")
    print()
    rows = [
        [
            d["asset"],
            _time(d["bar_time"]),
            "-" if d["data_age_seconds"] is None else human_duration(d["data_age_seconds"]),
            d["action"],
            f"{d['confidence']:.2f}",
            "-" if d["size"] is None else f"{d['size']:.8g}",
            _source(d["source"]),
            d["reason"],
        ]
        for d in report.decisions
    ]
    rows += [
        [f["asset"] or "(cycle)", "-", "-", "FAILED", "-", "-", "-", f"{f['error_class']}: {f['message']}"]
        for f in report.failures
    ]
    print(table(["asset", "bar time (UTC)", "data age", "action", "conf", "size", "source", "reason"], rows))
    print()
    if report.dead_letters:
        print(f"{report.dead_letters} record(s) parked in the dead-letter queue: run `ffe dlq replay` to write them")
        print()
    _portfolio(state, heading=False)
    print()
    print("Execution history (Step Functions console, table view)")
    print(
        table(
            ["state", "type", "asset", "status", "attempts", "duration", "error"],
            [
                [v.name, v.type, v.asset, v.status, str(v.attempts or ""), f"{v.duration_ms:.0f} ms", v.error[:90]]
                for v in report.visits
            ],
        )
    )
    return 0 if report.status == "SUCCEEDED" else 1


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


def _portfolio(state: Any, heading: bool) -> int:
    from ffe.local.runner import paper_portfolio

    book = paper_portfolio(state)
    if book is None:
        print("no paper account yet: run `ffe run` first")
        return 0
    print(
        f"paper account {book['account']}: equity {book['equity']:.2f} {book['currency']}, cash {book['cash']:.2f},"
        f" exposure {book['exposure']:.1%}, drawdown {book['drawdown']:.1%} from peak {book['peak']:.2f},"
        f" {book['pending_orders']} order(s) waiting for the next bar"
    )
    if book["positions"]:
        print(
            table(
                ["asset", "quantity", "average price", "mark", "value", "unrealised P&L"],
                [
                    [
                        p["asset"],
                        f"{p['quantity']:.8g}",
                        f"{p['average_price']:.2f}",
                        f"{p['mark_price']:.2f}",
                        f"{p['value']:.2f}",
                        f"{(p['mark_price'] - p['average_price']) * p['quantity']:+.2f}",
                    ]
                    for p in book["positions"]
                ],
            )
        )
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
    print(
        f"replayed {report.replayed} record(s); {len(report.failed)} kept in the queue; {len(report.shelved)} "
        "moved to the poison shelf (the store refuses them as they are: see `ffe dlq list`)"
    )
    for failure in report.failed:
        print(f"  kept: {failure}")
    for shelved in report.shelved:
        print(f"  shelved: {shelved}")
    return 0 if not report.failed else 1


def _dlq_list(state: Any, stage: str | None, region: str | None) -> int:
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
    for title, records in (
        ("waiting in the dead-letter queue (`ffe dlq replay` writes them)", waiting),
        ("on the poison shelf (the store refuses them as they are)", shelved),
    ):
        print(f"{len(records)} record(s) {title}")
        if records:
            print(
                table(
                    ["message", "kind", "cycle", "asset", "reason"],
                    [[r.message_id, r.kind, r.cycle_id, r.asset, r.reason[:120]] for r in records],
                )
            )
    return 0


def _preflight(state: Any) -> int:
    from ffe.local.runner import run_preflight_locally

    report = run_preflight_locally(state)
    print(f"pre-flight at {report['checked_at']}: {'healthy' if report['healthy'] else 'NOT healthy'}")
    print(
        table(
            ["provider", "status", "latency", "hint", "message"],
            [
                [
                    c["provider"],
                    c["status"],
                    "-" if c["latency_ms"] is None else f"{c['latency_ms']:.0f} ms",
                    c["hint"],
                    c["message"][:100],
                ]
                for c in report["providers"]
            ],
        )
    )
    if report.get("brokers"):
        print()
        print(
            table(
                ["broker", "status", "latency", "equity", "min order", "hint / message"],
                [
                    [
                        b["broker"],
                        b["status"],
                        "-" if b["latency_ms"] is None else f"{b['latency_ms']:.0f} ms",
                        b["equity"] or "-",
                        b["min_order"] or "-",
                        (b["hint"] or b["message"])[:100],
                    ]
                    for b in report["brokers"]
                ],
            )
        )
    return 0 if report["healthy"] else 1


def _decisions(state: Any, limit: int, asset: str | None) -> int:
    from ffe.local.runner import recent_decisions

    rows = recent_decisions(state, limit=limit, asset=asset)
    if not rows:
        print("no decisions recorded yet: run `ffe run` first")
        return 0
    print(
        table(
            ["id", "recorded (UTC)", "asset", "tf", "bar time (UTC)", "action", "conf", "reason"],
            [
                [
                    str(r["id"]),
                    _time(r["created_at"]),
                    r["asset"],
                    r["timeframe"],
                    _time(r["bar_time"]),
                    r["action"],
                    f"{r['confidence']:.2f}",
                    r["reason"][:80],
                ]
                for r in rows
            ],
        )
    )
    return 0


def _source(source: dict[str, Any]) -> str:
    """Where the bars came from: the provider route (failed hops marked x) or the replayed data set."""
    route = source.get("route") or []
    if route:
        return " > ".join(step["provider"] + ("" if step["outcome"] == "ok" else " x") for step in route)
    return "synthetic" if source.get("synthetic") else str(source.get("provider", "?"))


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain fixed-width text table."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _now_minute() -> datetime:
    """Live data is judged against the wall clock: a live run's schedule fires now."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _check_schedule(args: argparse.Namespace, timeframe: str) -> None:
    """``--timeframe`` names a schedule in template.yaml; replay says up front which assets it has no such bars for."""
    from ffe.adapters.replay import no_bars_at
    from ffe.domain.models import Timeframe
    from ffe.local.errors import LocalError
    from ffe.local.runner import scheduled_inputs

    scheduled = scheduled_inputs(_project())
    if timeframe not in scheduled:
        *rest, last = scheduled or ["(none)"]
        choices = f"{', '.join(rest)} or {last}" if rest else last
        raise LocalError(f"--timeframe {timeframe}: template.yaml has no such schedule; use {choices}, or --bars")
    if args.provider != "replay":
        return
    cycle = json.loads(args.raw_input) if args.raw_input is not None else scheduled[timeframe]
    cycle = cycle if isinstance(cycle, dict) else {}  # a malformed --input is the state machine's to refuse
    fired, assets = cycle.get("timeframe"), (args.assets if args.raw_input is None else None) or cycle.get("assets")
    if fired not in [t.value for t in Timeframe] or not isinstance(assets, list):
        return
    bundled: dict[str, list[str]] = {}
    for asset, native in no_bars_at(Timeframe(fired), [a for a in assets if isinstance(a, str)]).items():
        bundled.setdefault(native, []).append(asset)
    if bundled:
        listed = "; ".join(f"{', '.join(names)} (bundled at {native})" for native, names in bundled.items())
        print(
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


def _symbols(text: str) -> list[str]:
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
