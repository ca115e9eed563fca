import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ffe import contracts
from ffe.adapters.replay import ReplayProvider, datasets, load_bars
from ffe.contracts import (
    MAX_CYCLE_ASSETS,
    AssetTask,
    BarColumns,
    BarModel,
    CycleInput,
    DataSource,
    DecisionRecord,
    FailureRecord,
    MarketData,
    digest_bars,
    digest_fields,
    parse,
    parse_record,
    seal_bars,
)
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Bar, Timeframe, open_time

EVENTS = Path(__file__).resolve().parents[1] / "events"


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_valid_cycle_input_parses_to_utc() -> None:
    cycle = parse(CycleInput, {**event("cycle_input.json"), "as_of": "2019-06-15T14:01:00+02:00"})
    assert cycle.as_of.isoformat() == "2019-06-15T12:01:00+00:00"
    assert cycle.assets == ["BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"]


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"timeframe": "2h"}, "timeframe", "Input should be"),
        ({"as_of": "yesterday"}, "as_of", "valid datetime"),
        ({"as_of": "2019-06-15T12:01:00"}, "as_of", "timezone"),
        ({"assets": []}, "assets", "at least 1"),
        ({"assets": ["BTCUSD", "BTCUSD"]}, "assets", "duplicated assets: BTCUSD"),
        ({"assets": ["btc usd"]}, "assets.0", "pattern"),
        ({"cycle_id": ""}, "cycle_id", "at least 1"),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ],
)
def test_malformed_cycle_input_names_the_field(change: dict, field: str, why: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"invalid CycleInput: .*{field}: .*{why}"):
        parse(CycleInput, {**event("cycle_input.json"), **change})


def test_missing_field_is_named() -> None:
    raw = event("cycle_input.json")
    del raw["timeframe"]
    with pytest.raises(InvalidInputError, match="timeframe: Field required"):
        parse(CycleInput, raw)


def test_a_cycle_without_assets_is_the_universes_and_one_past_the_universe_files_bound_is_refused() -> None:
    raw = event("cycle_input.json")
    del raw["assets"]
    assert parse(CycleInput, raw).assets is None  # "Open the cycle" reads the stage's universe file
    many = [f"A{i:05d}" for i in range(MAX_CYCLE_ASSETS + 1)]
    assert len(parse(CycleInput, {**raw, "assets": many[:-1]}).assets or []) == MAX_CYCLE_ASSETS
    with pytest.raises(InvalidInputError, match="assets: List should have at most 10000 items"):
        parse(CycleInput, {**raw, "assets": many})


def test_non_object_event_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="invalid AssetTask: <event>"):
        parse(AssetTask, ["not", "an", "object"])


def test_record_payload_is_told_apart_by_kind() -> None:
    failure = parse_record({"kind": "failure", "error": "InvalidInputError", "cycle_id": 7, "asset": None})
    assert isinstance(failure, FailureRecord) and failure.cycle_id == "7"
    with pytest.raises(InvalidInputError, match="RecordDecisionInput"):
        parse_record({"kind": "mystery"})


def test_decision_record_rejects_out_of_range_confidence() -> None:
    with pytest.raises(InvalidInputError, match="confidence"):
        parse(DecisionRecord, {"kind": "decision", "confidence": 1.5})


# --- the bars' digest and their check at every boundary -------------------------------------------------------

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)


def _canonical_by_the_serializer(bars: list[BarModel]) -> str:
    """The canonical JSON as the digest defines it: each bar's JSON dump, keys sorted, no spaces."""
    return json.dumps([b.model_dump(mode="json") for b in bars], sort_keys=True, separators=(",", ":"))


def _fields(bars: list[BarModel]) -> list[list[Any]]:
    return [[getattr(bar, name) for bar in bars] for name in ("time", "open", "high", "low", "close", "volume")]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_digest_of_real_bars_is_the_serializers_canonical_json() -> None:
    for asset, dataset in datasets().items():
        bars = [BarModel.from_domain(b) for b in load_bars(dataset.file)[:3000]]
        assert digest_bars(bars) == _sha(_canonical_by_the_serializer(bars)), asset


