"""A champion bundle that cannot be used never stops a cycle, and never turns into a made-up decision."""

from __future__ import annotations

from pathlib import Path

from ffe.local.aws import LocalCloud
from tests.conftest import ROOT
from tests.e2e.test_decision_cycle import run
from tests.fakes.models import random_bundle, write_bundle


def test_corrupt_champion_holds_every_fresh_asset_and_says_why(postgres: str, tmp_path: Path) -> None:
    # Given a champion bundle, in the model bucket and on the endpoint, whose meta-controller artifact is corrupt
    champion = write_bundle(random_bundle(seed=1), tmp_path / "champion")
    (champion / "meta.json").write_text('{"format": "ffe.meta/1", "options": "truncated')
    with LocalCloud(ROOT, postgres, champion_dir=champion) as deployed:
        assert deployed.inference.load_error is not None  # the endpoint runs unhealthy, as SageMaker's would
        result = run(deployed)
    # Then the cycle still records a decision per asset: every fresh one a HOLD that names what broke
    assert result["status"] == "SUCCEEDED" and not result["failures"]
    for fresh in ("BTCUSD", "ETHUSD"):
        d = result["decisions"][fresh]
        assert (d["action"], d["confidence"], d["model"]) == ("HOLD", 1.0, "inference_ensemble")
        assert d["reason"].startswith("inference_unavailable: the RL voter needs the regime path (regime unavailable:")
        assert "is unusable" in d["reason"] and d["size"] is None
