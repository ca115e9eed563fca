"""Pydantic models for everything that crosses a state boundary of the DecisionCycle state machine.

Naming: ``<Step>Input`` / ``<Step>Result``. Every model forbids unknown fields, so ASL payload drift
fails loudly at the boundary; ``parse`` turns a validation failure into ``InvalidInputError`` whose
message names the offending field.
"""

from __future__ import annotations

import hashlib
import json
import operator
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache, partial
from itertools import chain, repeat
from math import isfinite
from operator import attrgetter
from typing import Annotated, Any, Literal, TypeVar, overload

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from ffe import utc
from ffe.domain.errors import InvalidInputError
from ffe.domain.experiments import Mode, Route, RunningExperiment, route
from ffe.domain.models import EPOCH, Action, AssetClass, Bar, BarLike, Timeframe, open_time
from ffe.domain.series import validate_series
from ffe.domain.staleness import GateCode

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


UtcDatetime = Annotated[AwareDatetime, AfterValidator(utc.normalise)]

FUTURE_SKEW = timedelta(minutes=5)  # a cycle may not be dated after "now" by more than clock skew
EARLIEST_AS_OF = datetime(1970, 1, 1, tzinfo=UTC)  # no market data is older; date arithmetic stays in range


def check_as_of(as_of: datetime, now: datetime | None = None) -> datetime:
    """A cycle decides on what has already happened: ``as_of`` (UTC) may be neither after ``now`` (beyond clock
    skew) nor before 1970. The API's POST /cycles and the state machine's cycles apply this same rule."""
    as_of = utc.normalise(as_of)
    now = now or utc.now()
    if as_of > now + FUTURE_SKEW:
        raise ValueError(f"as_of is in the future: {as_of.isoformat()} is after now ({now:%Y-%m-%dT%H:%M:%SZ})")
    if as_of < EARLIEST_AS_OF:
        raise ValueError(f"as_of {as_of.isoformat()} is before {EARLIEST_AS_OF:%Y-%m-%d}: no market data is that old")
    return as_of


