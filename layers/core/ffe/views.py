"""What the ``ffe`` commands show: each command's tables (``ffe.terminal``) and its ``--json`` document.

The text and the JSON of a command are made from the same rows, so a script reads what a person sees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich.text import Text

from ffe.domain.staleness import human_duration
from ffe.terminal import Column, details, show, styled, table

CUT_HINT = "reasons cut to fit the width: --wide shows them whole, `ffe decisions --id N` one decision in full"


# --- ffe run ---------------------------------------------------------------------------------------------------


def show_run(report: Any, book: dict[str, Any] | None, wide: bool) -> None:
    """The cycle's heading, its decisions, the paper account, and the console-style execution history."""
    cycle = report.cycle_input if isinstance(report.cycle_input, dict) else {}
    status = styled(report.status)
    if report.error:
        status.append(f"  {report.error}: {report.cause}")
    fields: list[tuple[str, str | Text]] = [
        ("cycle", str(cycle.get("cycle_id", "?"))),
        ("status", status),
        ("execution", report.execution_arn),
    ]
    if report.health is not None:
        providers = ", ".join(
            f"{p.provider} {'configured' if p.configured else 'not configured'} (breaker {p.breaker})"
            for p in report.health.providers
        )
        cache = "reachable" if report.health.cache_reachable else "UNREACHABLE"
        fields.append(("market data", f"{providers}; bar cache {cache}"))
    fields.append(
        (
            "set-up",
            f"{report.setup_postgres_s + report.setup_aws_s:.1f} s (Postgres {report.setup_postgres_s:.1f} s, "
            f"moto stack {report.setup_aws_s:.1f} s), execution {report.execution_s:.1f} s",
        )
    )
    fields.append(("database", report.database))
    if report.inference:
        fields.append(("inference", report.inference))
    heading = (
        f"DecisionCycle {cycle.get('timeframe', '?')} as of {cycle.get('as_of', '?')}  (schedule {report.rule_name})"
    )
    show(heading, details(fields, indent=2))
    if report.cycle_note:
        show(report.cycle_note)
    print()
    rows: list[list[str | Text]] = [
        [
            str(d.get("id", "-")),
            d["asset"],
            _time(d["bar_time"]),
            "-" if d["data_age_seconds"] is None else human_duration(d["data_age_seconds"]),
            styled(d["action"]),
            f"{d['confidence']:.2f}",
            "-" if d["size"] is None else f"{d['size']:.8g}",
            _source(d["source"]),
            d["reason"],
        ]
        for d in report.decisions
    ]
    rows += [
        ["-", f["asset"] or "(cycle)", "-", "-", styled("FAILED"), "-", "-", "-", f"{f['error_class']}: {f['message']}"]
        for f in report.failures
    ]
    columns = [
        Column("id", "right"),
        Column("asset"),
        Column("bar time (UTC)"),
        Column("data age"),
        Column("action"),
        Column("conf", "right"),
        Column("size", "right"),
        Column("source", free_text=True),
        Column("reason", free_text=True),
    ]
    if show(table(columns, rows, wide=wide)):
        show(CUT_HINT)
    print()
    if _show_arms(report.decisions):
        print()
    if report.dead_letters:
        show(f"{report.dead_letters} record(s) parked in the dead-letter queue: run `ffe dlq replay` to write them")
        print()
    show_portfolio(book)
    print()
    history = [
        [v.name, v.type, v.asset, styled(v.status), str(v.attempts or ""), f"{v.duration_ms:.0f} ms", v.error]
        for v in report.visits
    ]
    show(
        "Execution history (Step Functions console, table view)",
        table(
            [
                Column("state"),
                Column("type"),
                Column("asset"),
                Column("status"),
                Column("attempts", "right"),
                Column("duration", "right"),
                Column("error", free_text=True),
            ],
            history,
            wide=wide,
        ),
    )


