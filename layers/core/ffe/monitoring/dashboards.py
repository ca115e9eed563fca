"""The three CloudWatch dashboards, defined once as data: iac/dashboards.yaml and ``ffe dashboard`` both come from here.

``python -m ffe.monitoring.dashboards > iac/dashboards.yaml`` writes the nested stack (a test keeps the checked-in file
equal to this output). Custom metrics are in namespace ``FFE`` with the dimension ``service`` plus those the metric
catalogue lists for them (``ffe.observability``); a dimension whose value varies (per regime, per rule) is a SEARCH
expression, so a new value shows up without a template change. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

NAMESPACE = "FFE"
SERVICE = "ffe"
PERIOD_S = 300


@dataclass(frozen=True)
class Metric:
    """One metric on a widget: fixed dimensions (``where``), varying ones (``by``: a SEARCH), values left out."""

    name: str
    stat: str = "Sum"
    where: tuple[tuple[str, str], ...] = ()
    by: tuple[str, ...] = ()
    exclude: tuple[tuple[str, str], ...] = ()  # (dimension, value) pairs a SEARCH leaves out
    namespace: str = NAMESPACE
    label: str = ""

    @property
    def custom(self) -> bool:
        return self.namespace == NAMESPACE

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Every dimension name of the metric, ``service`` first for ours."""
        fixed = ("service",) if self.custom else ()
        return (*fixed, *(k for k, _ in self.where), *self.by)

    def caption(self) -> str:
        if self.label:
            return self.label
        fixed = ", ".join(f"{k}={v}" for k, v in self.where)
        varying = f" by {', '.join(self.by)}" if self.by else ""
        return f"{self.name}{f' ({fixed})' if fixed else ''}{varying} {self.stat}"


@dataclass(frozen=True)
class Widget:
    """A dashboard widget: metrics on a time series, or a Logs Insights query."""

    id: str  # stable slug: the HTML page's anchor and the test's handle
    title: str
    metrics: tuple[Metric, ...] = ()
    stacked: bool = False
    lines: tuple[tuple[float, str], ...] = ()  # horizontal annotations: (value, label)
    query: str = ""  # a Logs Insights query (a "log" widget) instead of metrics
    log_groups: tuple[str, ...] = ()
    listing: str = ""  # or: list the EMF lines of this metric (a "log" widget), newest first, with ``fields``
    fields: tuple[str, ...] = ()
    period: int = PERIOD_S
    width: int = 12
    height: int = 6

    @property
    def insights(self) -> str:
        """The widget's Logs Insights query (without its SOURCE clauses); "" for a metric widget."""
        if self.listing:
            fields = ", ".join(("@timestamp", *self.fields))
            return f"filter ispresent({self.listing}) | fields {fields} | sort @timestamp desc | limit {LISTED}"
        return self.query


LISTED = 20  # rows a listing widget shows


@dataclass(frozen=True)
class Dashboard:
    slug: str  # the dashboard is ffe-<stage>-<slug>
    title: str
    widgets: tuple[Widget, ...] = field(default_factory=tuple)

    @property
    def logical_id(self) -> str:
        return "".join(part.capitalize() for part in self.slug.split("-")) + "Dashboard"


_FUNCTIONS = (
    "fetch-market-data",
    "check-staleness",
    "detect-regime",
    "infer-decision",
    "gate-risk",
    "decide-batch",
    "execute-order",
    "record-decision",
    "preflight",
    "api",
    "migrate-database",
)
_STATE_MACHINE = (
    "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:ffe-${Stage}-decision-cycle"
)
_ENDPOINT = (("EndpointName", "ffe-${Stage}-inference"), ("VariantName", "AllTraffic"))
_NOT_STALE = (("reason", "no_signal"), ("reason", "risk_blocked"), ("reason", "inference_unavailable"))


def _aws(namespace: str, name: str, stat: str, label: str, *where: tuple[str, str]) -> Metric:
    return Metric(name, stat, tuple(where), namespace=namespace, label=label)


def _percentiles(name: str, by: tuple[str, ...] = ()) -> tuple[Metric, ...]:
    return tuple(Metric(name, p, by=by, label=p if not by else "") for p in ("p50", "p95", "p99"))


