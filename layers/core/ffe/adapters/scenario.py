"""Scenario files: bars a user writes (CSV or JSON) to run the real cycle on a what-if (``ffe run --bars``).

Format (examples/README.md): one row per bar with ``asset, timeframe, time, open, high, low, close, volume``
and an optional ``asset_class`` (a symbol outside the built-in table can then be backtested, evaluated and trained
on); ``time`` is the bar's open time, ISO-8601 with a UTC offset. A JSON file is ``{"as_of": ..., "bars": [rows]}``
(``as_of`` optional). Reading a file checks only that every row *is* a bar (types, symbol, timeframe, one
timeframe per run, each asset in one file) and names the file, line or row and field otherwise. Whether the
bars are sound (finite positive prices, high/low bracketing, order, duplicates) is the cycle's business: a
``ScenarioProvider`` serves them to FetchMarketData, which validates them like any provider's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from ffe.contracts import Symbol, describe_errors
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.ports import FetchedSeries
from ffe.domain.universe import ASSET_CLASSES

COLUMNS = ("asset", "timeframe", "time", "open", "high", "low", "close", "volume", "asset_class")
OPTIONAL = ("volume", "asset_class")
FORMATS = (".csv", ".json")


def _iso_time(value: object) -> datetime:
    example = "write UTC, e.g. 2019-06-15T12:00:00Z"
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO-8601 time string; {example}")  # pydantic wants ValueError
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 time; {example}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone; {example}")
    return parsed.astimezone(UTC)


def _number(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")  # pydantic wants ValueError
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_time)]
Number = Annotated[float, BeforeValidator(_number)]


class ScenarioRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    asset: Symbol
    timeframe: Timeframe
    time: IsoTime
    open: Number
    high: Number
    low: Number
    close: Number
    volume: Number = 0.0
    asset_class: AssetClass | None = None

    def to_bar(self) -> Bar:
        return Bar(self.time, self.open, self.high, self.low, self.close, self.volume)


class _JsonScenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: IsoTime | None = None
    bars: list[dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    """What ``--bars`` named: one timeframe, each asset's bars in file order, and the files as read."""

    name: str
    timeframe: Timeframe
    as_of: datetime | None  # from a JSON file's "as_of"; None when no file carries one
    bars: Mapping[str, tuple[Bar, ...]]
    sources: Mapping[str, str]  # asset -> the name of the file its bars came from
    files: Mapping[str, bytes]  # file name -> content, exactly as read (what the local stack serves)
    classes: Mapping[str, AssetClass] = field(default_factory=dict)  # asset -> the asset_class its rows give

    @property
    def assets(self) -> list[str]:
        return list(self.bars)

    def cycle_input(self, as_of: datetime, cycle_id: str) -> dict[str, Any]:
        """A manual DecisionCycle input: the scenario's timeframe and assets, at ``as_of``."""
        return {
            "cycle_id": cycle_id,
            "as_of": as_of.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timeframe": str(self.timeframe),
            "assets": self.assets,
        }


class ScenarioProvider:
    """Serves a scenario's bars as a provider would have at ``as_of``: only bars that had closed by then."""

    name = "scenario"

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    @classmethod
    def from_s3(cls, uri: str) -> ScenarioProvider:
        """The scenario files under ``s3://bucket/prefix/`` (where the local stack uploaded them)."""
        import boto3

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        s3 = boto3.client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
        files = {key.removeprefix(prefix): s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}
        if not files:
            raise InvalidInputError(f"no scenario files under {uri}")
        return cls(parse_scenario(files, name=uri))

    def fetch(
        self, asset: str, timeframe: Timeframe, as_of: datetime, lookback: int, asset_class: AssetClass | None = None
    ) -> FetchedSeries:
        scenario = self.scenario
        if timeframe != scenario.timeframe:
            raise InvalidInputError(f"scenario {scenario.name} has {scenario.timeframe} bars, not {timeframe}")
        if asset not in scenario.bars:
            raise InvalidInputError(f"scenario {scenario.name} has no bars for {asset} ({', '.join(scenario.assets)})")
        closed = [bar for bar in scenario.bars[asset] if bar.time + timeframe.duration <= as_of]
        dataset = f"scenario:{scenario.sources[asset]}"
        return FetchedSeries(closed[-lookback:], dataset, synthetic=False, simulated_clock=True)


def load_scenario(path: Path) -> Scenario:
    """Read ``path``: one .csv/.json file, or every .csv/.json file directly in a directory.

    Raises:
        InvalidInputError: one line naming the file, the line or row, and the field.
    """
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
        if not paths:
            raise InvalidInputError(f"{path}: no .csv or .json scenario files in this directory")
    elif path.is_file():
        paths = [path]
    else:
        raise InvalidInputError(f"{path}: no such file or directory")
    files: dict[str, bytes] = {}
    for p in paths:
        try:
            files[str(p)] = p.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"{p}: cannot read it ({exc.strerror})") from None
    return parse_scenario(files, name=str(path))


