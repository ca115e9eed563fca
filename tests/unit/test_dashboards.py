"""The dashboards are defined once: the checked-in nested stack is their output, and the offline page renders each."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ffe.monitoring import dashboards
from ffe.monitoring.dashboards import DASHBOARDS, Metric, search_expression, template, widgets
from ffe.monitoring.emf import Recorded, evaluate, keep_emf, parse_emf, read_emf, statistic
from ffe.monitoring.local_store import series_from_rows
from ffe.monitoring.page import panels
from ffe.monitoring.render_html import render_page
from tests.conftest import ROOT

STACK = ROOT / "iac" / "dashboards.yaml"


def _emf(name: str, value: object, at_ms: int = 1_700_000_000_000, **dims: str) -> dict[str, object]:
    """One EMF document as Powertools prints it: service plus ``dims`` as one dimension set, asset a property."""
    dimension_set = ["service", *dims]
    return {
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [
                {"Namespace": "FFE", "Dimensions": [dimension_set], "Metrics": [{"Name": name, "Unit": "Count"}]}
            ],
        },
        "service": "ffe",
        "asset": "BTCUSD",
        name: value,
        **dims,
    }


def _bodies() -> dict[str, Any]:
    stack = yaml.safe_load(STACK.read_text())
    return {
        res["Properties"]["DashboardName"]["Fn::Sub"]: json.loads(res["Properties"]["DashboardBody"]["Fn::Sub"])
        for res in stack["Resources"].values()
        if res["Type"] == "AWS::CloudWatch::Dashboard"
    }


def test_the_checked_in_stack_is_the_generated_one() -> None:
    assert STACK.read_text() == template(), (
        "iac/dashboards.yaml is stale: cd layers/core && python -m ffe.monitoring.dashboards > ../../iac/dashboards.yaml"
    )


def test_three_dashboards_with_at_least_18_widgets_each_uniquely_named() -> None:
    assert [d.title for d in DASHBOARDS] == ["Trading decisions", "System", "Models"]
    assert len(widgets()) >= 18
    assert len({w.id for w in widgets()}) == len(widgets())
    assert len({w.title for w in widgets()}) == len(widgets())
    bodies = _bodies()
    assert len(bodies) == 3
    assert sum(len(b["widgets"]) for b in bodies.values()) == len(widgets())


def test_custom_metrics_carry_service_and_never_asset() -> None:
    for widget in widgets():
        for metric in widget.metrics:
            if metric.custom:
                assert metric.dimensions[0] == "service"
                assert "asset" not in metric.dimensions, (widget.id, metric.name)


def test_a_varying_dimension_is_a_search_expression() -> None:
    metric = Metric("hold_reasons", by=("reason", "asset_class"), exclude=(("reason", "no_signal"),))
    assert search_expression(metric, 300) == (
        'SEARCH(\'{FFE,service,reason,asset_class} MetricName="hold_reasons" service="ffe" '
        "NOT reason=\"no_signal\"', 'Sum', 300)"
    )


def test_every_substitution_in_a_body_is_a_parameter_or_pseudo_parameter() -> None:
    text = STACK.read_text()
    stack = yaml.safe_load(text)
    allowed = set(stack["Parameters"]) | {"AWS::Region", "AWS::AccountId", "AWS::Partition"}
    found = set(re.findall(r"\$\{([^!}][^}]*)\}", text))
    assert found <= allowed, found - allowed


def test_emf_documents_become_points_and_a_widget_query_groups_them() -> None:
    docs = [
        _emf("decisions", [1.0, 1.0], action="HOLD"),
        _emf("decisions", 1.0, action="BUY"),
        _emf("decisions", 1.0, at_ms=1_700_000_120_000, action="HOLD"),
        _emf("decisions", 1.0, action="HOLD", reason="x"),  # another dimension set: another metric
    ]
    points = [p for d in docs for p in parse_emf(d)]
    series = evaluate(Metric("decisions", by=("action",)), points, 60)
    assert series == {"BUY Sum": [(1_699_999_980.0, 1.0)], "HOLD Sum": [(1_699_999_980.0, 2.0), (1_700_000_100.0, 1.0)]}


def test_fixed_and_excluded_dimension_values() -> None:
    points = [
        p
        for reason in ("stale_data", "no_signal", "gappy_data")
        for p in parse_emf(_emf("hold_reasons", 1, reason=reason, asset_class="crypto"))
    ]
    stale = evaluate(
        Metric("hold_reasons", by=("reason", "asset_class"), exclude=(("reason", "no_signal"),)), points, 60
    )
    assert sorted(stale) == ["gappy_data crypto Sum", "stale_data crypto Sum"]
    absent = parse_emf(_emf("llm_agreement", 1, result="absent")) + parse_emf(_emf("llm_agreement", 1, result="agree"))
    assert list(evaluate(Metric("llm_agreement", where=(("result", "absent"),)), absent, 60)) == [
        "llm_agreement (result=absent) Sum"
    ]


def test_statistics() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [statistic(s, values) for s in ("Sum", "Average", "Minimum", "Maximum", "SampleCount")] == [
        5050.0,
        50.5,
        1.0,
        100.0,
        100.0,
    ]
    assert (statistic("p50", values), statistic("p95", values), statistic("p99", values)) == (50.0, 95.0, 99.0)


def test_keep_emf_appends_only_the_emf_lines(tmp_path: Path) -> None:
    out = tmp_path / "metrics" / "emf.jsonl"
    logs = "\n".join(['{"level": "INFO", "message": "hi"}', json.dumps(_emf("orders", 1, side="BUY")), "plain text"])
    assert keep_emf(logs, out) == 1
    assert keep_emf(logs, out) == 1
    recorded = read_emf(out)
    assert (len(recorded.points), len(recorded.documents), recorded.skipped) == (2, 2, 0)
    out.write_text(out.read_text() + "not json\n")
    assert read_emf(out).skipped == 1
    assert read_emf(tmp_path / "missing.jsonl") == Recorded([], [], 0)


def test_store_rows_fill_widgets_the_emf_left_empty() -> None:
    at = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    rows = {
        "decisions": [
            {"at": at, "action": "HOLD", "asset": "GBPUSD", "stale": True},
            {"at": at, "action": "BUY", "asset": "BTCUSD", "stale": False},
        ],
        "cycles": [{"at": at, "finished_at": at.replace(second=40), "status": "SUCCEEDED", "timeframe": "1h"}],
        "equity": [{"at": at, "account": "paper-dev", "equity": 10_000}],
    }
    series = series_from_rows(rows, 60)
    assert series["stale-holds"] == {"GBPUSD (store)": [(at.timestamp() - 30, 1.0)]}
    assert series["cycle-duration"] == {"cycle duration ms (store)": [(at.timestamp(), 10_000.0)]}
    assert set(series["action-mix"]) == {"BUY (store)", "HOLD (store)"}
    sell = _emf("decisions", 1, action="SELL")
    shown = panels(Recorded(parse_emf(sell), [sell], 0), series)
    assert shown["action-mix"].source.startswith("EMF")  # the EMF wins where it has data
    assert shown["stale-holds"].source == "the local store"


def test_the_page_renders_every_widget_of_the_template() -> None:
    docs = [_emf("decisions", 1, action="BUY"), _emf("cache_hit_rate", 75.0)]
    recorded = Recorded([p for d in docs for p in parse_emf(d)], docs, 0)
    html = render_page(DASHBOARDS, panels(recorded, {}), datetime(2026, 1, 1, tzinfo=UTC), "test")
    for widget in widgets():
        section = re.search(rf"<section class='widget' id='w-{widget.id}'.*?</section>", html, re.S)
        assert section, widget.id
        assert re.search("<svg|<table|no data recorded", section.group(0)), widget.id
    for body in _bodies().values():
        for widget in body["widgets"]:
            assert f"<h3>{widget['properties']['title'].replace('&', '&amp;')}</h3>" in html
    assert "<script" not in html and "http" not in html  # self-contained
    assert "90 %" in html  # the cache widget's line


def test_a_listing_widget_is_the_same_query_in_the_template_and_a_table_offline() -> None:
    (widget,) = [w for w in widgets() if w.listing]
    assert widget.insights == (
        "filter ispresent(training_runs) | fields @timestamp, result, model_version, total_return, sharpe, churn, "
        "disruption | sort @timestamp desc | limit 20"
    )
    older = _emf("training_runs", 1, result="failed")
    newer = {**_emf("training_runs", 1, at_ms=1_700_000_060_000, result="succeeded"), "sharpe": 1.23456, "churn": 0.1}
    shown = panels(Recorded([], [older, newer, _emf("orders", 1, side="BUY")], 0), {})[widget.id]
    assert shown.rows == [
        ["2023-11-14 22:14:20", "succeeded", "", "", "1.235", "0.1", ""],
        ["2023-11-14 22:13:20", "failed", "", "", "", "", ""],
    ]
    assert "<table>" in render_page(DASHBOARDS, {widget.id: shown}, datetime(2026, 1, 1, tzinfo=UTC), "")


def test_module_is_pure() -> None:
    source = Path(dashboards.__file__).read_text()
    assert not re.search(r"^\s*(import|from) (boto3|psycopg|os|pathlib|subprocess)", source, re.M)