TRADING = Dashboard(
    "trading-decisions",
    "Trading decisions",
    (
        Widget("action-mix", "Action mix (BUY / HOLD / SELL)", (Metric("decisions", by=("action",)),), stacked=True),
        Widget("hold-reasons", "HOLD reasons", (Metric("hold_reasons", by=("reason", "asset_class")),), stacked=True),
        Widget(
            "portfolio-value",
            "Portfolio value (venue account equity)",
            (Metric("portfolio_value", "Average", by=("account",)),),
        ),
        Widget(
            "trade-pnl",
            "Realised P&L per trade",
            (Metric("trade_pnl", "Average", by=("account",)), Metric("trade_pnl", "Minimum", by=("account",))),
        ),
        Widget("trade-frequency", "Trade frequency (orders placed)", (Metric("orders", by=("side",)),), stacked=True),
        Widget(
            "risk-blocks",
            "Risk blocks by rule, and violations not blocked (must stay 0)",
            (Metric("risk_blocks", by=("rule",)), Metric("risk_violation_not_blocked")),
            lines=((1, "any violation pages"),),
        ),
        Widget(
            "regime-probabilities",
            "Regime probabilities (posterior, stacked)",
            (Metric("regime_probability", "Average", by=("asset_class", "regime")),),
            stacked=True,
        ),
        Widget(
            "stale-holds",
            "Stale-data holds by asset class",
            (Metric("hold_reasons", by=("reason", "asset_class"), exclude=_NOT_STALE),),
            stacked=True,
        ),
    ),
)

SYSTEM = Dashboard(
    "system",
    "System",
    (
        Widget(
            "cycle-duration",
            "Cycle duration (DecisionCycle executions)",
            tuple(
                _aws("AWS/States", "ExecutionTime", p, f"cycle {p}", ("StateMachineArn", _STATE_MACHINE))
                for p in ("p50", "p95", "p99")
            ),
        ),
        Widget(
            "decision-latency",
            "Decision latency, fetch to record without the LLM (ms)",
            _percentiles("decision_latency_ms"),
            lines=((200, "alarm: p95 > 200 ms"),),
        ),
        Widget(
            "state-latency", "Latency per state (ms, p50 / p95 / p99)", _percentiles("state_latency_ms", by=("state",))
        ),
        Widget(
            "lambda-errors",
            "Lambda errors and throttles",
            tuple(
                _aws("AWS/Lambda", metric, "Sum", f"{fn} {metric}", ("FunctionName", f"ffe-${{Stage}}-{fn}"))
                for fn in _FUNCTIONS
                for metric in ("Errors", "Throttles")
            ),
        ),
        Widget(
            "cold-starts",
            "Cold starts (init duration, ms)",
            query='filter @type = "REPORT" and ispresent(@initDuration)'
            " | stats count(*) as cold_starts, avg(@initDuration) as avg_init_ms, max(@initDuration) as max_init_ms"
            " by bin(5m)",
            log_groups=tuple(f"/aws/lambda/ffe-${{Stage}}-{fn}" for fn in _FUNCTIONS),
        ),
        Widget(
            "inference",
            "Inference: endpoint latency (µs), 5xx, LLM voter latency (ms)",
            (
                _aws("AWS/SageMaker", "ModelLatency", "p95", "endpoint ModelLatency p95 (µs)", *_ENDPOINT),
                _aws("AWS/SageMaker", "Invocation5XXErrors", "Sum", "endpoint 5xx", *_ENDPOINT),
                Metric("llm_latency_ms", "p95"),
                Metric("inference_unavailable"),
            ),
        ),
        Widget("breakers", "Circuit breaker transitions", (Metric("breaker_transitions", by=("breaker", "to_state")),)),
        Widget(
            "cache-hit-rate",
            "Bar cache hit rate (%)",
            (Metric("cache_hit_rate", "Average"),),
            lines=((90, "90 %"),),
        ),
        Widget(
            "market-data",
            "Market data: bars fetched, fallbacks, staleness",
            (
                Metric("bars_fetched"),
                Metric("provider_fallbacks"),
                Metric("stale_series"),
                Metric("data_staleness_seconds", "Maximum"),
                Metric("provider_healthy", "Minimum", by=("provider",)),
            ),
        ),
        Widget(
            "failures",
            "Failures by step, cycles by event",
            (Metric("failures", by=("step",)), Metric("cycles", by=("event", "timeframe"))),
        ),
        Widget(
            "dlq-depth",
            "Decision dead-letter queue",
            (
                _aws(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    "Maximum",
                    "decision DLQ depth",
                    ("QueueName", "ffe-${Stage}-decision-dlq"),
                ),
                _aws(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    "Maximum",
                    "poison shelf depth",
                    ("QueueName", "ffe-${Stage}-decision-poison"),
                ),
                _aws(
                    "AWS/SQS",
                    "ApproximateAgeOfOldestMessage",
                    "Maximum",
                    "oldest DLQ message (s)",
                    ("QueueName", "ffe-${Stage}-decision-dlq"),
                ),
                Metric("duplicate_records"),
                Metric("records_lost"),
            ),
        ),
        Widget(
            "database",
            "Database: connections and capacity (ACU)",
            (
                _aws(
                    "AWS/RDS",
                    "DatabaseConnections",
                    "Maximum",
                    "connections",
                    ("DBClusterIdentifier", "${DatabaseClusterIdentifier}"),
                ),
                _aws(
                    "AWS/RDS",
                    "ServerlessDatabaseCapacity",
                    "Maximum",
                    "ACU",
                    ("DBClusterIdentifier", "${DatabaseClusterIdentifier}"),
                ),
            ),
        ),
    ),
)