AsOf = Annotated[AwareDatetime, AfterValidator(check_as_of)]
# The patterns of the identifiers every boundary checks (the API's parameters too).
SYMBOL_PATTERN = r"^[A-Z0-9]{3,12}$"
CYCLE_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
SEAL_PATTERN = r"^[0-9a-f]{32}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # model versions and experiment ids

Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN, description="e.g. BTCUSD, EURUSD")]
CycleId = Annotated[str, Field(min_length=1, max_length=128, pattern=CYCLE_ID_PATTERN)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
ModelVersion = Annotated[str, Field(pattern=NAME_PATTERN, description="a model bundle's version: ffe-<12 hex>")]
ExperimentId = Annotated[str, Field(pattern=NAME_PATTERN, description="letters, digits, '.', '_', '-'; 64 at most")]
ArmName = Literal["control", "treatment"]


def unique_assets(assets: list[str]) -> list[str]:
    duplicates = sorted({a for a in assets if assets.count(a) > 1})
    if duplicates:
        raise ValueError(f"duplicated assets: {', '.join(duplicates)}")
    return assets


MAX_CYCLE_ASSETS = 10_000  # a cycle's assets at most: the universe file's bound (docs/universe.md)
INLINE_MAX_ASSETS = 50  # a cycle of at most this many assets, named in its input, runs on the inline Map
MAX_BATCH_ASSETS = 20  # the Distributed Map's ItemBatcher.MaxItemsPerBatch: a batch's records stay far under 256 KB

Assets = Annotated[list[Symbol], Field(min_length=1, max_length=MAX_CYCLE_ASSETS), AfterValidator(unique_assets)]


class Contract(BaseModel):
    # defer_build: a model's validator is built when first used, so a Lambda's cold import builds none it never uses
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


@overload
def parse(model: type[M], event: Any, name: str | None = None) -> M: ...
@overload
def parse(model: TypeAdapter[T], event: Any, name: str | None = None) -> T: ...
def parse(model: type[M] | TypeAdapter[T], event: Any, name: str | None = None) -> M | T:
    """Validate a raw event into ``model`` (a model class, or a TypeAdapter for a union).

    Raises:
        InvalidInputError: naming every offending field, e.g. ``timeframe: Input should be '1m', ...``.
    """
    label = name or getattr(model, "__name__", "event")
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(event)
        return model.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {message}" for field, message in describe_errors(exc, whole="<event>"))
        raise InvalidInputError(f"invalid {label}: {problems}") from None


def describe_errors(
    errors: ValidationError | Iterable[Mapping[str, Any]],
    *,
    whole: str,
    plain: bool = False,
    part: Callable[[str], str] = str,
    brackets: bool = False,
) -> list[tuple[str, str]]:
    """Each validation error as ``(field, message)``: the one way a ``ValidationError`` is put into words.

    The field is the error's location joined by dots (``assets.0``), or ``whole`` when the error is about the
    whole value; ``part`` writes each part of it (e.g. cut to a length), and with ``brackets`` a list index is
    written ``bars[0]`` instead. The message is pydantic's, without its ``"Value error, "`` prefix when ``plain``.
    The offending input is never repeated.
    """
    described = []
    for error in errors.errors() if isinstance(errors, ValidationError) else errors:
        field = ""
        for item in error.get("loc", ()):
            field += f"[{item}]" if brackets and isinstance(item, int) else f".{part(str(item))}"
        message = str(error.get("msg") or error.get("type") or "invalid")
        described.append(
            (field.removeprefix(".") or whole, message.removeprefix("Value error, ") if plain else message)
        )
    return described


# --- cycle ------------------------------------------------------------------------------------------


class CycleInput(Contract):
    """What a schedule (through its InputTransformer) or the API hands the state machine."""

    cycle_id: CycleId
    as_of: AsOf
    timeframe: Timeframe
    assets: Assets | None = Field(default=None, description="None: the stage's universe file for the timeframe")


class ExperimentRoute(Contract):
    """A running experiment as "Open the cycle" resolved it (``ffe.domain.experiments.RunningExperiment``)."""

    id: ExperimentId
    mode: Literal["shadow", "split"]
    control_version: ModelVersion
    treatment_version: ModelVersion
    share: Probability = Field(description="the treatment's share of the assets now (0 in shadow mode)")
    assets: list[Symbol] | None = Field(default=None, max_length=10_000, description="None: the whole universe")

    def domain(self) -> RunningExperiment:
        return RunningExperiment(
            self.id,
            Mode(self.mode),
            self.control_version,
            self.treatment_version,
            self.share,
            frozenset(self.assets) if self.assets is not None else None,
        )


class CycleModels(Contract):
    """The model versions a cycle serves, resolved once when it opens: a promotion takes effect at the next
    cycle, whole, so DetectRegime, the endpoint and the record of one decision always agree on a version."""

    champion: ModelVersion
    experiments: list[ExperimentRoute] = Field(default_factory=list, max_length=100)

    def route(self, asset: str) -> Route:
        return route(asset, self.champion, [e.domain() for e in self.experiments])


class AssetTask(Contract):
    """One Map iteration: one asset of one cycle."""

    cycle_id: CycleId
    as_of: AsOf
    timeframe: Timeframe
    asset: Symbol
    execution_id: str | None = None
    item: int | None = Field(default=None, ge=0, description="the asset's position in the cycle's list")
    models: CycleModels | None = Field(default=None, description="None: the champion the step reads itself")
    asset_class: AssetClass | None = Field(
        default=None, description="the class the universe file gives the asset; None: the built-in table's"
    )


# --- FetchMarketData --------------------------------------------------------------------------------


class BarModel(Contract):
    time: UtcDatetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0

    def to_domain(self) -> Bar:
        return Bar(self.time, self.open, self.high, self.low, self.close, self.volume)

    @classmethod
    def from_domain(cls, bar: Bar) -> BarModel:
        return cls(time=bar.time, open=bar.open, high=bar.high, low=bar.low, close=bar.close, volume=bar.volume)


class RouteStepModel(Contract):
    provider: str
    outcome: Literal["ok", "failed", "skipped"]
    error: str | None = None
    detail: str = ""


class DataSource(Contract):
    provider: str
    dataset: str
    synthetic: bool = Field(description="True when the bars come from the seeded generator, not the market")
    simulated_clock: bool = Field(
        description="True for replayed history: data age is judged against the cycle's as_of, not the wall clock"
    )
    route: list[RouteStepModel] = Field(default_factory=list, description="every provider tried, in order")
    cached_bars: int = Field(default=0, ge=0, description="bars served from the bar cache")
    forming_bars_dropped: int = Field(
        default=0, ge=0, description="bars the provider returned that had not closed by as_of: dropped, never used"
    )
    fetch_started_at: UtcDatetime | None = Field(
        default=None, description="when FetchMarketData started (wall clock): the decision path's latency runs from it"
    )


_SECOND = timedelta(seconds=1)
# POSIX seconds of every instant a datetime holds (years 1 to 9999), so each column's time reads as a datetime.
PosixSeconds = Annotated[int, Field(ge=-62_135_596_800, le=253_402_300_799)]
Microsecond = Annotated[int, Field(ge=0, le=999_999)]


class BarColumns(Contract):
    """A series' bars as columns, as they travel between the states: each bar's open time in POSIX seconds (with
    its microsecond in ``microsecond`` when any bar has one) and its prices, one list per field, bar ``i`` at index
    ``i`` of each.

    Why columns: a list of 120 bar objects cost every boundary its JSON and a model per bar; lists of numbers are
    about half the JSON and are validated by pydantic-core in one pass (both timed by bench/bench_decision_path.py).
    The recorded ``input_sha256`` is still the canonical JSON of the bar objects (:func:`digest_bars`), computed
    once by FetchMarketData. A list of bars (the shape before) is still read, as columns.
    """

    time: list[PosixSeconds]
    microsecond: list[Microsecond] | None = Field(default=None, description="None: every bar opens on a second")
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]

    @model_validator(mode="before")
    @classmethod
    def _from_bar_list(cls, data: Any) -> Any:
        if isinstance(data, list):
            return _columns_of(bar_list_adapter().validate_python(data))
        return data

    @model_validator(mode="after")
    def _one_row_per_bar(self) -> BarColumns:
        n = len(self.time)
        lengths = {name: len(getattr(self, name)) for name in ("open", "high", "low", "close", "volume")}
        if self.microsecond is not None:
            lengths["microsecond"] = len(self.microsecond)
        uneven = [f"{name} {count}" for name, count in lengths.items() if count != n]
        if uneven:
            raise ValueError(f"every column holds one value per bar: time {n}, {', '.join(uneven)}")
        return self

    @classmethod
    def of(cls, bars: Sequence[BarLike]) -> BarColumns:
        """The columns of ``bars`` (aware UTC datetimes, as parsed), without validating them again."""
        return cls.model_construct(**_columns_of(bars))

    @classmethod
    def of_fields(
        cls,
        times: Sequence[datetime],
        opens: Sequence[float],
        highs: Sequence[float],
        lows: Sequence[float],
        closes: Sequence[float],
        volumes: Sequence[float],
    ) -> BarColumns:
        """:meth:`of` the bars these columns hold (aware UTC open times, as parsed), without validating them again."""
        return cls.model_construct(**_columns_dict(times, opens, highs, lows, closes, volumes))

    def times(self) -> list[datetime]:
        """Each bar's open time, an aware UTC datetime."""
        micro = self.microsecond if self.microsecond is not None else repeat(0)
        return list(map(_add, repeat(EPOCH), map(timedelta, repeat(0), self.time, micro)))

    def domain(self) -> list[Bar]:
        return list(map(Bar, self.times(), self.open, self.high, self.low, self.close, self.volume))

    def models(self) -> list[BarModel]:
        """The bars as :class:`BarModel` (what their digest and a full check read)."""
        fields = zip(self.times(), self.open, self.high, self.low, self.close, self.volume, strict=True)
        return [BarModel.model_construct(**dict(zip(_BAR_NAMES, row, strict=True))) for row in fields]

    def lazy(self) -> Sequence[Bar]:
        """The bars as a sequence that builds a :class:`Bar` only when one is read (what a broker's ``settle``
        takes: a live venue's reads none, the paper venue's the last and those its pending orders fill at)."""
        return _LazyBars(self)

    def __len__(self) -> int:
        return len(self.time)

    def __getitem__(self, index: int) -> Bar:
        """Bar ``index`` (negative counts from the end), as a :class:`Bar`."""
        index = range(len(self.time))[index]
        prices = (self.open, self.high, self.low, self.close, self.volume)
        return Bar(open_time(self, index), *(column[index] for column in prices))


