"""A champion bundle that cannot be used never stops a cycle, and never turns into a made-up decision."""

from __future__ import annotations

from pathlib import Path

from ffe.adapters.experiments import PostgresExperiments
from ffe.local.aws import LocalCloud
from tests.conftest import ROOT
from tests.database import own_database
from tests.e2e.test_decision_cycle import run
from tests.fakes.models import random_bundle, write_bundle


def test_corrupt_champion_holds_every_fresh_asset_and_says_why(postgres: str, tmp_path: Path) -> None:
    # Given a champion version, published to the model store, whose meta-controller artifact is corrupt
    bundle = random_bundle(seed=1, version="ffe-00000000bad1")
    champion = write_bundle(bundle, tmp_path / "models" / bundle.version)
    (champion / "meta.json").write_text('{"format": "ffe.meta/1", "options": "truncated')
    url = own_database(postgres, "unusable_champion")
    experiments = PostgresExperiments(url)
    experiments.set_champion(bundle.version, actor="test", reason="a corrupt upload")
    experiments.close()
    with LocalCloud(ROOT, url, model_store=tmp_path / "models") as deployed:
        assert deployed.inference.load_error is None  # the endpoint serves by version: it is healthy
        result = run(deployed)
    # Then the cycle still records a decision per asset: every fresh one a HOLD that names what broke
    assert result["status"] == "SUCCEEDED" and not result["failures"]
    for fresh in ("BTCUSD", "ETHUSD"):
        d = result["decisions"][fresh]
        assert (d["action"], d["confidence"], d["model"]) == ("HOLD", 1.0, "inference_ensemble")
        assert d["reason"].startswith("inference_unavailable: the RL voter needs the regime path (regime unavailable:")
        assert "is unusable" in d["reason"] and d["size"] is None
        assert "s3://" in d["reason"] and "/models/ffe-00000000bad1" in d["reason"]  # uploaded, read by version