def _show_arms(decisions: Sequence[dict[str, Any]]) -> bool:
    """Both arms of the decisions an experiment covered: each arm's vote, confidence and latency, which one acted,
    and the agreement rate (same action, where both decided). False when no decision was in an experiment."""
    covered = [d for d in decisions if d.get("arms")]
    if not covered:
        return False
    rows: list[list[str | Text]] = []
    for d in covered:
        arms = d["arms"]
        cells: list[str | Text] = [d["asset"], str(d.get("experiment_id") or "-"), str(d.get("arm") or "-")]
        for name in ("control", "treatment"):
            arm = arms.get(name) or {}
            action, confidence, latency = arm.get("action"), arm.get("confidence"), arm.get("latency_ms")
            cells.append(styled(action) if action else Text("-"))
            cells.append("-" if confidence is None else f"{confidence:.2f}")
            cells.append(_latency(latency))
        rows.append(cells)
    both = [d["arms"] for d in covered if all((d["arms"].get(a) or {}).get("action") for a in ("control", "treatment"))]
    agree = sum(1 for arms in both if arms["control"]["action"] == arms["treatment"]["action"])
    rate = f"{agree}/{len(both)} ({agree / len(both):.0%})" if both else "-"
    columns = [
        Column("asset"),
        Column("experiment"),
        Column("acted"),
        Column("control"),
        Column("conf", "right"),
        Column("latency", "right"),
        Column("treatment"),
        Column("conf", "right"),
        Column("latency", "right"),
    ]
    show(table(columns, rows, title=f"both arms (agreement {rate})"))
    return True


def run_document(report: Any, book: dict[str, Any] | None) -> dict[str, Any]:
    """``ffe run --json``: the run's report (as kept in ``<state dir>/runs/``) and the paper account after it."""
    return {**asdict(report), "portfolio": portfolio_document(book)}


# --- ffe portfolio ---------------------------------------------------------------------------------------------


def show_portfolio(book: dict[str, Any] | None) -> None:
    if book is None:
        show("no paper account yet: run `ffe run` first")
        return
    show(
        f"paper account {book['account']}: equity {book['equity']:.2f} {book['currency']}, cash {book['cash']:.2f},"
        f" exposure {book['exposure']:.1%}, drawdown {book['drawdown']:.1%} from peak {book['peak']:.2f}",
        f"{book['pending_orders']} order(s) waiting for the next bar",
    )
    if book["positions"]:
        columns = [
            Column("asset"),
            Column("quantity", "right"),
            Column("average price", "right"),
            Column("mark", "right"),
            Column("value", "right"),
            Column("unrealised P&L", "right"),
        ]
        rows = [
            [
                p["asset"],
                f"{p['quantity']:.8g}",
                f"{p['average_price']:.2f}",
                f"{p['mark_price']:.2f}",
                f"{p['value']:.2f}",
                f"{_unrealised(p):+.2f}",
            ]
            for p in book["positions"]
        ]
        show(table(columns, rows))


def portfolio_document(book: dict[str, Any] | None) -> dict[str, Any] | None:
    """The paper account as JSON (None before the first run): money and quantities as exact decimal strings."""
    if book is None:
        return None
    positions = [{**p, "unrealised_pnl": _unrealised(p)} for p in book["positions"]]
    return {**book, "drawdown": float(book["drawdown"]), "exposure": float(book["exposure"]), "positions": positions}


def _unrealised(position: dict[str, Any]) -> Decimal:
    return Decimal((position["mark_price"] - position["average_price"]) * position["quantity"])


# --- ffe decisions ---------------------------------------------------------------------------------------------