_ODD = st.sampled_from([0.1, 1e16, 1e-7, 123456789.125, 5e-324, 1.7976931348623157e308, 0.0, -0.0, 2.5, 7])


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])), max_size=8),
    prices=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), _ODD), min_size=40, max_size=40),
)
def test_the_digest_is_the_serializers_canonical_json_for_any_bars(times: list[datetime], prices: list[float]) -> None:
    # microseconds, years before 1000, offsets brought to UTC, NaN and infinities, -0.0 and subnormals
    bars = []
    for i, t in enumerate(times):
        try:
            bars.append(
                BarModel(time=t, **dict(zip(("open", "high", "low", "close", "volume"), prices[5 * i :], strict=False)))
            )
        except ValidationError:  # an instant with no UTC equivalent
            continue
    assert digest_bars(bars) == _sha(_canonical_by_the_serializer(bars))
    assert digest_fields(*_fields(bars)) == digest_bars(bars)  # FetchMarketData's, from the columns


def test_the_digest_of_bars_the_direct_writer_leaves_to_the_serializer_is_the_serializers() -> None:
    # bars built without validation: an int or bool price, a float subclass, a time not in UTC, a naive time
    class Price(float):
        def __repr__(self) -> str:
            return "price"

    odd: list[dict] = [
        {"close": 7},
        {"high": True},
        {"low": Price(2.5)},
        {"time": datetime(2019, 6, 15, 7, tzinfo=timezone(timedelta(hours=-5)))},
        {"time": datetime(2019, 6, 15, 12)},
        {"open": float("nan")},
        {"volume": float("-inf")},
    ]
    plain: dict[str, Any] = {"time": AS_OF, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 0.0}
    for change in odd:
        bars = [BarModel.model_construct(**plain), BarModel.model_construct(**{**plain, **change})]
        assert digest_bars(bars) == _sha(_canonical_by_the_serializer(bars)), change
        assert digest_fields(*_fields(bars)) == digest_bars(bars), change
    assert digest_bars([]) == _sha("[]")


def _market_data() -> dict:
    """FetchMarketData's output as the next state gets it: sealed, through JSON."""
    models = [BarModel.from_domain(b) for b in ReplayProvider().fetch("BTCUSD", Timeframe.H1, AS_OF, 120).bars]
    digest, bars = digest_bars(models), BarColumns.of(models)
    data = MarketData(
        cycle_id="c-1",
        as_of=AS_OF,
        timeframe=Timeframe.H1,
        asset="BTCUSD",
        source=DataSource(provider="replay", dataset="d", synthetic=False, simulated_clock=True),
        bars=bars,
        bars_sha256=digest,
        bars_seal=seal_bars(AS_OF, Timeframe.H1, bars, digest),
    )
    return json.loads(json.dumps(data.model_dump(mode="json")))


def _bump(bars: dict, field: str, i: int) -> None:
    bars[field][i] += 0.01 if field != "time" else 1