class _LazyBars(Sequence[Bar]):
    """:meth:`BarColumns.lazy`: bar ``i`` is ``columns[i]``, built on each read."""

    __slots__ = ("columns",)

    def __init__(self, columns: BarColumns) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns.time)

    @overload
    def __getitem__(self, index: int) -> Bar: ...
    @overload
    def __getitem__(self, index: slice) -> list[Bar]: ...
    def __getitem__(self, index: int | slice) -> Bar | list[Bar]:
        if isinstance(index, slice):
            return [self.columns[i] for i in range(len(self))[index]]
        return self.columns[index]


_BAR_NAMES = ("time", "open", "high", "low", "close", "volume")
_add = operator.add


def _columns_of(bars: Sequence[BarLike]) -> dict[str, Any]:
    prices = list(zip(*map(_PRICES, bars), strict=True)) or [(), (), (), (), ()]
    return _columns_dict([bar.time for bar in bars], *prices)


def _columns_dict(times: Sequence[datetime], *prices: Sequence[float]) -> dict[str, Any]:
    micro = list(map(_MICROSECOND, times))
    return {
        "time": [(t - EPOCH) // _SECOND for t in times],
        "microsecond": micro if any(micro) else None,
        **{name: list(column) for name, column in zip(_BAR_NAMES[1:], prices, strict=True)},
    }


class MarketData(Contract):
    """Bars for one asset as fetched, validated against the cycle's as_of."""

    cycle_id: CycleId
    as_of: UtcDatetime
    timeframe: Timeframe
    asset: Symbol
    execution_id: str | None = None
    source: DataSource
    bars: BarColumns
    bars_sha256: str = Field(pattern=SHA256_PATTERN)
    bars_seal: str | None = Field(
        default=None,
        pattern=SEAL_PATTERN,
        description="FetchMarketData's seal on the bars it validated (seal_bars): a boundary whose bars it still "
        "matches checks them by it; without one, or with one that does not match, they are checked in full",
    )
    models: CycleModels | None = Field(default=None, description="the cycle's model versions, carried through")
    asset_class: AssetClass | None = Field(
        default=None, description="the class the universe file gives the asset; None: the built-in table's"
    )

    @model_validator(mode="after")
    def _series_is_sound(self) -> MarketData:
        # Domain rules, checked at every boundary that carries bars (InvalidInputError is a ValueError): every bar
        # closed by as_of, and the digest. The seal stands for both when it still matches (seal_bars says why).
        if self.bars_seal is not None and self.bars_seal == seal_bars(
            self.as_of, self.timeframe, self.bars, self.bars_sha256
        ):
            return self
        bars = self.bars.models()
        validate_series(bars, self.as_of, self.timeframe)  # a BarModel reads as a Bar
        if self.bars_sha256 != digest_bars(bars):
            raise ValueError("bars_sha256 does not match the bars")
        return self

    def domain_bars(self) -> list[Bar]:
        return self.bars.domain()


SEAL_FORMAT = "ffe.bars-seal/2"
_PRICES = attrgetter("open", "high", "low", "close", "volume")
_MICROSECOND = attrgetter("microsecond")


def seal_bars(as_of: datetime, timeframe: Timeframe, bars: BarColumns, bars_sha256: str) -> str:
    """A BLAKE2b-128 over everything :class:`MarketData`'s check of its bars reads: the bars' columns (each open
    time's POSIX seconds and microsecond as 64-bit integers, exact in any year; the prices as IEEE doubles),
    ``as_of``, the timeframe and ``bars_sha256``.

    Why a second digest: the recorded ``input_sha256`` is the SHA-256 of the bars' canonical JSON, and checking the
    bars in full (the series rules, then that JSON written again: 600 floats' shortest repr) cost every boundary
    about as much as the whole decision's numpy math; the seal reads the same values in a compact binary form, for
    a fraction of that (both timed beside that math by bench/bench_decision_path.py, lines "(c)").
    The check is a pure function of what the seal covers, so bars whose seal still matches would pass it again:
    the seal stands for it. Only FetchMarketData seals, and only bars it has just validated and digested; a seal
    that does not match (tampered, truncated or re-digested bars, another ``as_of``) only means the full check
    runs, with its messages. Like ``bars_sha256`` it guards against drift and corruption between the states, not
    against a writer who recomputes it: neither is keyed.
    """
    n = len(bars.time)
    micro = bars.microsecond or []
    head = f"{SEAL_FORMAT}|{as_of.isoformat()}|{timeframe}|{bars_sha256}|{n}|{len(micro)}|".encode()
    body = struct.pack(
        f"<{n + len(micro)}q{5 * n}d", *bars.time, *micro, *bars.open, *bars.high, *bars.low, *bars.close, *bars.volume
    )
    return hashlib.blake2b(head + body, digest_size=16).hexdigest()


def digest_bars(bars: Sequence[BarModel]) -> str:
    """SHA-256 of the canonical JSON of the bars: the 'full input hash' recorded with a decision.

    The canonical JSON is ``json.dumps([b.model_dump(mode="json") for b in bars], sort_keys=True,
    separators=(",", ":"))``: written directly for plain bars (:func:`_plain_canonical_json`), else the list's
    serializer dumps every bar in one call, the same dicts (tests/unit/test_contracts.py holds the bytes equal;
    bench/bench_decision_path.py times it beside the per-bar dump it replaced).
    """
    prices = list(zip(*map(_PRICES, bars), strict=True)) or [(), (), (), (), ()]
    canonical = _plain_canonical_json([bar.time for bar in bars], *prices)
    if canonical is None:
        dumped = bar_list_adapter().dump_python(list(bars), mode="json")
        canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def digest_fields(
    times: Sequence[datetime],
    opens: Sequence[float],
    highs: Sequence[float],
    lows: Sequence[float],
    closes: Sequence[float],
    volumes: Sequence[float],
) -> str:
    """:func:`digest_bars` of the bars these columns hold (bar ``i`` at index ``i`` of each), as parsed."""
    canonical = _plain_canonical_json(times, opens, highs, lows, closes, volumes)
    if canonical is not None:
        return hashlib.sha256(canonical.encode()).hexdigest()
    fields = zip(times, opens, highs, lows, closes, volumes, strict=True)
    return digest_bars([BarModel.model_construct(**dict(zip(_BAR_NAMES, row, strict=True))) for row in fields])


def _plain_canonical_json(
    times: Sequence[datetime],
    opens: Sequence[float],
    highs: Sequence[float],
    lows: Sequence[float],
    closes: Sequence[float],
    volumes: Sequence[float],
) -> str | None:
    """The canonical JSON of bars whose prices are all finite floats and whose times are all datetimes, written
    directly (about half the serializer's and json.dumps' time: bench/bench_decision_path.py, "(c) ... digest_bars");
    None for any other bars, which the serializer writes. For such bars the text is the same, byte for byte: the
    times are the serializer's own text of them (a list of datetimes dumped in one call: digits, T, :, ., Z and
    offsets, nothing JSON escapes), json.dumps writes a finite float as its repr, and the keys sorted are close,
    high, low, open, time, volume (tests/unit/test_contracts.py compares the two over real and arbitrary bars)."""
    flat = list(chain(closes, highs, lows, opens, volumes))
    if not (
        all(map(_datetime_type, map(type, times)))
        and all(map(_float_type, map(type, flat)))
        and all(map(isfinite, flat))
    ):
        return None
    iso = _time_list_adapter().dump_python(list(times), mode="json")
    return "[" + ",".join(map(_canonical_bar, closes, highs, lows, opens, iso, volumes)) + "]"


_float_type = partial(operator.is_, float)  # type(x) is float: no int, no bool, no subclass
_datetime_type = partial(operator.is_, datetime)


@cache
def _time_list_adapter() -> TypeAdapter[list[datetime]]:
    return TypeAdapter(list[datetime])


def _canonical_bar(close: float, high: float, low: float, open_: float, time: str, volume: float) -> str:
    return f'{{"close":{close!r},"high":{high!r},"low":{low!r},"open":{open_!r},"time":"{time}","volume":{volume!r}}}'


@cache
def bar_list_adapter() -> TypeAdapter[list[BarModel]]:
    return TypeAdapter(list[BarModel])  # built on first use: most Lambdas never digest bars


# --- CheckStaleness (its result lands at $.staleness) ------------------------------------------------

CheckStalenessInput = MarketData


class CheckStalenessResult(Contract):
    stale: bool = Field(description="True when the data must not reach a model; ``code`` says which rule")
    code: GateCode
    reason: str = Field(description="a refusal reads '<code>: <detail>' ('stale data: ...' for stale): the HOLD's")
    bar_count: int = Field(ge=0)
    last_bar_time: UtcDatetime | None
    age_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None
    threshold_seconds: Annotated[int, Field(gt=0)] | None
    checked_at: UtcDatetime


# --- DetectRegime ------------------------------------------------------------------------------------


class DetectRegimeInput(MarketData):
    staleness: CheckStalenessResult

    @model_validator(mode="after")
    def _fresh_only(self) -> DetectRegimeInput:
        if self.staleness.stale or self.staleness.code is not GateCode.FRESH:
            raise ValueError(f"staleness: stale data must never reach a model (the gate said {self.staleness.code})")
        return self


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class RegimeResult(Contract):
    """The regime posterior at the decision's bar, and over the bars the meta-controller rolls through."""

    available: bool = Field(description="False when no regime model could be used; ``reason`` says why")
    reason: str = Field(default="", max_length=1000)
    model_version: str | None = Field(default=None, max_length=64)
    asset_class: str | None = None
    label: str | None = Field(default=None, max_length=64, description="the most probable regime")
    probabilities: dict[str, Probability] = Field(default_factory=dict, description="posterior by regime label")
    features: dict[str, FiniteFloat] = Field(default_factory=dict, description="the features at the decision's bar")
    path_features: list[list[FiniteFloat]] = Field(
        default_factory=list, max_length=500, description="feature rows of the last bars, oldest first"
    )
    path_posteriors: list[list[Probability]] = Field(
        default_factory=list, max_length=500, description="posterior rows of the same bars (label order)"
    )
    other: RegimeResult | None = Field(
        default=None, description="an experiment's other arm: the same bars through that version's mixture"
    )

    @model_validator(mode="after")
    def _consistent(self) -> RegimeResult:
        if self.available and (self.label is None or not self.probabilities or not self.path_posteriors):
            raise ValueError("an available regime needs a label, probabilities and a path")
        if len(self.path_features) != len(self.path_posteriors):
            raise ValueError("path_features and path_posteriors must cover the same bars")
        return self


# --- Inference endpoint (InferDecision -> SageMaker POST /invocations) -------------------------------


class BarsSummary(Contract):
    """What the LLM reads about the bars: the last close and how the series moved (no raw arrays)."""

    bars: int = Field(ge=1)
    first_time: UtcDatetime
    last_time: UtcDatetime
    last_close: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    change_pct: FiniteFloat = Field(description="last close against the first, in percent")
    high: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    low: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class InferenceInstance(Contract):
    """One decision to infer: the strategies' scores, the regime path the RL voter rolls over, a summary."""

    asset: Symbol
    timeframe: Timeframe
    as_of: UtcDatetime
    scores: dict[str, Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]] = Field(min_length=1)
    regime_label: str | None = Field(default=None, max_length=64)
    regime_probabilities: dict[str, Probability] = Field(default_factory=dict)
    regime_model_version: str | None = Field(
        default=None, max_length=64, description="the bundle whose mixture made the path; must be the endpoint's"
    )
    features: dict[str, FiniteFloat] = Field(default_factory=dict)
    path_features: list[list[FiniteFloat]] = Field(min_length=1, max_length=500)
    path_posteriors: list[list[Probability]] = Field(min_length=1, max_length=500)
    summary: BarsSummary
    entry_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.15
    model_version: ModelVersion | None = Field(
        default=None, description="the bundle to serve this instance with; None: the one the endpoint loaded"
    )
    llm_vote_from: int | None = Field(
        default=None,
        ge=0,
        description="an experiment's other arm: reuse the LLM vote of this earlier instance (the same asset and "
        "bars) instead of asking the LLM again; the LLM is not what the experiment compares",
    )