def show_decisions(rows: Sequence[dict[str, Any]], wide: bool) -> None:
    if not rows:
        show("no decisions recorded yet: run `ffe run` first")
        return
    columns = [
        Column("id", "right"),
        Column("recorded (UTC)"),
        Column("asset"),
        Column("tf"),
        Column("bar time (UTC)"),
        Column("action"),
        Column("conf", "right"),
        Column("reason", free_text=True),
    ]
    cells: list[list[str | Text]] = [
        [
            str(r["id"]),
            _time(r["created_at"]),
            r["asset"],
            r["timeframe"],
            _time(r["bar_time"]),
            styled(r["action"]),
            f"{r['confidence']:.2f}",
            r["reason"],
        ]
        for r in rows
    ]
    if show(table(columns, cells, wide=wide)):
        show(CUT_HINT)


def show_decision(row: dict[str, Any]) -> None:
    """One decision in full: every field the store keeps, under the names ``--json`` gives them."""

    def value(name: str, v: Any) -> str | Text:
        if name == "action":
            return styled(v)
        if isinstance(v, dict | list):
            return json.dumps(v, indent=2, default=str)
        if isinstance(v, datetime):
            return v.astimezone(UTC).isoformat()
        return "-" if v is None else str(v)

    show(f"decision {row['id']}", details(((name, value(name, v)) for name, v in row.items()), indent=2))


# --- ffe dlq, ffe preflight ------------------------------------------------------------------------------------


def show_dlq_replay(report: Any) -> None:
    show(
        f"replayed {report.replayed} record(s); {len(report.failed)} kept in the queue; {len(report.shelved)} "
        "moved to the poison shelf (the store refuses them as they are: see `ffe dlq list`)",
        *(f"  kept: {failure}" for failure in report.failed),
        *(f"  shelved: {shelved}" for shelved in report.shelved),
    )


def show_dlq_list(waiting: Iterable[Any], shelved: Iterable[Any], wide: bool) -> None:
    for title, records in (
        ("waiting in the dead-letter queue (`ffe dlq replay` writes them)", list(waiting)),
        ("on the poison shelf (the store refuses them as they are)", list(shelved)),
    ):
        show(f"{len(records)} record(s) {title}")
        if records:
            columns = [
                Column("message", free_text=True),
                Column("kind"),
                Column("cycle", free_text=True),
                Column("asset"),
                Column("reason", free_text=True),
            ]
            show(table(columns, [[r.message_id, r.kind, r.cycle_id, r.asset, r.reason] for r in records], wide=wide))


def show_preflight(report: dict[str, Any], wide: bool) -> None:
    show(f"pre-flight at {report['checked_at']}: {'healthy' if report['healthy'] else 'NOT healthy'}")
    providers = [
        [c["provider"], styled(c["status"]), _latency(c["latency_ms"]), c["hint"], c["message"]]
        for c in report["providers"]
    ]
    show(
        table(
            [
                Column("provider"),
                Column("status"),
                Column("latency"),
                Column("hint", free_text=True),
                Column("message", free_text=True),
            ],
            providers,
            wide=wide,
        )
    )
    if report.get("brokers"):
        print()
        brokers = [
            [
                b["broker"],
                styled(b["status"]),
                _latency(b["latency_ms"]),
                b["equity"] or "-",
                b["min_order"] or "-",
                b["hint"] or b["message"],
            ]
            for b in report["brokers"]
        ]
        show(
            table(
                [
                    Column("broker"),
                    Column("status"),
                    Column("latency"),
                    Column("equity"),
                    Column("min order"),
                    Column("hint / message", free_text=True),
                ],
                brokers,
                wide=wide,
            )
        )


# --- ffe breakers ----------------------------------------------------------------------------------------------


def show_breakers(breakers: Sequence[Any], stage: str | None, wide: bool) -> None:
    """One row per shared breaker; a hand reset's who and why under the table."""
    where = f"stage {stage} in AWS" if stage else "the local runtime"
    show(f"{len(breakers)} shared circuit breaker(s) in {where} (times UTC)")
    rows = [
        [b.name, styled(b.state), str(b.failures), _second(b.opened_at), _second(b.next_half_open), _reset(b)]
        for b in breakers
    ]
    columns = [
        Column("breaker"),
        Column("state"),
        Column("failures", justify="right"),
        Column("opened at"),
        Column("next half-open"),
        Column("last reset by hand", free_text=True),
    ]
    show(table(columns, rows, wide=wide))


