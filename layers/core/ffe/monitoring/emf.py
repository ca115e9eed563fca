"""The EMF lines the local runtime kept, read back as CloudWatch would store them, and a widget's metric evaluated
over them: the same filter (namespace, name, exact dimension set, fixed values), grouping and statistic."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ffe.monitoring.dashboards import Metric

Series = dict[str, list[tuple[float, float]]]  # label -> [(epoch seconds, value)], time-ordered


@dataclass(frozen=True)
class Point:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted (name, value) pairs
    time: float  # epoch seconds
    value: float


@dataclass(frozen=True)
class Recorded:
    """What an EMF file holds: every metric value, the documents themselves, and how many lines were not EMF."""

    points: list[Point]
    documents: list[dict[str, Any]]
    skipped: int


def read_emf(path: Path) -> Recorded:
    """The file's EMF; a missing file holds nothing."""
    recorded = Recorded([], [], 0)
    if not path.exists():
        return recorded
    skipped = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            document = json.loads(line)
            recorded.points.extend(parse_emf(document))
        except (ValueError, TypeError, KeyError, AttributeError):
            skipped += 1
        else:
            recorded.documents.append(document)
    return Recorded(recorded.points, recorded.documents, skipped)


def listing(metric: str, fields: tuple[str, ...], documents: list[dict[str, Any]], limit: int) -> list[list[str]]:
    """The rows a Logs Insights ``filter ispresent(metric) | fields @timestamp, ...`` gives, newest first."""
    found = [d for d in documents if metric in d]
    found.sort(key=lambda d: d["_aws"]["Timestamp"], reverse=True)
    return [[_time(d["_aws"]["Timestamp"]), *(_cell(d.get(f)) for f in fields)] for d in found[:limit]]


def _time(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def parse_emf(document: dict[str, Any]) -> list[Point]:
    """The values of one EMF document: one point per value, metric and dimension set (as CloudWatch extracts them)."""
    meta = document["_aws"]
    time = float(meta["Timestamp"]) / 1000
    out = []
    for directive in meta["CloudWatchMetrics"]:
        for dimension_set in directive.get("Dimensions") or [[]]:
            dims = tuple(sorted((d, str(document[d])) for d in dimension_set))
            for metric in directive["Metrics"]:
                raw = document[metric["Name"]]
                for value in raw if isinstance(raw, list) else [raw]:
                    out.append(Point(directive["Namespace"], metric["Name"], dims, time, float(value)))
    return out


def evaluate(metric: Metric, points: Iterable[Point], bucket_s: int) -> Series:
    """What the widget's metric (or SEARCH) shows: one series per value of its varying dimensions."""
    wanted = set(metric.dimensions)
    fixed = {"service": "ffe", **dict(metric.where)} if metric.custom else dict(metric.where)
    groups: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in points:
        dims = dict(p.dimensions)
        if p.namespace != metric.namespace or p.name != metric.name or set(dims) != wanted:
            continue
        if any(dims.get(k) != v for k, v in fixed.items()) or any(dims.get(k) == v for k, v in metric.exclude):
            continue
        label = " ".join([*(dims[d] for d in metric.by), metric.stat]) if metric.by else metric.caption()
        groups[label][p.time // bucket_s * bucket_s].append(p.value)
    return {
        label: [(t, statistic(metric.stat, values)) for t, values in sorted(buckets.items())]
        for label, buckets in sorted(groups.items())
    }


def statistic(stat: str, values: list[float]) -> float:
    """CloudWatch's statistics over one period's values: Sum, Average, Minimum, Maximum, SampleCount, pNN."""
    if stat == "Sum":
        return sum(values)
    if stat == "Average":
        return sum(values) / len(values)
    if stat == "Minimum":
        return min(values)
    if stat == "Maximum":
        return max(values)
    if stat == "SampleCount":
        return float(len(values))
    if stat.startswith("p"):
        ordered = sorted(values)
        rank = max(1, math.ceil(float(stat[1:]) / 100 * len(ordered)))  # nearest rank
        return ordered[rank - 1]
    raise ValueError(f"unknown statistic {stat!r}")


def keep_emf(logs: str, path: Path) -> int:
    """Append the Embedded Metric Format lines of one invocation's output to ``path`` (JSON Lines), as CloudWatch
    Logs would extract them into metrics; returns how many. Other output (log records, warnings) is left out."""
    lines = [line for line in logs.splitlines() if line.startswith("{") and '"_aws"' in line and _is_emf(line)]
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write("".join(f"{line}\n" for line in lines))
    return len(lines)


def _is_emf(line: str) -> bool:
    try:
        document = json.loads(line)
    except ValueError:
        return False
    meta = document.get("_aws") if isinstance(document, dict) else None
    return isinstance(meta, dict) and "CloudWatchMetrics" in meta
