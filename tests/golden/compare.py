"""Golden files (gzip'd JSON lines) and the comparison that names each record and field that differs.

Values are compared exactly: the same JSON type and the same value, a float by its shortest repr (so -0.0 is not
0.0, and NaN equals NaN), a string character for character.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ABOUT = "about"  # the first line of a golden file: how it was made (never compared)
SHOWN = 40  # mismatches spelled out in a failure message; the rest are counted
PER_RECORD = 6  # of which at most this many from one record, so the first records do not hide the others


def write(path: Path, about: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """One JSON object per line, keys sorted; gzip with no timestamp, so the same records give the same bytes."""
    lines = [json.dumps({"key": ABOUT, "data": about}, sort_keys=True)]
    lines += [json.dumps(r, sort_keys=True, separators=(",", ":")) for r in records]
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as out:
        out.write(("\n".join(lines) + "\n").encode())


def read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(about, {key: data}) of a golden file."""
    about: dict[str, Any] = {}
    records: dict[str, Any] = {}
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        record = json.loads(line)
        if record["key"] == ABOUT:
            about = record["data"]
        else:
            records[record["key"]] = record["data"]
    return about, records


def differences(golden: Any, now: Any, path: str, additions: bool = False) -> Iterator[str]:
    """Each difference between two JSON values, as ``<path>: golden <value>, now <value>``; with ``additions``,
    a field only ``now`` has is none."""
    if isinstance(golden, dict) and isinstance(now, dict):
        for name in sorted(set(golden) | set(now), key=str):
            where = f"{path}.{name}" if path else str(name)
            if name not in now:
                yield f"{where}: gone now (golden {_show(golden[name])})"
            elif name not in golden:
                if not additions:
                    yield f"{where}: new now ({_show(now[name])}), not in the golden run"
            else:
                yield from differences(golden[name], now[name], where, additions)
    elif isinstance(golden, list) and isinstance(now, list):
        if len(golden) != len(now):
            yield f"{path}: {len(golden)} items golden, {len(now)} now"
        for i, (g, n) in enumerate(zip(golden, now, strict=False)):
            yield from differences(g, n, f"{path}[{i}]", additions)
    elif isinstance(golden, str) and isinstance(now, str) and golden != now and len(golden) > 80:
        at = next((i for i, (g, n) in enumerate(zip(golden, now, strict=False)) if g != n), min(len(golden), len(now)))
        lo = max(0, at - 30)  # a little of what comes before, so the text says which number it is
        yield f"{path}: differs from character {at}: golden ...{golden[lo : at + 30]!r}, now ...{now[lo : at + 30]!r}"
    elif not _same(golden, now):
        yield f"{path}: golden {_show(golden)}, now {_show(now)}"


def _same(golden: Any, now: Any) -> bool:
    if type(golden) is not type(now):  # 1 is not 1.0, True is not 1
        return False
    if isinstance(golden, float):
        return repr(golden) == repr(now)
    return bool(golden == now)


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, allow_nan=True)
    return text if len(text) <= 200 else text[:200] + "..."


def mismatches(golden: dict[str, Any], now: dict[str, Any], additions: bool = False) -> list[str]:
    """Every difference, record by record in the golden run's order: ``<key>: <field>: golden ..., now ...``.

    With ``additions``, a field the golden run's record lacks is no difference (a record missing or added is).
    """
    found = [f"{key}: missing now (the golden run has it)" for key in golden if key not in now]
    found += [f"{key}: not in the golden run" for key in now if key not in golden]
    for key, data in golden.items():
        if key in now:
            found += [f"{key}: {line}" for line in differences(data, now[key], "", additions)]
    return found


def report(found: list[str], what: str) -> str:
    """A failure message: how many differences, then up to ``PER_RECORD`` of each record's (``SHOWN`` in all)."""
    lines = [f"{len(found)} difference(s) from the golden {what} (see tests/golden/README.md):"]
    per_record: dict[str, int] = {}
    for line in found:
        key = line.split(": ", 1)[0]
        per_record[key] = per_record.get(key, 0) + 1
        if per_record[key] <= PER_RECORD and len(lines) <= SHOWN:
            lines.append(line)
    shown = len(lines) - 1
    if shown < len(found):
        lines.append(f"... and {len(found) - shown} more, in {len(per_record)} record(s) in all")
    return "\n".join(lines)
