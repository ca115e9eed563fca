"""Scenario files: reading them (every format error names file, line or row, and field), serving them as a
provider, and `ffe run --bars` refusing a bad file with one line and exit code 2 before anything starts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ffe.adapters.scenario import ScenarioProvider, load_scenario, parse_scenario
from ffe.cli import main
from ffe.contracts import AssetTask
from ffe.domain.errors import InvalidInputError, PermanentError
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.local.runner import DEFAULT_AS_OF, LocalState
from ffe.settings import MarketDataSettings, get_settings
from ffe.steps.fetch import fetch_market_data
from tests.conftest import ROOT

HEADER = "asset,timeframe,time,open,high,low,close,volume"
T0 = datetime(2020, 1, 15, 11, 45, tzinfo=UTC)


def csv_rows(asset: str = "BTCUSD", timeframe: str = "5m", n: int = 3, start: datetime = T0) -> list[str]:
    step = Timeframe(timeframe).duration
    return [f"{asset},{timeframe},{(start + i * step).isoformat()},100,101,99,100.5,7" for i in range(n)]


def csv_file(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def test_csv_and_json_give_the_same_bars_and_json_carries_as_of() -> None:
    rows = csv_rows("BTCUSD") + csv_rows("ETHUSD")
    from_csv = parse_scenario({"s.csv": csv_file(*rows)}, name="s.csv")
    records = [dict(zip(HEADER.split(","), r.split(","), strict=True)) for r in rows]
    document = {"as_of": "2020-01-15T12:14:00+00:00", "bars": records}
    from_json = parse_scenario({"s.json": json.dumps(document).encode()}, name="s.json")
    assert from_csv.bars == from_json.bars and from_csv.assets == ["BTCUSD", "ETHUSD"]
    assert from_csv.timeframe == Timeframe.M5 and from_csv.as_of is None
    assert from_json.as_of == datetime(2020, 1, 15, 12, 14, tzinfo=UTC)
    assert from_csv.bars["BTCUSD"][0] == Bar(T0, 100.0, 101.0, 99.0, 100.5, 7.0)
    assert from_json.cycle_input(from_json.as_of, "c-1") == {
        "cycle_id": "c-1",
        "as_of": "2020-01-15T12:14:00Z",
        "timeframe": "5m",
        "assets": ["BTCUSD", "ETHUSD"],
    }


prices = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(prices, prices, st.floats(0, 1e12)), min_size=1, max_size=20))
def test_any_bar_written_as_csv_reads_back_exactly(values: list[tuple[float, float, float]]) -> None:
    bars = [Bar(T0 + i * timedelta(hours=1), a, max(a, b), min(a, b), b, v) for i, (a, b, v) in enumerate(values)]
    rows = [f"SPY,1h,{b.time.isoformat()},{b.open!r},{b.high!r},{b.low!r},{b.close!r},{b.volume!r}" for b in bars]
    assert parse_scenario({"spy.csv": csv_file(*rows)}, name="spy.csv").bars == {"SPY": tuple(bars)}


CLASSED = b"asset,timeframe,time,open,high,low,close,volume,asset_class\n"


def test_an_asset_class_column_classes_a_symbol_outside_the_table_and_may_be_left_empty() -> None:
    rows = [
        b"SOLUSD,1h,2020-01-15T12:00:00Z,1,2,0.5,1,,crypto",
        b"SOLUSD,1h,2020-01-15T13:00:00Z,1,2,0.5,1,,",  # a row may leave it out once another gave it
        b"BTCUSD,1h,2020-01-15T12:00:00Z,1,2,0.5,1,,crypto",  # the table's own class, restated
        b"ETHUSD,1h,2020-01-15T12:00:00Z,1,2,0.5,1,,",
    ]
    scenario = parse_scenario({"s.csv": CLASSED + b"\n".join(rows) + b"\n"}, name="s.csv")
    assert scenario.classes == {"SOLUSD": AssetClass.CRYPTO, "BTCUSD": AssetClass.CRYPTO}
    assert len(scenario.bars["SOLUSD"]) == 2 and "ETHUSD" not in scenario.classes


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "s.csv",
            csv_file(*csv_rows(), "BTCUSD,5m,2020-01-15T12:00:00Z,100,101,99,abc,7"),
            "s.csv line 5: close: Input should be a valid number, unable to parse string as a number (got 'abc')",
        ),
        (
            "s.csv",
            csv_file("BTCUSD,5m,2020-01-15T12:00:00,100,101,99,100,7"),
            "s.csv line 2: time: '2020-01-15T12:00:00' has no timezone; write UTC",
        ),
        (
            "s.csv",
            csv_file("BTCUSD,5m,15/01/2020 12:00,100,101,99,100,7"),
            "s.csv line 2: time: '15/01/2020 12:00' is not an ISO-8601 time",
        ),
        (
            "s.csv",
            csv_file("BTCUSD,2h,2020-01-15T12:00:00Z,100,101,99,100,7"),
            "s.csv line 2: timeframe: Input should be '1m', '5m'",
        ),
        ("s.csv", csv_file("btc-usd,5m,2020-01-15T12:00:00Z,100,101,99,100,7"), "s.csv line 2: asset: String should"),
        ("s.csv", csv_file("BTCUSD,5m,2020-01-15T12:00:00Z,100,101,99,,7"), "s.csv line 2: close: Field required"),
        (
            "s.csv",
            csv_file(*csv_rows(), "BTCUSD,5m,2020-01-15T12:00:00Z,100,101,99,100"),
            "s.csv line 5: 7 fields, the header has 8",
        ),
        ("s.csv", b"asset,timeframe,time,open,high,low\n", "s.csv line 1: missing column 'close'"),
        ("s.csv", b"asset,timeframe,time,open,high,low,close,vwap\n", "s.csv line 1: unknown column 'vwap'"),
        ("s.csv", csv_file(), "s.csv: no bars"),
        (
            "s.csv",
            csv_file(*csv_rows(), *csv_rows(timeframe="1h", start=T0 + timedelta(hours=1))),
            "s.csv line 5: timeframe 1h differs from 5m (s.csv line 2); one run takes one timeframe",
        ),
        ("s.csv", b"\xff\xfe" + csv_file(*csv_rows()), "s.csv: not UTF-8 text"),
        ("s.json", b'{"bars": [\n  {"asset": "BTCUSD",}\n]}', "s.json line 2 column 22: not valid JSON"),
        (
            "s.json",
            json.dumps(
                {
                    "bars": [
                        {
                            "asset": "BTCUSD",
                            "timeframe": "5m",
                            "time": "2020-01-15T12:00:00Z",
                            "open": 1,
                            "high": 2,
                            "low": 0.5,
                        }
                    ]
                }
            ).encode(),
            "s.json bars[0]: close: Field required",
        ),
        (
            "s.json",
            json.dumps(
                {
                    "bars": [
                        {
                            "asset": "BTCUSD",
                            "timeframe": "5m",
                            "time": "2020-01-15T12:00:00Z",
                            "open": True,
                            "high": 2,
                            "low": 0.5,
                            "close": 1,
                        }
                    ]
                }
            ).encode(),
            "s.json bars[0]: open: must be a number, not true",
        ),
        ("s.csv", csv_file('BTCUSD,5m,"' + "9" * 200_000), "s.csv line 2: not readable as CSV (field larger than"),
        ("s.json", b'{"asof": "2020-01-15T12:00:00Z", "bars": []}', "s.json: asof: Extra inputs are not permitted"),
        ("s.json", b'{"as_of": "2020-01-15 12:00", "bars": []}', "s.json: as_of: '2020-01-15 12:00' has no timezone"),
        (
            "s.json",
            b'[{"asset": "BTCUSD"}]',
            's.json: expected an object {"as_of": ..., "bars": [...]}, not a JSON list',
        ),
        ("s.txt", b"anything", "s.txt: unknown format '.txt'; use .csv or .json"),
        (
            "s.csv",
            CLASSED + b"SOLUSD,1h,2020-01-15T12:00:00Z,1,2,0.5,1,,gold\n",
            "s.csv line 2: asset_class: Input should be 'crypto', 'fx' or 'equity'",
        ),
        (
            "s.csv",
            CLASSED
            + b"SOLUSD,1h,2020-01-15T12:00:00Z,1,2,0.5,1,,crypto\nSOLUSD,1h,2020-01-15T13:00:00Z,1,2,0.5,1,,fx\n",
            "s.csv line 3: asset_class fx for SOLUSD, an earlier row gave crypto",
        ),
        (
            "s.csv",
            CLASSED + b"BTCUSD,1h,2020-01-15T12:00:00Z,1,2,0.5,1,,equity\n",
            "s.csv line 2: asset_class equity, but BTCUSD is crypto; leave the column empty",
        ),
    ],
)
def test_a_file_that_is_not_a_scenario_is_named_with_its_line_or_row_and_field(
    name: str, content: bytes, message: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_scenario({name: content}, name=name)
    assert str(raised.value).startswith(message), str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_directory_is_one_scenario_of_one_timeframe_with_each_asset_in_one_file(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(csv_file(*csv_rows("BTCUSD")))
    (tmp_path / "b.csv").write_bytes(csv_file(*csv_rows("ETHUSD")))
    (tmp_path / "notes.md").write_text("not a scenario: ignored")
    scenario = load_scenario(tmp_path)
    assert scenario.assets == ["BTCUSD", "ETHUSD"] and set(scenario.files) == {"a.csv", "b.csv"}
    assert dict(scenario.sources) == {"BTCUSD": "a.csv", "ETHUSD": "b.csv"}

    (tmp_path / "c.csv").write_bytes(csv_file(*csv_rows("SPY", "1h")))
    with pytest.raises(InvalidInputError, match=r"c\.csv line 2: timeframe 1h differs from 5m \(.*a\.csv line 2\)"):
        load_scenario(tmp_path)
    (tmp_path / "c.csv").write_bytes(csv_file(*csv_rows("BTCUSD", start=T0 + timedelta(hours=1))))
    with pytest.raises(InvalidInputError, match=r"c\.csv line 2: BTCUSD also has bars in a\.csv"):
        load_scenario(tmp_path)


def test_json_files_of_one_directory_must_agree_on_as_of(tmp_path: Path) -> None:
    for name, as_of, asset in (
        ("a.json", "2020-01-15T12:14:00Z", "BTCUSD"),
        ("b.json", "2020-01-15T12:15:00Z", "ETHUSD"),
    ):
        rows = [dict(zip(HEADER.split(","), r.split(","), strict=True)) for r in csv_rows(asset)]
        (tmp_path / name).write_text(json.dumps({"as_of": as_of, "bars": rows}))
    with pytest.raises(
        InvalidInputError, match=r"b\.json: as_of 2020-01-15T12:15:00Z differs from 2020-01-15T12:14:00Z"
    ):
        load_scenario(tmp_path)


def test_a_missing_path_or_an_empty_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"nope\.csv: no such file or directory"):
        load_scenario(tmp_path / "nope.csv")
    with pytest.raises(InvalidInputError, match=r"no \.csv or \.json scenario files in this directory"):
        load_scenario(tmp_path)


# --- the provider --------------------------------------------------------------------------------------


def provider(*rows: str) -> ScenarioProvider:
    return ScenarioProvider(parse_scenario({"what-if.csv": csv_file(*rows)}, name="what-if.csv"))


def test_serves_only_bars_closed_by_as_of_judged_against_as_of() -> None:
    scenario = provider(*csv_rows(n=10))  # 11:45 ... 12:30, 5m
    series = scenario.fetch("BTCUSD", Timeframe.M5, datetime(2020, 1, 15, 12, 7, tzinfo=UTC), lookback=3)
    assert [b.time.strftime("%H:%M") for b in series.bars] == ["11:50", "11:55", "12:00"]  # 12:05 is still forming
    assert series.simulated_clock and not series.synthetic and series.dataset == "scenario:what-if.csv"


def test_asks_for_another_timeframe_or_asset_are_refused_and_say_why() -> None:
    scenario = provider(*csv_rows(n=3))
    with pytest.raises(InvalidInputError, match="has 5m bars, not 1h"):
        scenario.fetch("BTCUSD", Timeframe.H1, T0 + timedelta(hours=2), 120)
    with pytest.raises(InvalidInputError, match=r"has no bars for ETHUSD \(BTCUSD\)"):
        scenario.fetch("ETHUSD", Timeframe.M5, T0 + timedelta(hours=2), 120)
    # any symbol the scenario holds is served: its class comes from the universe file, or the built-in table, and
    # FetchMarketData refuses an asset with neither (ffe.steps.fetch) before it asks any provider
    served = provider(*csv_rows("XAUUSD")).fetch("XAUUSD", Timeframe.M5, T0 + timedelta(hours=2), 120)
    assert len(served.bars) == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({6: "nan"}, "close is not a finite number"),
        ({3: "-100"}, "open must be positive"),
        ({4: "98"}, "high/low do not bracket open/close"),
        ({2: (T0 + timedelta(minutes=5)).isoformat()}, "duplicated timestamp"),
        ({2: T0.isoformat()}, "out of order"),
    ],
)
def test_malformed_bars_are_read_but_fail_fetch_validation_like_any_providers(
    change: dict[int, str], message: str
) -> None:
    rows = csv_rows(n=3)
    cells = rows[-1].split(",")
    for index, value in change.items():
        cells[index] = value
    task = AssetTask(cycle_id="c", as_of=T0 + timedelta(hours=1), timeframe=Timeframe.M5, asset="BTCUSD")
    with pytest.raises(InvalidInputError, match=message):
        fetch_market_data(task, provider(*rows[:-1], ",".join(cells)), lookback=120)


def test_the_scenario_provider_needs_its_files_and_the_template_cannot_select_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MARKET_DATA_PROVIDER", "scenario")
    with pytest.raises(PermanentError, match="MARKET_DATA_PROVIDER=scenario needs SCENARIO_URI"):
        get_settings(MarketDataSettings)
    assert MarketDataSettings(market_data_provider="scenario", scenario_uri="s3://b/p/").scenario_uri == "s3://b/p/"

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)  # SafeLoader + tags
    assert "scenario" not in template["Parameters"]["MarketDataProvider"]["AllowedValues"]
    assert "SCENARIO_URI" not in (ROOT / "template.yaml").read_text()


# --- `ffe run --bars` refusing bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], 'examples/daily: no as_of; pass --as-of, or give "as_of" in a JSON scenario file'),
        (["--as-of", "2019-06-15T00:05:00Z", "--timeframe", "1h"], "--timeframe 1h, but examples/daily has 1d bars"),
        (
            ["--as-of", "2019-06-15T00:05:00Z", "--provider", "live"],
            "--bars takes the place of --input and --provider: use one of them",
        ),
    ],
)
def test_ffe_run_bars_refuses_a_bad_combination_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, extra: list[str], message: str
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["--state-dir", str(tmp_path / "state"), "run", "--bars", "examples/daily", *extra]) == 2
    err = capsys.readouterr().err
    assert err == f"ffe run: error: {message}\n"
    assert not (tmp_path / "state").exists()  # nothing started, nothing written


def test_ffe_run_bars_names_the_bad_row_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "what-if.csv"
    bad.write_bytes(csv_file(*csv_rows(), "BTCUSD,5m,2020-01-15T12:00:00Z,100,101,99,1O0.5,7"))
    assert (
        main(["--state-dir", str(tmp_path / "state"), "run", "--bars", str(bad), "--as-of", "2020-01-15T12:14Z"]) == 2
    )
    err = capsys.readouterr().err
    assert (
        err.startswith(f"ffe run: error: {bad} line 5: close: Input should be a valid number") and err.count("\n") == 1
    )
    assert "Traceback" not in err and not (tmp_path / "state").exists()
    assert LocalState(tmp_path / "state").next_as_of("1h") == DEFAULT_AS_OF
