"""cold_start (the local runtime's, and every test's) forgets every piece of registered warm-container state."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ffe import containers
from ffe.containers import ContainerCached
from ffe.local.lambdas import cold_start

# Every module that keeps warm-container state: importing them registers it.
MODULES = (
    "ffe.settings",
    "ffe.adapters.store",
    "ffe.adapters.queries",
    "ffe.adapters.brokers_factory",
    "ffe.adapters.market_data",
    "ffe.adapters.providers.base",
    "ffe.adapters.inference",
    "ffe.adapters.executions",
    "ffe.adapters.models",
    "ffe.adapters.experiments",
    "ffe.adapters.experiment_results",
)
# What they register: the functions whose results are kept, and other state. A new entry fails this test until
# it is warmed below and seen to be forgotten.
CACHED = {
    "ffe.settings.get_settings",
    "ffe.adapters.store.get_store",
    "ffe.adapters.queries.get_queries",
    "ffe.adapters.brokers_factory._paper_account",
    "ffe.adapters.brokers_factory._live_venue",
    "ffe.adapters.brokers_factory.get_equity_memory",
    "ffe.adapters.brokers_factory.get_reservations",
    "ffe.adapters.market_data.get_provider",
    "ffe.adapters.providers.base.shared_client",
    "ffe.adapters.inference.get_inference",
    "ffe.adapters.executions.client",
    "ffe.adapters.experiments.get_experiments",
    "ffe.adapters.experiment_results.get_experiment_results",
    "ffe.adapters.models.get_model_store",
}
OTHER = {"aws_lambda_powertools.utilities.parameters"}


def cached(name: str) -> ContainerCached[..., object]:
    module, _, attr = name.rpartition(".")
    value = getattr(importlib.import_module(module), attr)
    assert isinstance(value, ContainerCached), name
    return value


def test_cold_start_forgets_every_registered_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for module in MODULES:
        importlib.import_module(module)
    product = {name for name in containers.registered() if name.startswith(("ffe.", "aws_lambda_powertools."))}
    assert product == CACHED | OTHER

    from aws_lambda_powertools.utilities import parameters

    from ffe.adapters import brokers_factory, executions, models
    from ffe.adapters.experiment_results import get_experiment_results
    from ffe.adapters.experiments import get_experiments
    from ffe.adapters.inference import get_inference
    from ffe.adapters.market_data import get_provider
    from ffe.adapters.providers.base import shared_client
    from ffe.adapters.queries import get_queries
    from ffe.adapters.store import get_store
    from ffe.settings import InferenceSettings, MarketDataSettings, RiskSettings, get_settings

    # Given a warm container: every cache holds something (nothing here connects to a database)
    for key, value in {
        "DATABASE_URL": f"postgresql://nobody@/ffe?host={tmp_path}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "EXECUTION_MODE": "live",
        "OANDA_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ffe/test/oanda",
    }.items():
        monkeypatch.setenv(key, value)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    settings = get_settings(RiskSettings)
    get_store()
    get_queries()
    get_experiments()
    get_experiment_results()
    brokers_factory.get_broker(settings, now, "EURUSD")  # live: Oanda
    brokers_factory.get_broker(settings.model_copy(update={"execution_mode": "paper"}), now)
    brokers_factory.get_equity_memory(settings)
    brokers_factory.get_reservations(settings)
    get_provider(MarketDataSettings())
    client = shared_client()
    get_inference(InferenceSettings(inference_endpoint_url="http://127.0.0.1:9"))
    executions.client()
    store = models.get_model_store()
    assert store.bundle(models.bundled_version()) is store.bundle(models.bundled_version())  # loaded once, kept
    functions = {name: cached(name) for name in CACHED}
    assert [name for name, f in functions.items() if not f.cache_info().currsize] == []

    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        secrets.create_secret(Name="ffe/test/cold", SecretString="before")
        assert parameters.get_secret("ffe/test/cold", max_age=300) == "before"
        secrets.put_secret_value(SecretId="ffe/test/cold", SecretString="after")
        assert parameters.get_secret("ffe/test/cold", max_age=300) == "before"  # Powertools' cache

        # When the container starts cold
        cold_start()

        # Then nothing is kept, and what was open is closed
        assert [name for name, f in functions.items() if f.cache_info().currsize] == []
        assert client.is_closed and shared_client() is not client
        assert models.get_model_store() is not store  # its loaded bundles go with it
        assert parameters.get_secret("ffe/test/cold", max_age=300) == "after"
