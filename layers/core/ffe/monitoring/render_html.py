"""The dashboards as one self-contained HTML page: inline SVG line charts, no script, no external file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

from ffe.monitoring.dashboards import Dashboard, Widget
from ffe.monitoring.emf import Series

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 560, 220, 56, 12, 12, 28


@dataclass(frozen=True)
class Panel:
    """What one widget shows locally: its series and where they came from, or why there is nothing."""

    series: Series
    source: str  # "EMF", "local store", ... ("" when there is no data)
    note: str = ""  # why there is no data, or what the local figure stands for
    columns: tuple[str, ...] = ()  # a listing widget's table: its columns and rows
    rows: list[list[str]] = field(default_factory=list)


def render_page(dashboards: tuple[Dashboard, ...], panels: dict[str, Panel], generated: datetime, footer: str) -> str:
    stamp = f"generated {generated:%Y-%m-%d %H:%M:%S} UTC · {escape(footer)}"
    body = [f"<h1>ffe dashboards (local)</h1><p class='meta'>{stamp}</p>"]
    body.append("<nav>" + " · ".join(f"<a href='#{d.slug}'>{escape(d.title)}</a>" for d in dashboards) + "</nav>")
    for dashboard in dashboards:
        body.append(f"<h2 id='{dashboard.slug}'>{escape(dashboard.title)}</h2><div class='grid'>")
        body.extend(render_widget(w, panels.get(w.id, Panel({}, "", "no data recorded"))) for w in dashboard.widgets)
        body.append("</div>")
    return _PAGE.format(body="\n".join(body))


def render_widget(widget: Widget, panel: Panel) -> str:
    head = f"<section class='widget' id='w-{widget.id}' data-widget='{widget.id}'><h3>{escape(widget.title)}</h3>"
    if panel.rows:
        return f"{head}{_table(panel.columns, panel.rows)}<p class='src'>source: {escape(panel.source)}</p></section>"
    if not panel.series:
        return f"{head}<p class='nodata'>no data recorded: {escape(panel.note or 'nothing emitted yet')}</p></section>"
    chart = line_chart(panel.series, widget)
    note = f"<p class='src'>source: {escape(panel.source)}{' · ' + escape(panel.note) if panel.note else ''}</p>"
    return f"{head}{chart}{_legend(panel.series)}{note}</section>"


def line_chart(series: Series, widget: Widget) -> str:
    """An SVG line chart of every series (stacked when the widget is), with the widget's horizontal lines."""
    if widget.stacked:
        series = _stack(series)
    times = [t for points in series.values() for t, _ in points]
    values = [v for points in series.values() for _, v in points] + [v for v, _ in widget.lines]
    t0, t1 = min(times), max(times)
    low, high = min(0.0, *values), max(0.0, *values)
    high = high if high > low else low + 1
    pad = (t1 - t0) * 0.05 or 30

    def x(t: float) -> float:
        return LEFT + (t - t0 + pad) / (t1 - t0 + 2 * pad) * (WIDTH - LEFT - RIGHT)

    def y(v: float) -> float:
        return TOP + (high - v) / (high - low) * (HEIGHT - TOP - BOTTOM)

    out = [f"<svg viewBox='0 0 {WIDTH} {HEIGHT}' width='{WIDTH}' height='{HEIGHT}' role='img'>"]
    out.append(
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' height='{HEIGHT - TOP - BOTTOM}' class='plot'/>"
    )
    for v in (low, (low + high) / 2, high):
        out.append(f"<text x='{LEFT - 4}' y='{y(v) + 4:.1f}' class='tick' text-anchor='end'>{_number(v)}</text>")
    for t in sorted({t0, t1}):
        out.append(f"<text x='{x(t):.1f}' y='{HEIGHT - 8}' class='tick' text-anchor='middle'>{_clock(t)}</text>")
    for value, label in widget.lines:
        out.append(
            f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y(value):.1f}' y2='{y(value):.1f}' class='annotation'/>"
            f"<text x='{WIDTH - RIGHT - 2}' y='{y(value) - 3:.1f}' class='tick' "
            f"text-anchor='end'>{escape(label)}</text>"
        )
    for i, points in enumerate(series.values()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        if len(points) > 1:
            out.append(f"<polyline points='{coords}' fill='none' stroke='{colour}' stroke-width='1.5'/>")
        out.extend(f"<circle cx='{x(t):.1f}' cy='{y(v):.1f}' r='2.5' fill='{colour}'/>" for t, v in points)
    out.append("</svg>")
    return "".join(out)


def _stack(series: Series) -> Series:
    """Each series on top of the ones before it, per time (a missing value counts as 0)."""
    times = sorted({t for points in series.values() for t, _ in points})
    below = dict.fromkeys(times, 0.0)
    out = {}
    for label, points in series.items():
        own = dict(points)
        for t in times:
            below[t] += own.get(t, 0.0)
        out[label] = [(t, below[t]) for t in times]
    return out


def _table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _legend(series: Series) -> str:
    items = []
    for i, (label, points) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        latest = _number(points[-1][1])
        items.append(f"<li><i style='background:{colour}'></i>{escape(label)} <em>latest {latest}</em></li>")
    return f"<ul class='legend'>{''.join(items)}</ul>"


def _number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 or v == int(v) else f"{v:.3g}"


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ffe dashboards (local)</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h2 {{ border-bottom: 1px solid #ccc; margin-top: 1.5em; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(580px, 1fr)); gap: 12px; }}
.widget {{ border: 1px solid #ddd; border-radius: 4px; padding: 8px; }}
.widget h3 {{ font-size: 14px; margin: 0 0 6px; }}
.plot {{ fill: #fafafa; stroke: #ddd; }}
.tick {{ font-size: 10px; fill: #666; }}
.annotation {{ stroke: #d62728; stroke-dasharray: 4 3; }}
.legend {{ list-style: none; padding: 0; margin: 4px 0; font-size: 12px; }}
.legend i {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
.legend em {{ color: #666; font-style: normal; }}
.nodata {{ color: #888; font-style: italic; }}
.src, .meta {{ color: #888; font-size: 11px; margin: 0; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border-bottom: 1px solid #eee; padding: 2px 8px; text-align: left; }}
</style></head><body>
{body}
</body></html>
"""