class InferenceRequest(Contract):
    instances: list[InferenceInstance] = Field(min_length=1, max_length=256)
    llm: bool = Field(default=True, description="False: the RL voter alone (the latency-critical path)")

    @model_validator(mode="after")
    def _llm_votes_come_from_earlier_instances(self) -> InferenceRequest:
        for index, inst in enumerate(self.instances):
            if inst.llm_vote_from is not None and inst.llm_vote_from >= index:
                raise ValueError(f"instances.{index}.llm_vote_from must name an earlier instance")
        return self


class VoterOutput(Contract):
    """One voter's say: its action and confidence, or why it abstained; which model; how long it took."""

    voter: Literal["rl", "llm"]
    status: Literal["voted", "abstained", "unavailable", "skipped"]
    action: Action | None = None
    confidence: Probability | None = None
    reasoning: str = Field(default="", max_length=2000)
    model: str = Field(default="", max_length=128)
    model_version: str = Field(default="", max_length=64)
    latency_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    weights: dict[str, Probability] = Field(default_factory=dict)


class InferencePrediction(Contract):
    action: Action
    confidence: Probability
    reason: str = Field(min_length=1, max_length=2000)
    rule: str = Field(description="which branch of the ensemble rule decided")
    voters: list[VoterOutput]


class InferenceResponse(Contract):
    predictions: list[InferencePrediction]
    model_version: str
    device: str = Field(description="cpu, or the GPU the models run on")


