"""The promotion gate (ffe.evaluation.gate) on synthetic evidence folders, and its bootstrap helper in stats."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ffe.evaluation import stats
from ffe.evaluation.gate import (
    CHAMPION,
    CONFIDENCE_ENV,
    METRIC_ENV,
    Evidence,
    GateConfig,
    Side,
    Verdict,
    decide,
    judge,
    load_evidence,
    not_compared,
)
from tests.fakes.evidence import returns, write_evidence

NAIVE = returns(1, 0.0002)
WINNER = NAIVE + returns(2, 0.002, sd=0.002)  # the naive path plus a steady edge: beats it in almost every resample
LOSER = NAIVE - returns(3, 0.002, sd=0.002)


def evidence(tmp_path: Path, name: str, meta: dict[str, np.ndarray], **kwargs: Any) -> Evidence:
    """An evaluation whose meta-controller paths are ``meta`` and whose naive router is NAIVE (on as many bars)."""
    paths = {
        symbol: {"meta_controller": m, "naive_router": NAIVE[: m.size], "buy_and_hold": NAIVE[: m.size] * 0.5}
        for symbol, m in meta.items()
    }
    return load_evidence(write_evidence(tmp_path / name, paths, **kwargs))


# --- stats.paired_metric_differences ---


def test_paired_differences_of_identical_series_are_all_zero() -> None:
    for metric in ("sharpe", "sortino", "total_return"):
        draws = stats.paired_metric_differences(NAIVE, NAIVE, metric, 252, n_boot=50)
        assert draws.shape == (50,) and np.all(draws == 0.0)


def test_paired_differences_are_the_resampled_gaps_one_resample_at_a_time() -> None:
    """From block sums, the draws are those of the plain loop over the same resamples (to float rounding)."""
    plain = {"sharpe": lambda r: stats.sharpe(r, 252), "sortino": lambda r: stats.sortino(r, 252)}
    plain["total_return"] = stats.total_return
    for metric, statistic in plain.items():
        loop = [statistic(WINNER[i]) - statistic(NAIVE[i]) for i in stats._resamples(NAIVE.size, None, 300, 4)]
        draws = stats.paired_metric_differences(WINNER, NAIVE, metric, 252, n_boot=300, seed=4)
        np.testing.assert_allclose(draws, loop, rtol=1e-9, atol=1e-12)
    # a bar that lost everything: the resamples holding it are -1, the others unchanged (not NaN, as log(0) made them)
    ruined = WINNER.copy()
    ruined[100] = -1.0
    resamples = stats._resamples(NAIVE.size, None, 300, 4)
    loop = [stats.total_return(ruined[i]) - stats.total_return(NAIVE[i]) for i in resamples]
    draws = stats.paired_metric_differences(ruined, NAIVE, "total_return", 252, n_boot=300, seed=4)
    np.testing.assert_allclose(draws, loop, rtol=1e-9, atol=1e-12)
    assert np.isfinite(draws).all() and 0 < np.sum(draws > 0) < draws.size
    # blocks that do not divide the bars (the last one is cut) and a block of one bar
    for block in (7, 1):
        resamples = stats._resamples(NAIVE.size, block, 50, 2)
        loop = [plain["sharpe"](WINNER[i]) - plain["sharpe"](NAIVE[i]) for i in resamples]
        draws = stats.paired_metric_differences(WINNER, NAIVE, "sharpe", 252, block=block, n_boot=50, seed=2)
        np.testing.assert_allclose(draws, loop, rtol=1e-9, atol=1e-12)


def test_paired_differences_are_deterministic_by_seed_and_pair_the_bars() -> None:
    a = stats.paired_metric_differences(WINNER, NAIVE, "total_return", 252, n_boot=200, seed=4)
    assert np.array_equal(a, stats.paired_metric_differences(WINNER, NAIVE, "total_return", 252, n_boot=200, seed=4))
    assert not np.array_equal(
        a, stats.paired_metric_differences(WINNER, NAIVE, "total_return", 252, n_boot=200, seed=5)
    )
    assert np.all(a > 0)  # paired: WINNER beats NAIVE on every bar, so on every resample


def test_paired_differences_refuse_unaligned_series_and_unknown_metrics() -> None:
    with pytest.raises(ValueError, match="aligned"):
        stats.paired_metric_differences(NAIVE, NAIVE[:-1], "sharpe", 252)
    with pytest.raises(ValueError, match="metric must be one of"):
        stats.paired_metric_differences(NAIVE, NAIVE, "calmar", 252)
    with pytest.raises(ValueError, match="finite"):
        stats.paired_metric_differences(np.array([0.1, np.nan, 0.2]), np.zeros(3), "sharpe", 252)


# --- the configuration ---


def test_defaults_env_and_flags_in_that_order() -> None:
    assert GateConfig() == GateConfig.from_env({}) == GateConfig("sharpe", 0.9)
    env = {METRIC_ENV: "sortino", CONFIDENCE_ENV: "0.95"}
    assert GateConfig.from_env(env) == GateConfig("sortino", 0.95)
    assert GateConfig.from_env(env, metric="total_return", confidence=0.8) == GateConfig("total_return", 0.8)


@pytest.mark.parametrize(
    ("env", "flags", "named"),
    [
        ({CONFIDENCE_ENV: "high"}, {}, CONFIDENCE_ENV),
        ({CONFIDENCE_ENV: "1.5"}, {}, CONFIDENCE_ENV),
        ({METRIC_ENV: "calmar"}, {}, METRIC_ENV),
        ({}, {"confidence": 1.0}, "--confidence"),
        ({}, {"confidence": 0.0}, "--confidence"),
        ({}, {"confidence": 0.5}, "--confidence"),  # a coin toss would pass
        ({CONFIDENCE_ENV: "0.3"}, {}, CONFIDENCE_ENV),
        ({}, {"metric": "calmar"}, "--metric"),
    ],
)
def test_a_bad_setting_is_refused_naming_where_it_came_from(
    env: dict[str, str], flags: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        GateConfig.from_env(env, **flags)  # type: ignore[arg-type]


# --- decisions ---


def test_a_candidate_that_clearly_beats_the_naive_router_and_the_champion_passes(tmp_path: Path) -> None:
    candidate = evidence(tmp_path, "cand", {"BTCUSD": WINNER, "EURUSD": WINNER * 1.1})
    champion = evidence(tmp_path, "champ", {"BTCUSD": NAIVE, "EURUSD": NAIVE})
    verdict = decide(candidate, champion, GateConfig(), champion_label="champion v1")
    assert verdict.passed
    assert [(c.kind, c.bar) for c in verdict.comparisons] == [
        ("naive_router", "naive_router"),
        (CHAMPION, "champion v1"),
    ]
    assert set(verdict.probabilities()) == {"naive_router", "champion"}
    assert all(p >= 0.99 for p in verdict.probabilities().values())
    figures = verdict.comparisons[1].per_series
    assert set(figures) == {"BTCUSD", "EURUSD"}
    assert figures["BTCUSD"].candidate == pytest.approx(stats.sharpe(WINNER, 8760.0))
    assert figures["BTCUSD"].bar == pytest.approx(stats.sharpe(NAIVE, 8760.0)) and figures["BTCUSD"].difference > 0
    text = "\n".join(verdict.lines())
    assert text.startswith("promotion gate passed (sharpe, confidence 0.9)") and "pass vs champion v1" in text


@pytest.mark.parametrize("metric", ["sharpe", "sortino", "total_return"])
def test_a_candidate_that_clearly_loses_is_refused(tmp_path: Path, metric: str) -> None:
    candidate = evidence(tmp_path, "cand", {"BTCUSD": LOSER})
    verdict = decide(candidate, None, GateConfig(metric=metric))
    assert not verdict.passed and len(verdict.comparisons) == 1  # no champion: the naive router is the only bar
    (naive,) = verdict.comparisons
    assert naive.bar == "naive_router" and naive.probability is not None and naive.probability <= 0.01
    assert naive.line().startswith(f"FAIL vs naive_router: P(mean {metric} gap > 0) = ")


def test_identical_evidence_is_a_coin_toss_and_refused(tmp_path: Path) -> None:
    candidate = evidence(tmp_path, "cand", {"BTCUSD": WINNER})
    same = evidence(tmp_path, "same", {"BTCUSD": WINNER})
    verdict = decide(candidate, same, GateConfig())
    assert verdict.comparisons[0].passed  # it still beats the naive router
    assert verdict.comparisons[1].probability == 0.5 and not verdict.passed


def test_beating_the_naive_router_but_not_the_champion_is_refused(tmp_path: Path) -> None:
    candidate = evidence(tmp_path, "cand", {"BTCUSD": WINNER})
    champion = evidence(tmp_path, "champ", {"BTCUSD": WINNER + 0.002})
    verdict = decide(candidate, champion, GateConfig())
    assert [c.passed for c in verdict.comparisons] == [True, False] and not verdict.passed


def test_the_mean_over_series_decides_and_only_shared_series_count(tmp_path: Path) -> None:
    # A large edge on BTCUSD outweighs a slight loss on EURUSD; SPX, which the champion lacks, is not compared
    candidate = evidence(tmp_path, "cand", {"BTCUSD": WINNER, "EURUSD": NAIVE - 0.0001, "SPX": LOSER})
    champion = evidence(tmp_path, "champ", {"BTCUSD": NAIVE, "EURUSD": NAIVE})
    against_champion = decide(candidate, champion, GateConfig()).comparisons[1]
    assert set(against_champion.per_series) == {"BTCUSD", "EURUSD"}
    assert against_champion.per_series["EURUSD"].difference < 0 and against_champion.passed


def test_seeded_and_reproducible(tmp_path: Path) -> None:
    candidate = evidence(tmp_path, "cand", {"BTCUSD": NAIVE + returns(9, 0.0, sd=0.003)})
    first, second = decide(candidate, None, GateConfig()), decide(candidate, None, GateConfig())
    assert first.probabilities() == second.probabilities()
    assert first.probabilities() != decide(candidate, None, GateConfig(seed=1)).probabilities()


def test_evidence_on_other_folds_is_refused_naming_the_series(tmp_path: Path) -> None:
    candidate = evidence(tmp_path, "cand", {"BTCUSD": WINNER, "EURUSD": WINNER})
    other_folds = (((0, 200), (200, 250)), ((0, 250), (250, 400)))
    champion = evidence(tmp_path, "champ", {"BTCUSD": NAIVE, "EURUSD": NAIVE}, folds=other_folds)
    verdict = decide(candidate, champion, GateConfig())
    against = verdict.comparisons[1]
    assert not verdict.passed and against.probability is None
    assert "not on the same bars" in against.reason and "BTCUSD: folds differ" in against.reason
    assert "test[200,300) test[300,400)" in against.reason and "test[200,250)" in against.reason


def test_evidence_on_other_test_bars_or_no_shared_series_is_refused(tmp_path: Path) -> None:
    candidate = evidence(tmp_path, "cand", {"BTCUSD": WINNER})
    shorter = evidence(tmp_path, "short", {"BTCUSD": NAIVE[:150]})
    assert (
        "BTCUSD: test bars differ (200 against 150)" in decide(candidate, shorter, GateConfig()).comparisons[1].reason
    )
    elsewhere = evidence(tmp_path, "else", {"SPX": NAIVE})
    reason = decide(candidate, elsewhere, GateConfig()).comparisons[1].reason
    assert reason == "the candidate's evidence leaves out SPX, which champion was evaluated on"
    # nor may the candidate drop a series the champion was judged on, however well it does on the rest
    both = evidence(tmp_path, "both", {"BTCUSD": NAIVE, "SPX": NAIVE})
    assert (
        decide(candidate, both, GateConfig())
        .comparisons[1]
        .reason.startswith("the candidate's evidence leaves out SPX")
    )


def test_evidence_on_other_prices_is_refused_and_older_evidence_without_a_digest_still_pairs(tmp_path: Path) -> None:
    mine, theirs, neither = "a" * 64, "b" * 64, None
    paths = {"BTCUSD": {"meta_controller": WINNER, "naive_router": NAIVE}}
    on = {d: load_evidence(write_evidence(tmp_path / str(d), paths, bars_sha256=d)) for d in (mine, theirs, neither)}
    refused = decide(on[mine], on[theirs], GateConfig()).comparisons[1]
    assert not refused.passed and refused.probability is None
    assert refused.reason.endswith("BTCUSD: evaluated on other prices (bars aaaaaaaaaaaa against bbbbbbbbbbbb)")
    assert decide(on[mine], on[mine], GateConfig()).comparisons[1].probability is not None
    assert decide(on[mine], on[neither], GateConfig()).comparisons[1].probability is not None


def test_a_comparison_that_could_not_be_made_fails_with_its_reason() -> None:
    missing = not_compared(CHAMPION, "champion v2", "v2 has no evidence: run `ffe evaluate --version 2`")
    verdict = Verdict(GateConfig(), (missing,))
    assert not verdict.passed and verdict.probabilities() == {}
    assert "FAIL vs champion v2: v2 has no evidence" in "\n".join(verdict.lines())
    assert not Verdict(GateConfig(), ()).passed  # nothing compared is nothing shown


def test_judge_refuses_whatever_side_lacks_evidence_saying_what_to_do(tmp_path: Path) -> None:
    winner = evidence(tmp_path, "cand", {"BTCUSD": WINNER})
    champion = evidence(tmp_path, "champ", {"BTCUSD": NAIVE})
    fix = "run `ffe evaluate --version 3`"
    # A candidate with evidence and no champion: decide() on the naive router alone
    alone = judge(Side("v3", winner), None, GateConfig())
    assert alone.passed and [c.kind for c in alone.comparisons] == ["naive_router"]
    # The bar without evidence: nothing shows it is beaten, so the winner is refused all the same
    unshown = judge(
        Side("v3", winner), Side("champion v1", problem="v1 has no walk-forward evidence", fix="x"), GateConfig()
    )
    assert not unshown.passed and [c.passed for c in unshown.comparisons] == [True, False]
    assert unshown.comparisons[1].reason == "v1 has no walk-forward evidence, so nothing shows v3 beats it: x"
    # A candidate without evidence fails both bars, the fix on the naive router's line
    missing = judge(
        Side("v3", problem="v3 has no walk-forward evidence", fix=fix), Side("champion v1", champion), GateConfig()
    )
    assert [(c.kind, c.passed, c.reason) for c in missing.comparisons] == [
        ("naive_router", False, f"v3 has no walk-forward evidence: {fix}"),
        (CHAMPION, False, "v3 has no walk-forward evidence"),
    ]
    assert not judge(Side("v3"), None, GateConfig()).passed  # no evidence and no reason given: still refused
    assert not judge(Side("v3", winner), Side("champion v1"), GateConfig()).passed  # nor a bar without either


# --- loading ---


def test_load_evidence_reads_series_folds_paths_and_model(tmp_path: Path) -> None:
    folder = write_evidence(
        tmp_path / "ev", {"BTCUSD": {"meta_controller": WINNER, "naive_router": NAIVE}}, registered_version="3"
    )
    loaded = load_evidence(folder)
    assert loaded.registered_version == "3" and set(loaded.series) == {"BTCUSD"}
    btc = loaded.series["BTCUSD"]
    assert btc.folds == ((0, 200, 200, 300), (0, 300, 300, 400)) and btc.periods_per_year == 8760.0
    assert np.array_equal(btc.paths["meta_controller"], WINNER)


def test_each_seeds_own_path_is_not_a_row(tmp_path: Path) -> None:
    folder = _good(tmp_path)
    _write_paths(  # what `ffe evaluate` writes: the rows, and each seed's own meta-controller path under the row
        folder,
        {
            "BTCUSD/meta_controller": WINNER,
            "BTCUSD/naive_router": NAIVE,
            "BTCUSD/meta_controller/seed1": LOSER,
        },
    )
    btc = load_evidence(folder).series["BTCUSD"]
    assert set(btc.paths) == {"meta_controller", "naive_router"} and list(btc.meta_by_seed) == [1]
    np.testing.assert_array_equal(btc.meta_by_seed[1], LOSER)


def test_the_gate_judges_each_seeds_own_model_not_their_smoother_average(tmp_path: Path) -> None:
    # The seed-averaged row beats the naive router, but the version serves one seed's bundle, and each loses
    paths = {"meta_controller": WINNER, "naive_router": NAIVE, "meta_controller/seed1": LOSER}
    seeds = load_evidence(write_evidence(tmp_path / "s", {"BTCUSD": {**paths, "meta_controller/seed2": LOSER * 1.1}}))
    verdict = decide(seeds, None, GateConfig())
    assert not verdict.passed and verdict.probabilities()["naive_router"] < 0.1
    figures = verdict.comparisons[0].per_series["BTCUSD"]
    mean = np.mean([stats.sharpe(LOSER, 8760.0), stats.sharpe(LOSER * 1.1, 8760.0)])
    assert figures.candidate == pytest.approx(mean) and figures.bar == pytest.approx(stats.sharpe(NAIVE, 8760.0))
    # against a champion, its seeds are averaged the same way: the same per-seed paths on both sides are a tie
    assert decide(seeds, seeds, GateConfig()).probabilities()[CHAMPION] == 0.5


def _good(tmp_path: Path) -> Path:
    return write_evidence(tmp_path / "ev", {"BTCUSD": {"meta_controller": WINNER, "naive_router": NAIVE}})


def _write_paths(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(folder / "paths.npz", **arrays)  # type: ignore[arg-type]


def _edit_report(folder: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    report = json.loads((folder / "evaluation.json").read_text())
    edit(report)
    (folder / "evaluation.json").write_text(json.dumps(report))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda f: (f / "paths.npz").unlink(), "has no paths.npz"),
        (lambda f: (f / "evaluation.json").unlink(), "has no evaluation.json"),
        (lambda f: (f / "evaluation.json").write_text("{nope"), "is not JSON"),
        (lambda f: (f / "paths.npz").write_text("not numpy"), "not a numpy .npz"),
        (lambda f: (f / "paths.npz").write_bytes((f / "paths.npz").read_bytes()[:300]), "not a numpy .npz"),
        (
            lambda f: _write_paths(f, {"BTCUSD/meta_controller": WINNER, "BTCUSD/naive_router": NAIVE, "stray": NAIVE}),
            "array 'stray' is not named SYMBOL/ROW",
        ),
        (lambda f: _edit_report(f, lambda r: r["model"].update(training_config=[1])), "is not an object"),
        (
            lambda f: _write_paths(
                f,
                {
                    "BTCUSD/meta_controller": WINNER,
                    "BTCUSD/naive_router": NAIVE,
                    "BTCUSD/meta_controller/seed1": NAIVE[:9],
                },
            ),
            "path BTCUSD/meta_controller/seed1 must hold 200 finite returns",
        ),
        (lambda f: _edit_report(f, lambda r: r.update(schema="ffe.evaluation/1")), "schema 'ffe.evaluation/1'"),
        (lambda f: _edit_report(f, lambda r: r.update(series={})), "holds no series"),
        (
            lambda f: _edit_report(f, lambda r: r["series"]["BTCUSD"].update(periods_per_year=0)),
            "periods_per_year must be a positive number",
        ),
        (lambda f: _edit_report(f, lambda r: r["series"]["BTCUSD"].update(folds=[{"train": [0]}])), "fold 0 is not"),
        (lambda f: _edit_report(f, lambda r: r["series"]["BTCUSD"].update(bars_sha256="xyz")), "bars_sha256 must be"),
        (
            lambda f: _edit_report(
                f, lambda r: r["series"]["BTCUSD"].update(folds=[{"train": [0, 300], "test": [200, 400]}])
            ),
            "fold 0 trains on",
        ),
        (
            lambda f: _write_paths(f, {"BTCUSD/meta_controller": WINNER}),
            "no BTCUSD/naive_router path",
        ),
        (
            lambda f: _write_paths(
                f,
                {"BTCUSD/meta_controller": np.where(WINNER > 0, WINNER, np.nan), "BTCUSD/naive_router": NAIVE},
            ),
            "BTCUSD/meta_controller holds non-finite returns",
        ),
        (
            lambda f: _write_paths(f, {"BTCUSD/meta_controller": WINNER[:-1], "BTCUSD/naive_router": NAIVE}),
            "paths differ in length",
        ),
        (
            lambda f: _write_paths(f, {"BTCUSD/meta_controller": WINNER.reshape(20, 10), "BTCUSD/naive_router": NAIVE}),
            "must be 1-D",
        ),
    ],
)
def test_bad_evidence_is_a_value_error_naming_the_problem(
    tmp_path: Path, breakage: Callable[[Path], object], message: str
) -> None:
    folder = _good(tmp_path)
    breakage(folder)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_evidence(folder)
