import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ffe import contracts
from ffe.adapters.replay import ReplayProvider, datasets, load_bars
from ffe.contracts import (
    AssetTask,
    BarModel,
    CycleInput,
    DataSource,
    DecisionRecord,
    FailureRecord,
    MarketData,
    digest_bars,
    parse,
    parse_record,
    seal_bars,
)
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Timeframe

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
    del raw["assets"]
    with pytest.raises(InvalidInputError, match="assets: Field required"):
        parse(CycleInput, raw)


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


def _market_data() -> dict:
    """FetchMarketData's output as the next state gets it: sealed, through JSON."""
    bars = [BarModel.from_domain(b) for b in ReplayProvider().fetch("BTCUSD", Timeframe.H1, AS_OF, 120).bars]
    digest = digest_bars(bars)
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


def _bump(bar: dict, field: str) -> None:
    bar[field] += 0.01


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda d: d["bars"].pop(0), "bars_sha256 does not match"),  # truncated
        (lambda d: _bump(d["bars"][5], "close"), "bars_sha256 does not match"),
        (lambda d: _bump(d["bars"][119], "volume"), "bars_sha256 does not match"),
        (lambda d: d.update(bars_sha256="0" * 64), "bars_sha256 does not match"),
        (lambda d: d.update(as_of="2019-06-15T11:30:00Z"), r"bar 119 .*still forming"),
        (lambda d: d["bars"][3].update(low=-1.0), "bar 3 .*low must be positive"),
        (lambda d: d.update(bars_seal="0" * 32), None),  # the seal is wrong, the bars are sound: checked in full
        (lambda d: d.pop("bars_seal"), None),  # as before the seal: checked in full
        (lambda d: d["bars"][7].update(time=d["bars"][7]["time"].replace("Z", "+00:00")), None),  # the same instant
        (lambda d: d.update(bars_seal="not a seal"), "bars_seal: String should match pattern"),
    ],
    ids=["truncated", "price", "volume", "digest", "as_of", "negative", "seal", "unsealed", "same-instant", "garbage"],
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
    assert data.domain_bars() == [b.to_domain() for b in data.bars] and len(data.bars) == 120