MODELS = Dashboard(
    "models",
    "Models",
    (
        Widget("training-runs", "Training runs", (Metric("training_runs", by=("result",)),), period=86400),
        Widget(
            "training-metrics",
            "Training runs as logged (return, Sharpe, churn, disruption)",
            listing="training_runs",
            fields=("result", "model_version", "total_return", "sharpe", "churn", "disruption"),
            log_groups=("/aws/sagemaker/TrainingJobs",),
        ),
        Widget(
            "ewc-degradation",
            "Online-learning (EWC) degradation (%)",
            (Metric("ewc_degradation_pct", "Maximum"),),
            lines=((20, "alarm: > 20 %"),),
            period=86400,
        ),
        Widget(
            "champion-in-service",
            "Champion version in service (decisions per version)",
            (Metric("model_in_service", by=("model_version",)),),
            stacked=True,
        ),
        Widget("llm-agreement", "LLM vs RL agreement", (Metric("llm_agreement", by=("result",)),), stacked=True),
        Widget(
            "fallbacks",
            "Fallbacks: held for inference, LLM absent",
            (Metric("inference_unavailable"), Metric("llm_agreement", where=(("result", "absent"),))),
        ),
        Widget(
            "housekeeping",
            "Housekeeping: checkpoints cleaned, decision partitions dropped",
            (Metric("models_cleaned"), Metric("retention_partitions_dropped")),
            period=86400,
        ),
        # Experiments (issue 15; docs/experiments.md): control vs treatment, per experiment.
        Widget(
            "experiment-decisions",
            "Experiments: decisions per arm (the arm that acted)",
            (Metric("experiment_decisions", by=("experiment", "arm")),),
            stacked=True,
        ),
        Widget(
            "experiment-agreement",
            "Experiments: agreement between the arms (same action or not)",
            (Metric("experiment_agreement", by=("experiment", "result")),),
            stacked=True,
        ),
        Widget(
            "experiment-confidence-delta",
            "Experiments: confidence delta (treatment - control)",
            (Metric("experiment_confidence_delta", "Average", by=("experiment",)),),
            lines=((0, "no difference"),),
        ),
        Widget(
            "experiment-latency",
            "Experiments: inference latency per arm (ms, p50 / p95)",
            (
                Metric("experiment_latency_ms", "p50", by=("experiment", "arm")),
                Metric("experiment_latency_ms", "p95", by=("experiment", "arm")),
            ),
        ),
        Widget(
            "experiment-performance",
            "Experiments: signal Sharpe, P&L, drawdown per arm; agreement rate (at each review)",
            (Metric("experiment_performance", "Average", by=("experiment", "arm", "metric")),),
        ),
        Widget(
            "experiment-share",
            "Experiments: treatment share (canary step)",
            (Metric("experiment_share", "Maximum", by=("experiment",)),),
        ),
        Widget(
            "experiment-transitions",
            "Experiments: transitions, and guardrail rollbacks (any pages)",
            (Metric("experiment_transitions", by=("to_status", "trigger")), Metric("experiment_rollbacks")),
            lines=((1, "alarm: rollback"),),
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (TRADING, SYSTEM, MODELS)


def widgets() -> list[Widget]:
    return [w for d in DASHBOARDS for w in d.widgets]


# --- CloudWatch ----------------------------------------------------------------------------------------------


def search_expression(metric: Metric, period: int) -> str:
    """The SEARCH expression of a metric with varying dimensions, e.g.
    ``SEARCH('{FFE,service,action} MetricName="decisions" service="ffe"', 'Sum', 300)``."""
    terms = [f'MetricName="{metric.name}"', *(f'{k}="{v}"' for k, v in _fixed(metric))]
    terms += [f'NOT {k}="{v}"' for k, v in metric.exclude]
    schema = ",".join((metric.namespace, *metric.dimensions))
    return f"SEARCH('{{{schema}}} {' '.join(terms)}', '{metric.stat}', {period})"


def _fixed(metric: Metric) -> tuple[tuple[str, str], ...]:
    return ((("service", SERVICE),) if metric.custom else ()) + metric.where


def widget_body(widget: Widget, x: int, y: int) -> dict[str, object]:
    """One widget of a CloudWatch dashboard body."""
    place = {"x": x, "y": y, "width": widget.width, "height": widget.height}
    if widget.insights:
        sources = " | ".join(f"SOURCE '{g}'" for g in widget.log_groups)
        log = {"query": f"{sources} | {widget.insights}", "region": "${AWS::Region}", "title": widget.title}
        return {"type": "log", **place, "properties": {**log, "view": "table"}}
    rows: list[list[object]] = []
    for i, metric in enumerate(widget.metrics, start=1):
        if metric.by:
            expr = search_expression(metric, widget.period)
            dynamic = " ".join(f"${{!PROP('Dim.{d}')}}" for d in metric.by)  # Fn::Sub leaves ${PROP(...)}
            rows.append([{"expression": expr, "id": f"e{i}", "label": f"{dynamic} {metric.stat}"}])
        else:
            dims = [part for pair in _fixed(metric) for part in pair]
            rows.append([metric.namespace, metric.name, *dims, {"stat": metric.stat, "label": metric.caption()}])
    props: dict[str, object] = {
        "metrics": rows,
        "view": "timeSeries",
        "stacked": widget.stacked,
        "region": "${AWS::Region}",
        "title": widget.title,
        "period": widget.period,
    }
    if widget.lines:
        props["annotations"] = {"horizontal": [{"value": v, "label": label} for v, label in widget.lines]}
    return {"type": "metric", **place, "properties": props}


def dashboard_body(dashboard: Dashboard) -> dict[str, object]:
    """The DashboardBody: widgets two to a row, in definition order."""
    out = []
    for i, widget in enumerate(dashboard.widgets):
        out.append(widget_body(widget, x=(i % 2) * 12, y=(i // 2) * 6))
    return {"widgets": out}


_HEADER = """\
# GENERATED from layers/core/ffe/monitoring/dashboards.py by
#   cd layers/core && python -m ffe.monitoring.dashboards > ../../iac/dashboards.yaml
# Do not edit: change the definitions and regenerate (tests/unit/test_dashboards.py checks the two agree).
AWSTemplateFormatVersion: "2010-09-09"
Description: ffe CloudWatch dashboards (trading decisions, system, models) for one stage.

Parameters:
  Stage:
    Type: String
    AllowedValues: [dev, staging, prod]
  DatabaseClusterIdentifier:
    Type: String
    Default: none
    MinLength: 1
    Description: >-
      The Aurora cluster the database widget shows ("none" when the stack does not create the database: a
      dimension value cannot be empty).

Resources:
"""


def template() -> str:
    """iac/dashboards.yaml: one AWS::CloudWatch::Dashboard per dashboard, the body through Fn::Sub (long forms
    only, no short-form tags: a plain YAML loader reads the file)."""
    parts = [_HEADER]
    for dashboard in DASHBOARDS:
        body = json.dumps(dashboard_body(dashboard), indent=1, ensure_ascii=False)
        indented = "\n".join(f"          {line}" for line in body.splitlines())
        parts.append(
            f"  {dashboard.logical_id}:\n"
            "    Type: AWS::CloudWatch::Dashboard\n"
            "    Properties:\n"
            "      DashboardName:\n"
            f"        Fn::Sub: ffe-${{Stage}}-{dashboard.slug}\n"
            "      DashboardBody:\n"
            "        Fn::Sub: |\n"
            f"{indented}\n"
        )
    parts.append("\nOutputs:\n")
    for dashboard in DASHBOARDS:
        parts.append(
            f"  {dashboard.logical_id}Name:\n"
            f"    Description: The {dashboard.title} dashboard.\n"
            "    Value:\n"
            f"      Ref: {dashboard.logical_id}\n"
        )
    return "".join(parts)


if __name__ == "__main__":
    print(template(), end="")