# --- Decide ------------------------------------------------------------------------------------------


class DecideInput(DetectRegimeInput):
    regime: RegimeResult | None = Field(default=None, description="DetectRegime's result (at $.regime)")


# --- RecordDecision ----------------------------------------------------------------------------------


class RiskAssessment(Contract):
    """The risk gate's verdict on a BUY/SELL: the approved size, or why it was blocked or reduced."""

    approved: bool
    side: Literal["BUY", "SELL"] | None
    quantity: Decimal = Field(ge=0, description="base units, rounded to the venue increment; 0 when blocked")
    reasons: list[str] = Field(default_factory=list, description="machine-readable: position_cap, var_limit, ...")
    detail: dict[str, str] = Field(default_factory=dict)
    broker: str
    equity: Decimal | None = None
    original_action: Action
    original_confidence: Probability | None = Field(
        default=None, description="the model's confidence before the gate (a block records HOLD at 1.0)"
    )


class ArmOutput(Contract):
    """One arm's model output for a decision an experiment covered, before the risk gate."""

    model_version: ModelVersion
    action: Action | None = Field(description="None when the arm could not decide (``reason`` says why)")
    confidence: Probability | None = None
    latency_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0, description="the arm's RL voter time at the endpoint (its version's batched rollout)"
    )
    reason: str = Field(default="", max_length=500)


