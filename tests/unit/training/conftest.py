"""Fixtures shared by the training tests: fitting once per session keeps the modules fast."""

from __future__ import annotations

import pytest

from ffe.training.meta import MetaTrainResult, train_meta
from ffe.training.meta_config import MetaTrainConfig
from tests.unit.training.prepared import Prepared, prepare


@pytest.fixture(scope="session")
def btc() -> Prepared:
    return prepare("BTCUSD", 2400)


@pytest.fixture(scope="session")
def spx() -> Prepared:
    return prepare("SPX", 1600)


@pytest.fixture(scope="session")
def quick_result(btc: Prepared, spx: Prepared) -> MetaTrainResult:
    return train_meta([btc.train, spx.train], MetaTrainConfig.quick(), progress=False)
