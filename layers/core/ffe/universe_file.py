"""A stage's universe file: which assets a cycle of one timeframe decides, their class, venue and whether enabled.

One file per stage and timeframe, ``s3://ffe-<stage>-cycles-<account>/universe/<timeframe>.json``
(``universe_key``; ``ffe.adapters.universe.UniverseStore`` reads and writes it, ``ffe universe`` manages it;
docs/universe.md). A user writes CSV or JSON; the store keeps the canonical JSON ``dump_universe`` makes.

``parse_universe`` refuses a bad file with ONE ``InvalidInputError`` naming the file, the row and the field; it
raises nothing else, whatever the bytes (tests/unit/test_universe_file.py, a hypothesis property). Pure: pydantic
and the standard library only, so a Lambda may import it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ffe.contracts import SYMBOL_PATTERN, Symbol
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import AssetClass, Timeframe
from ffe.domain.universe import ASSET_CLASSES

MAX_UNIVERSE_ASSETS = 10_000  # rows in a file, enabled or not: the documented bound (docs/universe.md)
MAX_UNIVERSE_BYTES = 2 * 1024 * 1024  # a file larger than this is refused before it is decoded

Venue = Literal["coinbase", "oanda", "none"]
VENUES: tuple[Venue, ...] = ("coinbase", "oanda", "none")
# The live venue of each class's orders (ffe.adapters.brokers_factory._VENUES; a test keeps the two equal);
# "none": decided, never ordered live.
CLASS_VENUES: dict[AssetClass, Venue] = {
    AssetClass.CRYPTO: "coinbase",
    AssetClass.FX: "oanda",
    AssetClass.EQUITY: "none",
}
FIELDS = ("asset", "class", "venue", "enabled")
REQUIRED = ("asset", "class")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_SHOWN = 40  # a value quoted in an error is cut to this many characters (a hostile field may be megabytes)


class UniverseEntry(BaseModel):
    """One asset of the universe. ``venue`` left out (or empty) is the class's venue (``CLASS_VENUES``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    asset: Symbol
    asset_class: AssetClass = Field(alias="class", serialization_alias="class")
    venue: Venue = Field(default=None, validate_default=True)  # None: the class's venue, filled below
    enabled: bool = True

    @field_validator("asset_class", mode="after")
    @classmethod
    def _class_as_built_in(cls, value: AssetClass, info: ValidationInfo) -> AssetClass:
        asset = info.data.get("asset")
        known = ASSET_CLASSES.get(asset) if isinstance(asset, str) else None
        if known is not None and known != value:
            raise ValueError(f"{asset} is {known.value} in the built-in table (ffe.domain.universe), not {value.value}")
        return value

    @field_validator("venue", mode="before")
    @classmethod
    def _class_venue_by_default(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value == "":
            asset_class = info.data.get("asset_class")
            return CLASS_VENUES[asset_class] if isinstance(asset_class, AssetClass) else value
        return value

    @field_validator("venue", mode="after")
    @classmethod
    def _venue_of_the_class(cls, value: Venue, info: ValidationInfo) -> Venue:
        asset_class = info.data.get("asset_class")
        if isinstance(asset_class, AssetClass) and CLASS_VENUES[asset_class] != value:
            raise ValueError(
                f"{value} is not the venue of class {asset_class.value}: {asset_class.value} orders go to "
                f"{CLASS_VENUES[asset_class]}"
            )
        return value

    @field_validator("enabled", mode="before")
    @classmethod
    def _yes_or_no(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("not a yes or no")

    def document(self) -> dict[str, Any]:
        """The canonical stored form: ``{"asset", "class", "venue", "enabled"}``."""
        return {"asset": self.asset, "class": self.asset_class.value, "venue": self.venue, "enabled": self.enabled}


def parse_universe(content: bytes, name: str) -> list[UniverseEntry]:
    """The entries of a universe file, in file order; ``name`` ends in ``.csv`` or ``.json`` and names the file
    in every error.

    Raises:
        InvalidInputError: one, naming the file, the row (counted from 1) and the field; never anything else.
    """
    kind = name.lower().rsplit(".", 1)[-1] if "." in name else ""
    if kind not in ("csv", "json"):
        raise InvalidInputError(f"{name}: a universe file is .csv or .json")
    if len(content) > MAX_UNIVERSE_BYTES:
        raise InvalidInputError(f"{name}: {len(content):,} bytes, over the {MAX_UNIVERSE_BYTES:,}-byte limit")
    try:
        text = content.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is dropped
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{name}: not UTF-8 (byte {exc.start:,} is {content[exc.start]:#04x})") from None
    rows = _csv_rows(text, name) if kind == "csv" else _json_rows(text, name)
    entries: list[UniverseEntry] = []
    first_row: dict[str, str] = {}  # asset -> where it first appeared
    for where, row in rows:
        if len(entries) == MAX_UNIVERSE_ASSETS:
            raise InvalidInputError(
                f"{name}: more than {MAX_UNIVERSE_ASSETS:,} rows, the universe file's limit (docs/universe.md)"
            )
        entry = _entry(row, name, where)
        if entry.asset in first_row:
            raise InvalidInputError(f"{name}: {where}, asset: {entry.asset} repeats {first_row[entry.asset]}")
        first_row[entry.asset] = where
        entries.append(entry)
    if not entries:
        raise InvalidInputError(f"{name}: no rows; a universe names one asset at least")
    return entries


def dump_universe(entries: Iterable[UniverseEntry]) -> bytes:
    """The canonical stored form: a JSON array of ``{"asset","class","venue","enabled"}`` in file order, one entry
    a line (``parse_universe(dump_universe(e), "x.json") == e``)."""
    lines = [json.dumps(entry.document(), separators=(", ", ": ")) for entry in entries]
    return ("[\n" + ",\n".join(lines) + "\n]\n").encode() if lines else b"[]\n"


def enabled(entries: Iterable[UniverseEntry]) -> list[UniverseEntry]:
    """The entries a cycle decides, in file order."""
    return [entry for entry in entries if entry.enabled]


def universe_key(timeframe: str) -> str:
    """The S3 key of the stage's file for ``timeframe``: ``universe/<timeframe>.json``.

    Raises:
        InvalidInputError: not one of ffe.domain.models.Timeframe's values.
    """
    if timeframe not in {t.value for t in Timeframe}:
        known = ", ".join(t.value for t in Timeframe)
        raise InvalidInputError(f"timeframe {_shown(timeframe)}: one of {known}")
    return f"universe/{timeframe}.json"


def _entry(row: Mapping[str, Any], name: str, where: str) -> UniverseEntry:
    unknown = [key for key in row if key not in FIELDS]
    if unknown:
        raise InvalidInputError(
            f"{name}: {where}, {_shown(unknown[0])}: unknown field; the fields are {', '.join(FIELDS)}"
        )
    try:
        return UniverseEntry.model_validate(row)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = str(error["loc"][0]) if error["loc"] else "row"
        raise InvalidInputError(f"{name}: {where}, {field}: {_problem(field, error)}") from None


def _problem(field: str, error: Any) -> str:
    if error["type"] == "missing":
        return "missing"
    if error["type"] == "extra_forbidden":
        return f"unknown field; the fields are {', '.join(FIELDS)}"
    value = _shown(error.get("input"))
    if field == "asset":
        return f"{value} is not a symbol (3 to 12 capital letters or digits, {SYMBOL_PATTERN}, e.g. BTCUSD)"
    if field == "class" and error["type"] == "enum":
        return f"{value} is not a class: {', '.join(c.value for c in AssetClass)}"
    if field == "venue" and error["type"] == "literal_error":
        return f"{value} is not a venue: {', '.join(VENUES)}"
    if field == "enabled":
        return f"{value} is not true or false (yes/no, 1/0)"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _csv_rows(text: str, name: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(where, {field: cell}) per data row; blank lines are skipped, cells stripped; refuses a bad header."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InvalidInputError(f"{name}: line {line}: a NUL byte; a universe file is text")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    number = 0
    try:
        for cells in reader:
            stripped = [cell.strip() for cell in cells]
            if not any(stripped):
                continue
            if header is None:
                header = _header(stripped, name, reader.line_num)
                continue
            number += 1
            where = f"row {number} (line {reader.line_num})"
            if len(stripped) != len(header):
                raise InvalidInputError(f"{name}: {where}: {len(stripped)} cells, the header has {len(header)}")
            yield where, dict(zip(header, stripped, strict=True))
    except csv.Error as exc:  # an unclosed quote, a quote inside a bare cell, a cell over csv's field limit
        raise InvalidInputError(f"{name}: line {reader.line_num}: malformed CSV ({exc})") from None
    if header is None:
        raise InvalidInputError(f"{name}: no header row; the first line names the columns: {', '.join(FIELDS)}")


def _header(cells: Sequence[str], name: str, line: int) -> list[str]:
    columns = [cell.lower() for cell in cells]
    unknown = [c for c in columns if c not in FIELDS]
    if unknown:
        raise InvalidInputError(
            f"{name}: line {line}, header: unknown column {_shown(unknown[0])}; the first row names the columns: "
            f"{', '.join(FIELDS)} (venue and enabled optional), in any order"
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise InvalidInputError(f"{name}: line {line}, header: column {repeated[0]} twice")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InvalidInputError(f"{name}: line {line}, header: no {missing[0]} column (asset and class are required)")
    return columns


def _json_rows(text: str, name: str) -> list[tuple[str, Any]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{name}: line {exc.lineno}: malformed JSON ({exc.msg})") from None
    except RecursionError:
        raise InvalidInputError(f"{name}: malformed JSON (nested too deep)") from None
    except ValueError:  # an integer of more digits than Python converts
        raise InvalidInputError(f"{name}: malformed JSON (a number too long)") from None
    if isinstance(document, dict):
        if set(document) != {"assets"}:
            raise InvalidInputError(f'{name}: a JSON object holds one key, "assets": the array of assets')
        document = document["assets"]
    if not isinstance(document, list):
        raise InvalidInputError(f'{name}: a JSON array of assets, or {{"assets": [...]}}')
    rows = []
    for index, item in enumerate(document):
        where = f"row {index + 1} (item [{index}])"
        if not isinstance(item, dict):
            raise InvalidInputError(f"{name}: {where}: not an object of {', '.join(FIELDS)}")
        rows.append((where, item))
    return rows