class DecisionRecord(Contract):
    """A decision, from the model (fresh data) or from the staleness gate (HOLD)."""

    kind: Literal["decision"] = "decision"
    cycle_id: CycleId
    as_of: UtcDatetime
    timeframe: Timeframe
    asset: Symbol
    asset_class: AssetClass | None = Field(
        default=None, description="the universe file's class, carried to the venue's product rules; None: the table's"
    )
    execution_id: str | None = None
    bar_time: UtcDatetime | None
    action: Action
    confidence: Probability
    stale: bool
    reason: str = Field(min_length=1, max_length=2000)
    data_age_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None
    staleness_threshold_seconds: int | None
    model: str = Field(min_length=1, max_length=64)
    model_version: str = Field(min_length=1, max_length=64)
    signals: dict[str, Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]] = Field(default_factory=dict)
    source: DataSource
    input_sha256: str = Field(pattern=SHA256_PATTERN)
    regime: str | None = Field(default=None, max_length=64, description="market regime, once detected")
    regime_probabilities: dict[str, Probability] = Field(default_factory=dict, description="posterior by regime")
    weights: dict[str, Probability] = Field(
        default_factory=dict, description="the meta-controller's weight per strategy option (sums to 1)"
    )
    size: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        default=None, description="position size approved by the risk gate (base units)"
    )
    risk: RiskAssessment | None = Field(default=None, description="the risk gate's verdict on a BUY/SELL")
    voters: list[VoterOutput] = Field(default_factory=list, description="the inference endpoint's voters")
    bar_close: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None, description="the decided bar's close (the comparison views' next-bar return)"
    )
    experiment_id: ExperimentId | None = Field(default=None, description="the experiment covering the asset")
    arm: ArmName | None = Field(default=None, description="the experiment's arm whose decision this is")
    arms: dict[ArmName, ArmOutput] = Field(
        default_factory=dict, description="both arms' outputs, when an experiment covered the asset"
    )

    def path_latency_ms(self, now: datetime) -> float | None:
        """The decision path's latency at ``now`` (its record): from the fetch's start, less the LLM voter's own
        time (the ``decision_latency_ms`` metric and column); None without a start (a backfill, a replay)."""
        started = self.source.fetch_started_at
        if started is None:
            return None
        llm = sum(v.latency_ms for v in self.voters if v.voter == "llm")
        return round(max(0.0, (now - started).total_seconds() * 1000 - llm), 3)

    @model_validator(mode="after")
    def _experiment_fields_agree(self) -> DecisionRecord:
        if (self.experiment_id is None) != (self.arm is None):
            raise ValueError("experiment_id and arm go together")
        if self.arms and self.experiment_id is None:
            raise ValueError("arms are recorded only for an experiment")
        return self


class GateRiskInput(MarketData):
    """The asset's data with the model's decision (at $.decision), for the risk gate."""

    staleness: CheckStalenessResult
    regime: RegimeResult | None = None
    decision: DecisionRecord


class CycleOpened(Contract):
    """The first state of every execution: register the cycle."""

    kind: Literal["cycle_opened"] = "cycle_opened"
    cycle: Any = Field(description="the raw execution input; read as a CycleHeader by the step")
    execution_id: str