def _as_bar_list(bars: dict) -> list[dict]:
    """The columns as the list of bar objects the states handed each other before (still read, as columns)."""
    names = ("open", "high", "low", "close", "volume")
    times = [datetime.fromtimestamp(t, UTC).isoformat() for t in bars["time"]]
    rows = zip(times, zip(*(bars[n] for n in names), strict=True), strict=True)
    return [{"time": t, **dict(zip(names, row, strict=True))} for t, row in rows]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda d: [column.pop(0) for column in d["bars"].values() if column], "bars_sha256 does not match"),
        (lambda d: d["bars"]["close"].pop(), "every column holds one value per bar: time 120, close 119"),
        (lambda d: _bump(d["bars"], "close", 5), "bars_sha256 does not match"),
        (lambda d: _bump(d["bars"], "volume", 119), "bars_sha256 does not match"),
        (lambda d: _bump(d["bars"], "time", 7), "bars_sha256 does not match"),
        (lambda d: d["bars"].update(microsecond=[0] * 120), None),  # the same instants: sealed the same
        (lambda d: d["bars"].update(microsecond=[1] * 120), "bars_sha256 does not match"),
        (lambda d: d.update(bars_sha256="0" * 64), "bars_sha256 does not match"),
        (lambda d: d.update(as_of="2019-06-15T11:30:00Z"), r"bar 119 .*still forming"),
        (lambda d: d["bars"]["low"].__setitem__(3, -1.0), "bar 3 .*low must be positive"),
        (lambda d: d["bars"]["high"].__setitem__(4, "x"), r"bars\.high\.4: Input should be a valid number"),
        (lambda d: d.update(bars_seal="0" * 32), None),  # the seal is wrong, the bars are sound: checked in full
        (lambda d: d.pop("bars_seal"), None),  # as before the seal: checked in full
        (lambda d: d.update(bars=_as_bar_list(d["bars"])), None),  # the list of bars as before: read as columns
        (lambda d: d.update(bars_seal="not a seal"), "bars_seal: String should match pattern"),
    ],
    ids=[
        "truncated",
        "one-column-truncated",
        "price",
        "volume",
        "time",
        "microsecond-zero",
        "microsecond",
        "digest",
        "as_of",
        "negative",
        "not-a-number",
        "seal",
        "unsealed",
        "bar-list",
        "garbage",
    ],
)
def test_every_boundary_refuses_a_tampered_or_truncated_series(tamper, message: str | None) -> None:
    data = _market_data()
    parse(MarketData, data)  # as carried
    tamper(data)
    if message is None:
        parse(MarketData, data)
        return
    with pytest.raises(InvalidInputError, match=message):
        parse(MarketData, data)


def test_a_matching_seal_stands_for_the_full_check_and_only_a_matching_one(monkeypatch) -> None:
    checked: list[int] = []
    full = contracts.validate_series

    def spy(bars: list[BarModel], *rest: object) -> None:
        checked.append(len(bars))
        full(bars, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(contracts, "validate_series", spy)
    data = _market_data()
    parse(MarketData, data)
    assert checked == []  # sealed by the fetch: the seal stands for the check
    parse(MarketData, {**data, "bars_seal": None})
    assert checked == [120]


def test_the_domain_bars_are_the_parsed_bars_as_bars() -> None:
    data = parse(MarketData, _market_data())
    bars = list(ReplayProvider().fetch("BTCUSD", Timeframe.H1, AS_OF, 120).bars)
    assert data.domain_bars() == bars and len(data.bars) == 120 and data.bars[-1] == bars[-1]
    assert [data.bars[i] for i in range(-120, 120)] == bars + bars


def test_the_lazy_bars_read_as_the_domain_bars_building_only_what_is_read(monkeypatch) -> None:
    data = parse(MarketData, _market_data())
    bars = data.domain_bars()
    lazy = data.bars.lazy()
    assert len(lazy) == 120 and bool(lazy) and list(lazy) == bars and list(reversed(lazy)) == bars[::-1]
    assert [lazy[i] for i in range(-120, 120)] == bars + bars and lazy[-3:] == bars[-3:] and lazy[::7] == bars[::7]
    assert not BarColumns.of([]).lazy()
    with pytest.raises(IndexError):
        lazy[120]
    built: list[int] = []
    getitem = BarColumns.__getitem__

    def spy(self: BarColumns, index: int) -> Bar:
        built.append(index)
        return getitem(self, index)

    monkeypatch.setattr(BarColumns, "__getitem__", spy)
    assert lazy[-1] == bars[-1] and next(b for b in lazy if b.time >= bars[2].time) == bars[2]
    assert built == [-1, 0, 1, 2]  # the last bar, then the scan up to the first match: nothing else


def test_a_bar_open_time_read_from_the_columns_is_the_bar_time() -> None:
    columns = BarColumns.of(
        [Bar(datetime(1969, 7, 20, 20, 17, 40, 5, tzinfo=UTC), 1.0, 2.0, 0.5, 1.5), Bar(AS_OF, 1.0, 2.0, 0.5, 1.5)]
    )
    assert [open_time(columns, i) for i in (0, 1, -1, -2)] == [*columns.times(), *reversed(columns.times())]
    assert open_time(columns, 0) == datetime(1969, 7, 20, 20, 17, 40, 5, tzinfo=UTC)
    assert open_time(BarColumns.of([Bar(AS_OF, 1.0, 2.0, 0.5, 1.5)]), -1) == AS_OF