def parse_scenario(files: Mapping[str, bytes], name: str) -> Scenario:
    """Merge the rows of ``files`` (name -> content) into one scenario: one timeframe, each asset in one file."""
    timeframe: tuple[Timeframe, str] | None = None  # and where it was first seen
    as_of: tuple[datetime, str] | None = None
    bars: dict[str, list[Bar]] = {}
    sources: dict[str, str] = {}
    classes: dict[str, AssetClass] = {}
    for file, content in files.items():
        file_as_of, rows = _parse_file(file, content)
        if file_as_of is not None:
            if as_of is not None and as_of[0] != file_as_of:
                raise InvalidInputError(
                    f"{file}: as_of {_iso(file_as_of)} differs from {_iso(as_of[0])} in {as_of[1]}; "
                    "pass --as-of to choose one"
                )
            as_of = (file_as_of, file)
        seen_here: set[str] = set()
        for where, row in rows:
            if timeframe is None:
                timeframe = (row.timeframe, f"{file} {where}")
            elif row.timeframe != timeframe[0]:
                raise InvalidInputError(
                    f"{file} {where}: timeframe {row.timeframe} differs from {timeframe[0]} ({timeframe[1]}); "
                    "one run takes one timeframe"
                )
            if row.asset in sources and row.asset not in seen_here:
                raise InvalidInputError(
                    f"{file} {where}: {row.asset} also has bars in {sources[row.asset]}; keep an asset in one file"
                )
            seen_here.add(row.asset)
            sources[row.asset] = Path(file).name
            bars.setdefault(row.asset, []).append(row.to_bar())
            if row.asset_class is not None:
                _check_class(f"{file} {where}", row.asset, row.asset_class, classes)
                classes[row.asset] = row.asset_class
    if timeframe is None:
        raise InvalidInputError(f"{name}: no bars")
    return Scenario(
        name=name,
        timeframe=timeframe[0],
        as_of=None if as_of is None else as_of[0],
        bars={asset: tuple(series) for asset, series in bars.items()},
        sources=sources,
        files={Path(file).name: content for file, content in files.items()},
        classes=classes,
    )


def _check_class(where: str, asset: str, given: AssetClass, classes: Mapping[str, AssetClass]) -> None:
    """An asset's rows agree on its class, and a symbol of the built-in table keeps the table's."""
    if asset in classes and classes[asset] != given:
        raise InvalidInputError(f"{where}: asset_class {given} for {asset}, an earlier row gave {classes[asset]}")
    known = ASSET_CLASSES.get(asset)
    if known is not None and known != given:
        raise InvalidInputError(f"{where}: asset_class {given}, but {asset} is {known}; leave the column empty")


def _parse_file(file: str, content: bytes) -> tuple[datetime | None, list[tuple[str, ScenarioRow]]]:
    suffix = Path(file).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(f"{file}: unknown format {suffix or '(no extension)'!r}; use .csv or .json")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    if suffix == ".csv":
        return None, [(where, _row(file, where, raw)) for where, raw in _csv_rows(file, text)]
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{file} line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise InvalidInputError(
            f'{file}: expected an object {{"as_of": ..., "bars": [...]}}, not a JSON {type(raw).__name__}'
        )
    try:
        document = _JsonScenario.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInputError(f"{file}: {_problems(exc)}") from None
    rows = [(f"bars[{i}]", _row(file, f"bars[{i}]", raw)) for i, raw in enumerate(document.bars)]
    return document.as_of, rows


def _csv_rows(file: str, text: str) -> Iterator[tuple[str, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    header = [name.strip() for name in next(reader, [])]
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in COLUMNS if name not in header and name not in OPTIONAL]
    duplicated = [name for i, name in enumerate(header) if name in header[:i]]
    for problem, names in (("unknown", unknown), ("missing", missing), ("duplicated", duplicated)):
        if names:
            raise InvalidInputError(
                f"{file} line 1: {problem} column {names[0]!r}; the header is {','.join(COLUMNS)} "
                f"({' and '.join(OPTIONAL)} optional)"
            )
    try:
        for cells in reader:
            where = f"line {reader.line_num}"
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise InvalidInputError(f"{file} {where}: {len(cells)} fields, the header has {len(header)}")
            yield where, {name: cell.strip() for name, cell in zip(header, cells, strict=True) if cell.strip()}
    except csv.Error as exc:
        raise InvalidInputError(f"{file} line {reader.line_num}: not readable as CSV ({exc})") from None


def _row(file: str, where: str, raw: Any) -> ScenarioRow:
    try:
        return ScenarioRow.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInputError(f"{file} {where}: {_problems(exc)}") from None


def _problems(exc: ValidationError) -> str:
    """The offending fields of one row, on one line: ``close: Input should be a valid number (got 'abc')``."""
    first = exc.errors()[0]["loc"][:2]
    # Another row's errors are left out: the first bad row is enough to fix.
    errors = [e for e in exc.errors() if e["loc"][:2] == first or e["loc"][:1] != ("bars",)]
    described = describe_errors(errors, whole="", plain=True, brackets=True)
    return "; ".join(
        f"{field}: {message}"
        + ("" if err["type"] in ("missing", "value_error") else f" (got {repr(err['input'])[:40]})")
        for (field, message), err in zip(described, errors, strict=True)
    )


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
