"""A champion bundle that cannot be used never stops a cycle: the naive router decides and says why."""

from __future__ import annotations

from pathlib import Path

from ffe.local.aws import LocalCloud
from tests.conftest import ROOT
from tests.e2e.test_decision_cycle import run
from tests.fakes.models import random_bundle, write_bundle


def test_corrupt_champion_falls_back_to_the_naive_router_and_says_so(postgres: str, tmp_path: Path) -> None:
    # Given a champion bundle in the model bucket whose meta-controller artifact is corrupt
    champion = write_bundle(random_bundle(seed=1), tmp_path / "champion")
    (champion / "meta.json").write_text('{"format": "ffe.meta/1", "options": "truncated')
    with LocalCloud(ROOT, postgres, champion_dir=champion) as deployed:
        result = run(deployed)
    # Then the cycle still decides, every fresh decision by the naive router, each saying why
    assert result["status"] == "SUCCEEDED" and not result["failures"]
    for fresh in ("BTCUSD", "ETHUSD"):
        d = result["decisions"][fresh]
        assert d["model"] == "naive_router" and "weights" not in d["reasons"]
        # (the risk gate may prefix its verdict: the session's paper account is shared with other tests)
        assert "naive router fallback (model bundle at s3://ffe-dev-models-" in d["reason"]
        assert "is unusable" in d["reason"]