class CycleHeader(BaseModel):
    """What a cycle needs to run at all: an id, and the assets to map over (none: the stage's universe file).

    Everything else is checked per asset, so a bad timeframe or as_of fails each asset with its reason
    instead of failing the execution (see the ASL's Map).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    cycle_id: CycleId
    assets: Annotated[list[Any], Field(min_length=1, max_length=MAX_CYCLE_ASSETS)] | None = None
    timeframe: Annotated[str, Field(max_length=32)] | None = None
    as_of: Any = None

    def as_of_time(self) -> datetime | None:
        try:
            return TypeAdapter(UtcDatetime).validate_python(self.as_of)
        except ValidationError:
            return None

    @model_validator(mode="after")
    def _as_of_in_range(self) -> CycleHeader:
        # A readable as_of that no cycle may decide at (the future, year 1) stops the whole cycle, as the API
        # refuses it; an unreadable one fails each asset with its reason.
        when = self.as_of_time()
        if when is not None:
            check_as_of(when)
        return self


class AssetOutcome(Contract):
    """What became of one asset's record (the Map's per-asset result): stored, deferred to the queue, or lost."""

    asset: Any = Field(default=None, description="as the cycle input gave it (a malformed one too)")
    outcome: Literal["recorded", "deferred", "lost", "unconfirmed"] = Field(
        description="unconfirmed: the Distributed Map child execution that decided it failed (docs/scaling.md)"
    )
    error: str | None = None
    dead_letter_error: str | None = None


class MapRunResults(Contract):
    """A Distributed Map's output with a ResultWriter: its Map Run and the manifest of its result files."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, populate_by_name=True)

    map_run_arn: str = Field(alias="MapRunArn")
    bucket: str = Field(alias="Bucket")
    key: str = Field(alias="Key", description="the manifest.json the ResultWriter wrote")


class CycleClosed(Contract):
    kind: Literal["cycle_closed"] = "cycle_closed"
    cycle_id: CycleId
    execution_id: str
    status: Literal["SUCCEEDED", "FAILED"]
    outcomes: list[AssetOutcome] = Field(default_factory=list, description="one per asset, from the inline Map")
    results: MapRunResults | None = Field(
        default=None, description="the Distributed Map's ResultWriter output: the step reads the outcomes there"
    )
    timeframe: Annotated[str, Field(max_length=32)] | None = Field(
        default=None, description="the cycle's timeframe as it opened (the cycles metric's dimension)"
    )

    def lost(self) -> list[AssetOutcome]:
        return [o for o in self.outcomes if o.outcome == "lost"]

    def unconfirmed(self) -> list[AssetOutcome]:
        return [o for o in self.outcomes if o.outcome == "unconfirmed"]


MAX_CAUSE = 32768
LABEL_LIMITS = {"cycle_id": 256, "as_of": 64, "timeframe": 32, "asset": 64}


def _label(text: str, limit: int) -> str:
    """A printable label of at most ``limit`` characters that still tells different originals apart."""
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:10]
    readable = "".join(c if c.isprintable() else "?" for c in text)
    return f"{readable[: max(0, limit - 14)]}~{digest}" if len(readable) > limit - 14 else f"{readable}~{digest}"


FailedStep = Literal["fetch", "staleness", "regime", "infer", "gate", "execute", "batch"]


class FailureRecord(Contract):
    """An asset (or a whole cycle) that could not be decided, with the error that stopped it.

    Fields are free text on purpose: the failure may be that they were malformed.
    """

    kind: Literal["failure"] = "failure"
    cycle_id: Annotated[str, Field(max_length=LABEL_LIMITS["cycle_id"])] | None = None
    as_of: Annotated[str, Field(max_length=LABEL_LIMITS["as_of"])] | None = None
    timeframe: Annotated[str, Field(max_length=LABEL_LIMITS["timeframe"])] | None = None
    asset: Annotated[str, Field(max_length=LABEL_LIMITS["asset"])] | None = None
    execution_id: str | None = None
    error: str = Field(min_length=1, max_length=256, description="Step Functions error name, e.g. InvalidInputError")
    cause: str = Field(default="", max_length=MAX_CAUSE)
    cycle_input: Any = Field(default=None, description="the raw execution input, for cycle-level failures")
    cycle_failure: bool = Field(default=False, description="the whole cycle failed (its input), not one asset")
    item: int | None = Field(default=None, ge=0, description="the asset's position in the cycle's list")
    step: FailedStep | None = Field(default=None, description="the state that failed (None in older records)")
    given: dict[str, str] = Field(
        default_factory=dict, description="fields as given, where they had to be recorded under a sanitized label"
    )

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """Whatever the malformed event carried, the failure can be stored: a label that is not a string or is
        too long is recorded as a short sanitized one (the original is kept in ``given``, and in the message);
        a missing or overlong error name or cause is recorded as what can be kept of it."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = dict(data.get("given") or {})
        for name, limit in LABEL_LIMITS.items():
            value = data.get(name)
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(value, default=str)  # a number or a list: as text
            if len(text) <= limit and text.isprintable():
                data[name] = text
            else:
                given[name] = text[:1000]
                data[name] = _label(text, limit)
        if data.get("asset") is None and isinstance(data.get("item"), int) and "asset" in data:
            given["asset"] = "null"  # two null assets of one cycle are two failures: told apart by position
            data["asset"] = f"(null, item {data['item']})"
        error = data.get("error")
        if not isinstance(error, str) or not 0 < len(error) <= 256:
            data["error"] = "UnknownError" if not error else _label(str(error), 256)
        cause = data.get("cause")
        if cause is not None and not isinstance(cause, str):
            data["cause"] = json.dumps(cause, default=str)
        if isinstance(data.get("cause"), str) and len(data["cause"]) > MAX_CAUSE:
            data["cause"] = data["cause"][: MAX_CAUSE - 40] + f" ... [{len(data['cause'])} characters in all]"
        if given:
            data["given"] = given
        return data


# --- a batch of the universe (one child execution of the Distributed Map) -------------------------------

AssetRecord = Annotated[DecisionRecord | FailureRecord, Field(discriminator="kind")]


class UniverseItem(Contract):
    """One row of a cycle's universe snapshot (written by "Open the cycle"), as the Distributed Map reads it."""

    asset: Any = Field(description="as the input or the universe file gave it: a malformed one fails alone")
    asset_class: AssetClass | None = Field(default=None, description="None: the built-in table's class")
    venue: str | None = Field(default=None, max_length=32)
    item: int = Field(ge=0, description="the asset's position in the cycle's universe")