def show_breaker_reset(before: Any, after: Any) -> None:
    show(
        f"closed {after.name} (was {before.state}, {before.failures} failure(s)); recorded: {_reset(after)}",
        "every container sees it closed from its next call on",
    )


def _reset(breaker: Any) -> str:
    if breaker.reset_by is None:
        return "-"
    return f"{_second(breaker.reset_at)} by {breaker.reset_by}: {breaker.reset_why}"


def _second(value: datetime | None) -> str:
    """To the second: a breaker's cool-down is seconds long."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- cells -----------------------------------------------------------------------------------------------------


def _source(source: dict[str, Any]) -> str:
    """Where the bars came from: the provider route (failed hops marked x) or the replayed data set."""
    route = source.get("route") or []
    if route:
        return " > ".join(step["provider"] + ("" if step["outcome"] == "ok" else " x") for step in route)
    return "synthetic" if source.get("synthetic") else str(source.get("provider", "?"))


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _latency(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.0f} ms"


# --- ffe experiments -------------------------------------------------------------------------------------------


def experiment_document(experiment: Any, transitions: Sequence[Any] | None = None) -> dict[str, Any]:
    """An experiment as ``--json`` prints it (the API's shape: ``ffe.api.experiments.ExperimentView``)."""
    from ffe.domain.experiments import guardrails_to_json, plan_to_json

    document: dict[str, Any] = {
        "id": experiment.id,
        "status": experiment.status.value,
        "mode": experiment.mode.value,
        "control_version": experiment.control_version,
        "treatment_version": experiment.treatment_version,
        "assets": sorted(experiment.assets) if experiment.assets is not None else None,
        "plan": plan_to_json(experiment.plan),
        "step": experiment.step,
        "share": experiment.share,
        "guardrails": guardrails_to_json(experiment.guardrails),
        "created_at": experiment.created_at,
    }
    if transitions is not None:
        document["transitions"] = [
            {
                "from_status": t.from_status.value,
                "to_status": t.to_status.value,
                "from_step": t.from_step,
                "to_step": t.to_step,
                "at": t.at,
                "actor": t.actor,
                "trigger": t.trigger.value,
                "reason": t.reason,
                "evidence": dict(t.evidence),
            }
            for t in transitions
        ]
    return document


def show_experiments(experiments: Sequence[Any]) -> None:
    if not experiments:
        show("no experiments yet: `ffe experiments create --treatment <version>` makes one")
        return
    columns = [
        Column("id"),
        Column("status"),
        Column("mode"),
        Column("control"),
        Column("treatment"),
        Column("share", "right"),
        Column("assets", free_text=True),
        Column("created"),
    ]
    rows = [
        [
            e.id,
            styled(e.status.value),
            e.mode.value,
            e.control_version,
            e.treatment_version,
            _share(e.share),
            _assets(e.assets),
            _time(e.created_at),
        ]
        for e in experiments
    ]
    show(table(columns, rows))


def show_experiment(experiment: Any, transitions: Sequence[Any]) -> None:
    """One experiment in full: its fields, its canary plan, every transition."""
    steps = ", ".join(
        f"{_share(s.share)} ({s.min_decisions} decisions, {human_duration(s.min_duration.total_seconds())})"
        + (" <- now" if i == experiment.step and experiment.mode.value == "split" else "")
        for i, s in enumerate(experiment.plan.steps)
    )
    g = experiment.guardrails
    fields: list[tuple[str, str | Text]] = [
        ("experiment", experiment.id),
        ("status", styled(experiment.status.value)),
        ("mode", experiment.mode.value),
        ("control", experiment.control_version),
        ("treatment", experiment.treatment_version),
        ("assets", _assets(experiment.assets)),
        ("share", _share(experiment.share)),
        ("canary", steps),
        (
            "guardrails",
            f"latency p95 <= {g.latency_p95_ms:g} ms over {g.sustained_cycles} cycles; {g.metric} no worse than "
            f"control by more than {g.max_degradation:.0%}",
        ),
        ("created", _time(experiment.created_at)),
    ]
    show(details(fields))
    if transitions:
        print()
        columns = [
            Column("at"),
            Column("from"),
            Column("to"),
            Column("step", "right"),
            Column("trigger"),
            Column("actor"),
            Column("reason", free_text=True),
        ]
        rows = [
            [
                _second(t.at),
                t.from_status.value,
                styled(t.to_status.value),
                f"{t.from_step}>{t.to_step}" if t.from_step != t.to_step else str(t.to_step),
                t.trigger.value,
                t.actor,
                t.reason or "-",
            ]
            for t in transitions
        ]
        show(table(columns, rows, title="transitions"))


def show_experiment_results(results: dict[str, Any]) -> None:
    """The arms side by side (``Comparison.to_json()``): agreement, deltas, latency, actions, performance, risk."""
    fields: list[tuple[str, str | Text]] = [
        ("experiment", str(results["experiment_id"])),
        ("window", f"{results.get('since') or 'start'} .. {results.get('until') or 'now'}"),
        ("decisions", str(results["decisions"])),
        ("agreement rate", _fraction(results.get("agreement_rate"))),
        ("confidence delta", _number(results.get("confidence_delta"), "{:+.3f}")),
        (
            "latency delta",
            f"p50 {_number(results.get('latency_p50_delta_ms'), '{:+.1f} ms')}, "
            f"p95 {_number(results.get('latency_p95_delta_ms'), '{:+.1f} ms')}",
        ),
    ]
    show(details(fields))
    control, treatment = results["control"], results["treatment"]
    lines: list[tuple[str, Any]] = [
        ("decisions", lambda a: str(a["decisions"])),
        ("acted", lambda a: str(a["acted"])),
        ("actions", lambda a: " ".join(f"{k} {v}" for k, v in sorted(a["actions"].items())) or "-"),
        ("confidence (mean)", lambda a: _number(a.get("confidence_mean"), "{:.3f}")),
        ("latency p50", lambda a: _number(a.get("latency_p50_ms"), "{:.1f} ms")),
        ("latency p95", lambda a: _number(a.get("latency_p95_ms"), "{:.1f} ms")),
        ("path latency p95", lambda a: _number(a.get("path_latency_p95_ms"), "{:.1f} ms")),
        ("signal P&L", lambda a: _number(a.get("signal_pnl"), "{:+.4f}")),
        ("Sharpe", lambda a: _number(a.get("sharpe"), "{:.2f}")),
        ("max drawdown", lambda a: _fraction(a.get("max_drawdown"))),
        ("turnover", lambda a: _fraction(a.get("turnover"))),
        ("paper P&L", lambda a: _number(a.get("paper_pnl"), "{:+.2f}")),
        ("risk blocks", lambda a: str(a.get("risk_blocks", 0))),
        ("violations not blocked", lambda a: str(a.get("violations_not_blocked", 0))),
    ]
    rows = [[name, cell(control), cell(treatment)] for name, cell in lines]
    print()
    show(table([Column(""), Column("control"), Column("treatment")], rows))
    holds = [
        (f"{name} holds", "; ".join(f"{reason} ({n})" for reason, n in sorted(arm["hold_reasons"].items())) or "-")
        for name, arm in (("control", control), ("treatment", treatment))
    ]
    print()
    show(details(holds))


def _share(share: float) -> str:
    return f"{share:.0%}" if share * 100 == round(share * 100) else f"{share:.1%}"


def _assets(assets: frozenset[str] | None) -> str:
    return "all" if assets is None else ",".join(sorted(assets))


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
