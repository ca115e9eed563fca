"""`make test` runs every folder in one session, where tests/unit/conftest.py's guard cannot tell who imported
psycopg or moto: collecting tests/unit on its own, in a fresh interpreter, must import neither."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

COLLECT = """
import json, sys
import pytest
code = pytest.main(["--collect-only", "-q", "-p", "no:xdist", "tests/unit"])
print(json.dumps({"exit": int(code), "loaded": [m for m in ("moto", "psycopg") if m in sys.modules]}))
"""


def test_collecting_the_unit_tests_imports_neither_psycopg_nor_moto() -> None:
    run = subprocess.run([sys.executable, "-c", COLLECT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["exit"] == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert result["loaded"] == [], (
        f"collecting tests/unit imported {result['loaded']}: move the importer to tests/integration"
    )
