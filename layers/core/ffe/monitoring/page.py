"""``ffe dashboard``: the three dashboards rendered from what the local runtime recorded, as one HTML file.

Every widget's FFE metrics are evaluated over the EMF lines the in-process Lambdas printed (``.ffe/metrics/
emf.jsonl``) exactly as the template's widget would query CloudWatch; a widget with no EMF falls back to what the
store recorded (decisions, failures, cycles, the paper account) where there is such a figure, and otherwise says
why there is nothing (AWS service metrics and Logs Insights queries exist only in CloudWatch).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ffe.monitoring.dashboards import DASHBOARDS, LISTED, Widget
from ffe.monitoring.emf import Recorded, Series, evaluate, listing, read_emf
from ffe.monitoring.render_html import Panel, render_page

BUCKET_S = 60  # locally a run lasts seconds: points per minute, not per the widget's CloudWatch period


def panels(recorded: Recorded, store: dict[str, Series]) -> dict[str, Panel]:
    """widget id -> what it shows locally."""
    return {w.id: panel(w, recorded, store.get(w.id, {})) for d in DASHBOARDS for w in d.widgets}


def panel(widget: Widget, recorded: Recorded, store: Series) -> Panel:
    if widget.listing:
        rows = listing(widget.listing, widget.fields, recorded.documents, LISTED)
        columns = ("time (UTC)", *widget.fields)
        if rows:
            return Panel({}, "EMF (.ffe/metrics/emf.jsonl)", "", columns, rows)
        return Panel({}, "", f"no {widget.listing} line recorded yet (ffe train records one)")
    if widget.query:
        groups = ", ".join(widget.log_groups)
        return Panel({}, "", f"a Logs Insights query over {groups}, which only CloudWatch Logs holds")
    series: Series = {}
    for metric in widget.metrics:
        if metric.custom:
            series.update(evaluate(metric, recorded.points, BUCKET_S))
    elsewhere = sorted({m.namespace for m in widget.metrics if not m.custom})
    only_aws = f"{', '.join(elsewhere)} metrics exist only in CloudWatch" if elsewhere else ""
    if series:
        return Panel(series, "EMF (.ffe/metrics/emf.jsonl)", only_aws)
    if store:
        return Panel(store, "the local store", "no EMF recorded for this widget; what Postgres and .ffe/ hold instead")
    ours = sorted({m.name for m in widget.metrics if m.custom})
    missing = f"no EMF for {', '.join(ours)} yet (ffe run records it)" if ours else ""
    return Panel({}, "", "; ".join(n for n in (missing, only_aws) if n))


def write_dashboard(state: Any, out: Path) -> tuple[Path, int]:
    """Render the page from ``state`` (a LocalState) into ``out``; returns (path, EMF points read)."""
    from ffe.monitoring.local_store import store_series

    recorded = read_emf(state.emf)
    skipped = f" ({recorded.skipped} unreadable lines skipped)" if recorded.skipped else ""
    page = render_page(
        DASHBOARDS,
        panels(recorded, store_series(state, BUCKET_S)),
        datetime.now(UTC),
        f"{len(recorded.points)} EMF values from {state.emf}{skipped}",
    )
    out.write_text(page, encoding="utf-8")
    return out, len(recorded.points)
