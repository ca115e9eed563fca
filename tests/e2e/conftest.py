"""The end-to-end tests run whole cycles offline: a real PostgreSQL (tests/database.py) and moto."""

from types import SimpleNamespace

import pytest
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from tests.database import fixture_database_url, fixture_db, fixture_postgres, fixture_reservations

__all__ = ["fixture_database_url", "fixture_db", "fixture_postgres", "fixture_reservations", "fixture_retry_waits"]


@pytest.fixture(autouse=True, name="retry_waits")
def fixture_retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits moto's Step Functions interpreter asks for between a Retry's attempts, recorded, not slept.

    moto sleeps the ASL's real backoff (1 s, 2 s, 4 s, with full jitter) in the execution's thread; the tests need
    the attempts, not the seconds. The ASL is untouched: only the interpreter's clock is.
    """
    waits: list[float] = []
    monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=waits.append))
    return waits
