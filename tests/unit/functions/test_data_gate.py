"""FetchMarketData and CheckStaleness, the real handlers, on data that must never count as fresh (issue 12 §3)."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ffe.adapters.models import load_bundle
from ffe.contracts import BarColumns, digest_bars
from ffe.domain.errors import InvalidInputError, PermanentError
from ffe.domain.features import FeatureParams
from ffe.domain.models import Bar
from ffe.domain.strategies import StrategyParams
from ffe.stage_steps import fetch as fetch_step
from functions.check_staleness import handler as check_staleness
from functions.fetch_market_data import handler as fetch
from tests.fakes.market_data import FixedProvider, hourly
from tests.fakes.models import random_bundle, write_bundle

EVENTS = Path(__file__).resolve().parents[2] / "events"
AS_OF = datetime(2019, 6, 15, 12, 0, tzinfo=UTC)


def task(**change: object) -> dict:
    return {**json.loads((EVENTS / "asset_task.json").read_text()), "as_of": AS_OF.isoformat(), **change}


def gate(lambda_context, monkeypatch, bars: list[Bar], **change: object) -> tuple[dict, dict]:
    """Fetch ``bars`` through the real FetchMarketData, then judge them with the real CheckStaleness."""
    monkeypatch.setattr(fetch_step, "get_provider", lambda settings: FixedProvider(bars))
    data = fetch.lambda_handler(task(**change), lambda_context)
    return data, check_staleness.lambda_handler(data, lambda_context)


def closes(n: int) -> list[float]:
    return [100 + (i % 7) * 0.3 for i in range(n)]


def test_fetch_drops_a_bar_still_forming_and_says_so(lambda_context, monkeypatch, caplog) -> None:
    # Given the case: at 12:00 the provider also returns the 1h bar that opened at 11:50
    bars = hourly(closes(120), AS_OF - timedelta(minutes=10))
    # When the cycle fetches and gates it
    data, staleness = gate(lambda_context, monkeypatch, bars)
    # Then the forming bar is dropped and counted; the gate sees the bar that closed at 11:50, 10 minutes old
    assert data["source"]["forming_bars_dropped"] == 1 and len(data["bars"]["time"]) == 119
    assert datetime.fromtimestamp(data["bars"]["time"][-1], UTC) == datetime(2019, 6, 15, 10, 50, tzinfo=UTC)
    assert (staleness["code"], staleness["age_seconds"]) == ("fresh", 600.0)


def test_a_series_ending_in_a_forming_bar_is_refused_at_the_next_boundary(lambda_context, monkeypatch) -> None:
    # Given a fetched series to which a bar closing after as_of is added (with a matching digest)
    data, _ = gate(lambda_context, monkeypatch, hourly(closes(120), AS_OF - timedelta(hours=1)))
    for name, column in data["bars"].items():  # the last bar again, opening at 11:30
        if column is not None:
            column.append(int(datetime(2019, 6, 15, 11, 30, tzinfo=UTC).timestamp()) if name == "time" else column[-1])
    data["bars_sha256"] = digest_bars(BarColumns.model_validate(data["bars"]).models())
    # Then CheckStaleness refuses it with the reason, before judging anything
    with pytest.raises(InvalidInputError, match=r"bar 120 \(2019-06-15T11:30:00\+00:00\): still forming at"):
        check_staleness.lambda_handler(data, lambda_context)


def test_the_bars_needed_are_the_champions_regime_path(lambda_context, monkeypatch) -> None:
    # Given the shipped champion: features need a warm-up, the meta-controller rolls over its roll_bars rows
    need = FeatureParams().warmup - 1 + load_bundle("bundled").meta.roll_bars
    assert need > StrategyParams().min_bars
    # When the series is one bar short, Then the gate holds it as insufficient_history, with the numbers
    _, short = gate(lambda_context, monkeypatch, hourly(closes(need - 1), AS_OF - timedelta(hours=1)))
    assert short["stale"] is True and short["code"] == "insufficient_history"
    assert short["reason"].startswith(f"insufficient_history: only {need - 1} bars, at least {need} needed (the regime")
    # And with exactly the need it passes
    _, enough = gate(lambda_context, monkeypatch, hourly(closes(need), AS_OF - timedelta(hours=1)))
    assert enough["code"] == "fresh"


def test_51_bars_are_insufficient_history_not_a_model_failure(lambda_context, monkeypatch) -> None:
    # The issue's case: 51 bars pass the strategies' look-back but not the regime model's
    _, staleness = gate(lambda_context, monkeypatch, hourly(closes(51), AS_OF - timedelta(hours=1)))
    assert staleness["code"] == "insufficient_history" and "only 51 bars" in staleness["reason"]


def test_the_need_follows_the_cycles_champion(lambda_context, monkeypatch, tmp_path) -> None:
    # Given a published version whose meta-controller rolls over 40 rows, the champion the cycle resolved
    bundle = random_bundle(seed=5)
    write_bundle(replace(bundle, meta=replace(bundle.meta, roll_bars=40)), tmp_path / "store" / bundle.version)
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "store"))
    need = FeatureParams().warmup - 1 + 40
    models = {"champion": bundle.version}
    # Then the gate needs that version's path, not a fixed number
    _, short = gate(lambda_context, monkeypatch, hourly(closes(need - 1), AS_OF - timedelta(hours=1)), models=models)
    assert short["code"] == "insufficient_history" and f"at least {need} needed" in short["reason"]


def test_an_experiment_needs_the_longer_path_of_its_two_versions(lambda_context, monkeypatch, tmp_path) -> None:
    # Given the champion (the bundled one) and a treatment rolling over more rows, in a shadow experiment
    long = random_bundle(seed=5, version="test-long")
    roll = load_bundle("bundled").meta.roll_bars + 10
    write_bundle(replace(long, meta=replace(long.meta, roll_bars=roll)), tmp_path / "store" / long.version)
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "store"))
    champion = load_bundle("bundled").version
    shadow = {"id": "e1", "mode": "shadow", "control_version": champion, "treatment_version": long.version}
    models = {"champion": champion, "experiments": [{**shadow, "share": 0.0}]}
    need = FeatureParams().warmup - 1 + roll
    # Then the series must hold the treatment's path too: DetectRegime computes both
    _, short = gate(lambda_context, monkeypatch, hourly(closes(need - 1), AS_OF - timedelta(hours=1)), models=models)
    assert short["code"] == "insufficient_history" and f"at least {need} needed" in short["reason"]
    # And without the experiment the champion's path is enough
    _, alone = gate(
        lambda_context, monkeypatch, hourly(closes(need - 1), AS_OF - timedelta(hours=1)), models={"champion": champion}
    )
    assert alone["code"] == "fresh"


def test_without_a_usable_champion_only_the_strategies_look_back_is_needed(
    lambda_context, monkeypatch, tmp_path
) -> None:
    # No regime path can be computed anyway: DetectRegime then says why the champion is unusable
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "nothing-here"))
    _, staleness = gate(
        lambda_context,
        monkeypatch,
        hourly(closes(StrategyParams().min_bars), AS_OF - timedelta(hours=1)),
        models={"champion": "ffe-000000000000"},
    )
    assert staleness["code"] == "fresh"


def test_a_year_old_series_with_one_fresh_bar_is_gappy_data(lambda_context, monkeypatch) -> None:
    old = hourly(closes(119), AS_OF - timedelta(days=365))
    fresh = hourly([100.0], AS_OF - timedelta(hours=1))
    _, staleness = gate(lambda_context, monkeypatch, old + fresh)
    assert staleness["stale"] is True and staleness["code"] == "gappy_data"
    assert staleness["reason"].startswith("gappy_data: ") and "tolerance 3 (crypto" in staleness["reason"]


def daily(n: int, last_open: datetime) -> list[Bar]:
    return [replace(b, time=last_open - timedelta(days=n - 1 - i)) for i, b in enumerate(hourly(closes(n), last_open))]


@pytest.mark.parametrize(("allowed", "code"), [(None, "fresh"), ("2", "stale"), ("5", "fresh")])
def test_the_daily_allowance_comes_from_the_environment(lambda_context, monkeypatch, allowed, code) -> None:
    # Given BTCUSD daily bars whose last bar is for 11 June, judged on 15 June: 3 sessions (12-14 June) missing
    if allowed is not None:
        monkeypatch.setenv("DAILY_MAX_MISSING_SESSIONS", allowed)
    bars = daily(120, datetime(2019, 6, 11, tzinfo=UTC))
    _, staleness = gate(lambda_context, monkeypatch, bars, timeframe="1d", as_of="2019-06-15T00:05:00Z")
    # Then N (default 3) decides, and the reason counts the sessions
    assert staleness["code"] == code and "3 crypto sessions missing since" in staleness["reason"]


def test_a_bad_daily_allowance_is_a_clear_configuration_error(lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("DAILY_MAX_MISSING_SESSIONS", "-1")
    with pytest.raises(PermanentError, match="DAILY_MAX_MISSING_SESSIONS: Input should be greater than or equal to 0"):
        gate(lambda_context, monkeypatch, hourly(closes(120), AS_OF - timedelta(hours=1)))
