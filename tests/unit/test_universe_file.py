"""The universe file (ffe.universe_file): CSV and JSON in, the canonical JSON out; every refusal is one
InvalidInputError naming the file, the row and the field; 10,000 rows accepted, 10,001 refused; whatever the
bytes, parse_universe returns entries or raises InvalidInputError, nothing else."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffe.contracts import MAX_CYCLE_ASSETS
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import AssetClass
from ffe.domain.universe import ASSET_CLASSES, DEFAULT_UNIVERSE
from ffe.universe_file import (
    CLASS_VENUES,
    MAX_UNIVERSE_ASSETS,
    MAX_UNIVERSE_BYTES,
    UniverseEntry,
    dump_universe,
    enabled,
    parse_universe,
    universe_key,
)
from tests.conftest import ROOT


def refusal(content: bytes | str, name: str = "u.csv") -> str:
    with pytest.raises(InvalidInputError) as caught:
        parse_universe(content.encode() if isinstance(content, str) else content, name)
    return str(caught.value)


def entry(asset: str, asset_class: str, venue: str | None = None, on: bool = True) -> UniverseEntry:
    fields = {"asset": asset, "class": asset_class, "enabled": on} | ({"venue": venue} if venue else {})
    return UniverseEntry.model_validate(fields)


# --- what is accepted ---


def test_csv_with_the_optional_columns_left_out_takes_the_class_venue_and_enabled() -> None:
    entries = parse_universe(b"asset,class\nBTCUSD,crypto\nEURUSD,fx\nSPY,equity\n", "u.csv")
    assert [e.document() for e in entries] == [
        {"asset": "BTCUSD", "class": "crypto", "venue": "coinbase", "enabled": True},
        {"asset": "EURUSD", "class": "fx", "venue": "oanda", "enabled": True},
        {"asset": "SPY", "class": "equity", "venue": "none", "enabled": True},
    ]


def test_csv_columns_in_any_order_with_bom_crlf_blank_lines_quotes_and_spaces() -> None:
    content = (
        b'\xef\xbb\xbf Enabled , VENUE,class,asset\r\n\r\n"NO",coinbase,crypto,"SOLUSD"\r\n'
        b" , , , \r\nyes,,fx, AUDUSD \r\n1,oanda,fx,EURUSD\r\n0,,crypto,BTCUSD"
    )
    entries = parse_universe(content, "u.csv")
    assert [(e.asset, e.asset_class, e.venue, e.enabled) for e in entries] == [
        ("SOLUSD", AssetClass.CRYPTO, "coinbase", False),
        ("AUDUSD", AssetClass.FX, "oanda", True),
        ("EURUSD", AssetClass.FX, "oanda", True),
        ("BTCUSD", AssetClass.CRYPTO, "coinbase", False),
    ]
    assert [e.asset for e in enabled(entries)] == ["AUDUSD", "EURUSD"]


@pytest.mark.parametrize("word,value", [("true", True), ("TRUE", True), ("Yes", True), ("1", True), ("false", False)])
@pytest.mark.parametrize("more", [("no", False), ("0", False), ("FALSE", False)])
def test_csv_enabled_words(word: str, value: bool, more: tuple[str, bool]) -> None:
    entries = parse_universe(f"asset,class,enabled\nAAA,crypto,{word}\nBBB,fx,{more[0]}\n".encode(), "u.CSV")
    assert [e.enabled for e in entries] == [value, more[1]]


def test_json_array_and_assets_object_are_the_same_universe() -> None:
    items = [{"asset": "BTCUSD", "class": "crypto"}, {"asset": "XAUUSD", "class": "fx", "enabled": False}]
    as_array = parse_universe(json.dumps(items).encode(), "u.json")
    assert parse_universe(json.dumps({"assets": items}).encode(), "u.JSON") == as_array
    assert [e.document() for e in as_array] == [
        {"asset": "BTCUSD", "class": "crypto", "venue": "coinbase", "enabled": True},
        {"asset": "XAUUSD", "class": "fx", "venue": "oanda", "enabled": False},
    ]


def test_an_asset_beyond_the_built_in_table_takes_its_class_from_the_file() -> None:
    assert "SOLUSD" not in ASSET_CLASSES
    (solana,) = parse_universe(b"asset,class\nSOLUSD,equity\n", "u.csv")
    assert (solana.asset_class, solana.venue) == (AssetClass.EQUITY, "none")


def test_the_stored_form_round_trips_and_is_the_canonical_json() -> None:
    entries = [entry("BTCUSD", "crypto"), entry("SPY", "equity", on=False), entry("EURUSD", "fx", "oanda")]
    stored = dump_universe(entries)
    assert json.loads(stored) == [e.document() for e in entries]
    assert list(json.loads(stored)[0]) == ["asset", "class", "venue", "enabled"]
    assert parse_universe(stored, "s3://b/universe/1h.json") == entries


def test_the_example_file_is_the_default_assets_and_a_few_more_one_disabled() -> None:
    entries = parse_universe((ROOT / "examples/universe/crypto-fx.csv").read_bytes(), "crypto-fx.csv")
    assets = [e.asset for e in entries]
    assert set(DEFAULT_UNIVERSE) < set(assets) and "SOLUSD" in assets
    assert [e.asset for e in entries if not e.enabled] and all(e.asset in assets for e in enabled(entries))


def test_the_limit_is_the_cycles() -> None:
    assert MAX_UNIVERSE_ASSETS == MAX_CYCLE_ASSETS == 10_000


def rows(n: int) -> bytes:
    return ("asset,class\n" + "".join(f"A{i:011d},equity\n" for i in range(n))).encode()


def test_exactly_the_limit_is_accepted_and_one_more_refused() -> None:
    assert len(parse_universe(rows(MAX_UNIVERSE_ASSETS), "big.csv")) == 10_000
    assert refusal(rows(MAX_UNIVERSE_ASSETS + 1), "big.csv") == (
        "big.csv: more than 10,000 rows, the universe file's limit (docs/universe.md)"
    )
    items = [{"asset": f"A{i:011d}", "class": "equity"} for i in range(MAX_UNIVERSE_ASSETS + 1)]
    assert len(parse_universe(json.dumps(items[:-1]).encode(), "big.json")) == 10_000
    assert "more than 10,000 rows" in refusal(json.dumps(items), "big.json")


def test_a_full_universe_of_the_longest_symbols_stays_storable() -> None:
    entries = [entry(f"A{i:011d}", "equity", on=False) for i in range(MAX_UNIVERSE_ASSETS)]
    stored = dump_universe(entries)
    assert len(stored) <= MAX_UNIVERSE_BYTES and parse_universe(stored, "u.json") == entries


def test_universe_key() -> None:
    assert universe_key("15m") == "universe/15m.json"
    with pytest.raises(InvalidInputError, match=r"timeframe '2h': one of 1m, 5m, 15m, 30m, 1h, 4h, 1d"):
        universe_key("2h")


# --- every refusal names the file, the row and the field ---


@pytest.mark.parametrize(
    "content,expected",
    [
        ("asset,class\nbtc-usd,crypto\n", "u.csv: row 1 (line 2), asset: 'btc-usd' is not a symbol"),
        ("asset,class\nBTCUSD,crypto\nAB,fx\n", "u.csv: row 2 (line 3), asset: 'AB' is not a symbol"),
        ("asset,class\nSOLUSD,metal\n", "u.csv: row 1 (line 2), class: 'metal' is not a class: crypto, fx, equity"),
        ("asset,class\nSOLUSD,\n", "u.csv: row 1 (line 2), class: '' is not a class"),
        ("asset,class,venue\nSOLUSD,crypto,kraken\n", "u.csv: row 1 (line 2), venue: 'kraken' is not a venue"),
        (
            "asset,class,venue\nSOLUSD,crypto,oanda\n",
            "u.csv: row 1 (line 2), venue: oanda is not the venue of class crypto: crypto orders go to coinbase",
        ),
        (
            "asset,class\nBTCUSD,fx\n",
            "u.csv: row 1 (line 2), class: BTCUSD is crypto in the built-in table (ffe.domain.universe), not fx",
        ),
        (
            "asset,class,enabled\nSOLUSD,crypto,maybe\n",
            "u.csv: row 1 (line 2), enabled: 'maybe' is not true or false (yes/no, 1/0)",
        ),
        (
            "asset,class\nBTCUSD,crypto\n\nEURUSD,fx\nBTCUSD,crypto\n",
            "u.csv: row 3 (line 5), asset: BTCUSD repeats row 1 (line 2)",
        ),
        ("asset,class\nSOLUSD,crypto,x\n", "u.csv: row 1 (line 2): 3 cells, the header has 2"),
        ("asset,class\n", "u.csv: no rows; a universe names one asset at least"),
        ("", "u.csv: no header row; the first line names the columns"),
        ("\r\n\r\n", "u.csv: no header row"),
        ("BTCUSD,crypto\n", "u.csv: line 1, header: unknown column 'btcusd'; the first row names the columns"),
        ("asset,class,notes\n", "u.csv: line 1, header: unknown column 'notes'"),
        ("asset,class,asset\n", "u.csv: line 1, header: column asset twice"),
        ("asset,venue\n", "u.csv: line 1, header: no class column (asset and class are required)"),
        ('asset,class\n"SOLUSD,crypto\n', "u.csv: line 2: malformed CSV (unexpected end of data)"),
        ('asset,class\nSOL"USD,crypto\n', "u.csv: row 1 (line 2), asset: 'SOL\"USD' is not a symbol"),
        ("asset,class\nSOL\x00USD,crypto\n", "u.csv: line 2: a NUL byte; a universe file is text"),
    ],
)
def test_csv_refusals(content: str, expected: str) -> None:
    assert refusal(content).startswith(expected)


@pytest.mark.parametrize(
    "document,expected",
    [
        ([{"asset": "BTCUSD", "class": "crypto"}, {"asset": 7, "class": "fx"}], "row 2 (item [1]), asset: 7 is not"),
        ([{"class": "fx"}], "row 1 (item [0]), asset: missing"),
        ([{"asset": "SOLUSD"}], "row 1 (item [0]), class: missing"),
        ([{"asset": "SOLUSD", "class": "CRYPTO"}], "row 1 (item [0]), class: 'CRYPTO' is not a class"),
        ([{"asset": "SOLUSD", "class": "crypto", "venue": 3}], "row 1 (item [0]), venue: 3 is not a venue"),
        ([{"asset": "SOLUSD", "class": "crypto", "enabled": 1}], "row 1 (item [0]), enabled: 1 is not true or false"),
        ([{"asset": "SOLUSD", "class": "crypto", "enabled": None}], "row 1 (item [0]), enabled: None is not"),
        ([{"asset": "SOLUSD", "class": "crypto", "asset_class": "crypto"}], "row 1 (item [0]), 'asset_class': unknown"),
        ([{"asset": "SOLUSD", "class": "crypto", "notes": "x"}], "row 1 (item [0]), 'notes': unknown field"),
        (
            [{"asset": "AAA", "class": "fx"}, {"asset": "AAA", "class": "fx"}],
            "row 2 (item [1]), asset: AAA repeats row 1",
        ),
        ([{"asset": "SOLUSD", "class": "crypto"}, "ETHUSD"], "row 2 (item [1]): not an object of asset, class"),
        ([], "no rows"),
        ({"assets": []}, "no rows"),
        ({"assets": [], "version": 2}, 'a JSON object holds one key, "assets"'),
        ({"universe": []}, 'a JSON object holds one key, "assets"'),
        ("BTCUSD", 'a JSON array of assets, or {"assets": [...]}'),
        (None, "a JSON array of assets"),
    ],
)
def test_json_refusals(document: object, expected: str) -> None:
    assert refusal(json.dumps(document), "u.json").startswith(f"u.json: {expected}")


@pytest.mark.parametrize(
    "content,name,expected",
    [
        (b'[{"asset": "BTCUSD",', "u.json", "u.json: line 1: malformed JSON (Expecting"),
        (b'[{"asset": "BTC\x00USD"}]', "u.json", "u.json: line 1: malformed JSON (Invalid control character"),
        (b"[" * 100_000, "u.json", "u.json: malformed JSON (nested too deep)"),
        (b"[1" + b"0" * 5000 + b"]", "u.json", "u.json: malformed JSON (a number too long)"),
        (b"asset,class\nSOL\xffUSD,crypto\n", "u.csv", "u.csv: not UTF-8 (byte 15 is 0xff)"),
        (b"\xef\xbb\xbf\xff", "u.json", "u.json: not UTF-8 (byte 3 is 0xff)"),
        (b"asset,class\nSOLUSD,crypto\n", "u.txt", "u.txt: a universe file is .csv or .json"),
        (b"asset,class\nSOLUSD,crypto\n", "csv", "csv: a universe file is .csv or .json"),
        (b" " * (MAX_UNIVERSE_BYTES + 1), "u.csv", "u.csv: 2,097,153 bytes, over the 2,097,152-byte limit"),
    ],
)
def test_byte_level_refusals(content: bytes, name: str, expected: str) -> None:
    assert refusal(content, name).startswith(expected)


def test_a_huge_field_is_refused_by_line_and_quoted_short() -> None:
    bare = refusal(b"asset,class\n" + b"A" * 200_000 + b",crypto\n")
    assert bare.startswith("u.csv: line 2: malformed CSV (field larger than field limit")
    json_message = refusal(json.dumps([{"asset": "A" * 1_000_000, "class": "crypto"}]), "u.json")
    assert json_message.startswith("u.json: row 1 (item [0]), asset: 'AAAA") and len(json_message) < 200


def test_a_lone_surrogate_is_shown_escaped() -> None:
    message = refusal(b'[{"asset": "\\ud800", "class": "crypto"}]', "u.json")
    assert "'\\ud800' is not a symbol" in message
    message.encode("utf-8")  # printable on any terminal


# --- properties ---

_SYMBOL = st.from_regex(re.compile(r"[A-Z0-9]{3,12}"), fullmatch=True)


@st.composite
def universes(draw: st.DrawFn) -> list[UniverseEntry]:
    symbols = draw(st.lists(_SYMBOL, min_size=1, max_size=30, unique=True))
    found = []
    for symbol in symbols:
        asset_class = ASSET_CLASSES.get(symbol) or draw(st.sampled_from(list(AssetClass)))
        venue = draw(st.sampled_from([None, CLASS_VENUES[asset_class]]))
        found.append(entry(symbol, asset_class.value, venue, draw(st.booleans())))
    return found


@settings(max_examples=60, deadline=None)
@given(universes())
def test_any_valid_universe_round_trips_through_dump_and_parse(entries: list[UniverseEntry]) -> None:
    assert parse_universe(dump_universe(entries), "u.json") == entries


def _as_csv(entries: list[UniverseEntry]) -> bytes:
    lines = ["enabled,asset,class"] + [
        f"{'yes' if e.enabled else 'no'},{e.asset},{e.asset_class.value}" for e in entries
    ]
    return "\r\n".join(lines).encode()


@settings(max_examples=40, deadline=None)
@given(universes())
def test_a_csv_of_a_valid_universe_parses_to_it(entries: list[UniverseEntry]) -> None:
    assert parse_universe(_as_csv(entries), "u.csv") == entries


_HOSTILE = st.one_of(
    st.binary(max_size=400),
    st.text(alphabet=st.sampled_from('asetclvnubd,"\r\n\x00\ufeff BTCUSDcryptofx01{}[]:'), max_size=200).map(
        str.encode
    ),
    st.lists(
        st.dictionaries(
            st.sampled_from(["asset", "class", "venue", "enabled", "x"]),
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=14), _SYMBOL),
            max_size=5,
        ),
        max_size=5,
    ).map(lambda items: json.dumps(items).encode()),
)


@settings(max_examples=300, deadline=None)
@given(_HOSTILE, st.sampled_from(["u.csv", "u.json"]))
def test_any_bytes_parse_or_raise_invalid_input_and_nothing_else(content: bytes, name: str) -> None:
    try:
        entries = parse_universe(content, name)
    except InvalidInputError as exc:
        assert str(exc).startswith(f"{name}: ") and "\n" not in str(exc)
    else:
        assert 1 <= len(entries) <= MAX_UNIVERSE_ASSETS
        assert parse_universe(dump_universe(entries), "u.json") == entries