class BatchContext(Contract):
    """The ItemBatcher's BatchInput: what every asset of the batch shares. Fields are raw on purpose: a bad
    timeframe or as_of fails each asset with its reason, as on the inline Map."""

    cycle_id: Any
    as_of: Any = None
    timeframe: Any = None
    execution_id: str | None = None
    models: CycleModels | None = None


class DecideBatchInput(Contract):
    """A child execution's input, exactly as the ItemBatcher builds it: ``{"Items": [...], "BatchInput": {...}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, populate_by_name=True)

    items: list[UniverseItem] = Field(alias="Items", min_length=1, max_length=MAX_BATCH_ASSETS)
    batch: BatchContext = Field(alias="BatchInput")


class DecideBatchResult(Contract):
    """One record per asset of the batch, in the batch's order: a decision (fresh, a HOLD on stale data, or the
    risk gate's verdict) or the asset's failure naming the step that failed."""

    records: list[AssetRecord] = Field(min_length=1, max_length=MAX_BATCH_ASSETS)


class RecordBatch(Contract):
    """RecordDecision for a batch: every record stored in one transaction."""

    kind: Literal["batch"] = "batch"
    records: list[AssetRecord] = Field(min_length=1, max_length=MAX_BATCH_ASSETS)


Record = DecisionRecord | FailureRecord | CycleOpened | CycleClosed | RecordBatch
RecordDecisionInput = Annotated[Record, Field(discriminator="kind")]


@cache
def _record_adapter() -> TypeAdapter[Record]:
    return TypeAdapter(RecordDecisionInput)  # built on first use, not at import (docs: bench_cold_start --profile)


def parse_record(event: Any) -> Record:
    """Validate a RecordDecision payload (decision, failure, cycle opened/closed), told apart by ``kind``."""
    return parse(_record_adapter(), event, name="RecordDecisionInput")


class UniverseSnapshot(Contract):
    """Where "Open the cycle" wrote the cycle's universe (what the Distributed Map's ItemReader reads)."""

    bucket: str
    key: str
    count: int = Field(ge=1, le=MAX_CYCLE_ASSETS)
    source: str = Field(description="where the assets came from: the input, the universe file's URI, or the default")


class RecordDecisionResult(Contract):
    kind: Literal["decision", "failure", "cycle_opened", "cycle_closed"]
    execute: bool = Field(default=False, description="an approved BUY/SELL: the state machine places its order")
    id: int | None = Field(description="row id of the decision or failure; None for cycle records")
    created: bool = Field(description="False when this exact record was already stored (a retried task)")
    cycle_id: str | None
    asset: str | None
    action: Action | None = None
    error: str | None = None
    cycle_status: Literal["RUNNING", "SKIPPED"] | None = Field(
        default=None, description="cycle_opened: SKIPPED when another cycle of its stage and timeframe still runs"
    )
    reason: str = Field(default="", description="why the cycle was skipped")
    timeframe: str | None = Field(default=None, description="cycle records: the cycle's timeframe as given")
    models: CycleModels | None = Field(default=None, description="cycle_opened: the versions the cycle serves")
    mode: Literal["inline", "distributed"] | None = Field(
        default=None, description="cycle_opened: the Map the cycle runs on (docs/scaling.md)"
    )
    assets: list[Any] | None = Field(default=None, description="cycle_opened, inline: the assets, as given")
    universe: UniverseSnapshot | None = Field(default=None, description="cycle_opened, distributed: the snapshot")


class ExecuteOrderInput(DecisionRecord):
    """A recorded decision the risk gate approved (at $), with what RecordDecision returned (at $.recorded)."""

    recorded: RecordDecisionResult


class RecordBatchResult(Contract):
    """What RecordDecision returns for a batch: each asset's outcome, and the approved orders to place."""

    kind: Literal["batch"] = "batch"
    outcomes: list[AssetOutcome]
    orders: list[ExecuteOrderInput] = Field(description="each approved BUY/SELL with its record, for Execute order")
    results: list[RecordDecisionResult] = Field(description="what storing each record returned, in order")


class ExecuteOrderResult(Contract):
    client_order_id: str
    venue: str
    status: str
    quantity: Decimal
    decision_id: int
    created: bool = Field(description="False when a retried task found the order already placed")
