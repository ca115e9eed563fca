"""tests/unit needs neither PostgreSQL nor moto, and must not even import them.

When every selected test is a unit test (``make unit``, ``pytest tests/unit/...``), the first test after
which psycopg or moto is in ``sys.modules`` fails, naming the module that was loaded; a test module that
imports one at collection is named by the first test's failure. Tests that need either belong in
tests/integration (or tests/e2e, tests/api).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FORBIDDEN = ("moto", "psycopg")
UNIT = Path(__file__).resolve().parent
_collected: dict[str, str] = {}  # forbidden module -> the unit test module whose collection loaded it
_reported = False


def loaded() -> list[str]:
    return [name for name in FORBIDDEN if name in sys.modules]


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.nodeid.endswith(".py"):
        for name in loaded():
            _collected.setdefault(name, report.nodeid)


def _only_unit_tests(session: pytest.Session) -> bool:
    return bool(session.items) and all(UNIT in item.path.parents for item in session.items)


@pytest.fixture(autouse=True)
def _no_database_or_moto(request: pytest.FixtureRequest) -> Iterator[None]:
    global _reported
    yield
    if _reported or not _only_unit_tests(request.session):
        return
    if names := loaded():
        _reported = True
        where = "; ".join(
            f"{name} by collecting {_collected[name]}" if name in _collected else f"{name} by {request.node.nodeid}"
            for name in names
        )
        pytest.fail(f"a unit test imported {', '.join(names)} ({where}): move it to tests/integration")
