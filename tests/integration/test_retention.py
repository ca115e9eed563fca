"""Decision retention on a real PostgreSQL, exporting to moto's S3: old months exported first, then dropped."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import psycopg
import pytest
from moto import mock_aws

from ffe.adapters.database import Database
from ffe.adapters.decision_archive import GzipStream, S3DecisionArchive
from ffe.adapters.store import PostgresDecisionStore
from ffe.steps.retain import month_cutoff, retain_decisions
from tests.database import own_database
from tests.integration.test_store_writes import decision

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # 90 days back is 2026-03-17: January and February go
DAYS = {
    datetime(2026, 1, 10, 12, 1, tzinfo=UTC): 2,
    datetime(2026, 2, 20, 9, 1, tzinfo=UTC): 3,
    datetime(2026, 3, 5, 9, 1, tzinfo=UTC): 1,
    datetime(2026, 6, 1, 0, 1, tzinfo=UTC): 1,
}
BUCKET = "ffe-test-decision-archive"


@pytest.fixture
def store_url(postgres: str) -> str:
    url = own_database(postgres, "retention_test")
    store = PostgresDecisionStore(url, stage="test")
    for as_of, assets in DAYS.items():
        for i in range(assets):
            store.record_decision(decision(f"cycle-{as_of:%Y%m%d}", as_of, asset=f"ASSET{i}"))
    store.database.close()
    return url


@pytest.fixture
def s3() -> Iterator[object]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def partitions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'decisions'::regclass ORDER BY 1"
        ).fetchall()
    return [name for (name,) in rows]


def test_the_cutoff_is_the_start_of_the_month_the_window_ends_in() -> None:
    assert month_cutoff(NOW, 90) == datetime(2026, 3, 1, tzinfo=UTC)
    assert month_cutoff(datetime(2026, 3, 31, 23, tzinfo=UTC), 30) == datetime(2026, 3, 1, tzinfo=UTC)
    assert month_cutoff(datetime(2026, 3, 1, 0, 30, tzinfo=UTC), 1) == datetime(2026, 2, 1, tzinfo=UTC)


def test_old_partitions_are_exported_first_then_dropped_and_a_second_run_does_nothing(store_url: str, s3) -> None:
    archive = S3DecisionArchive(s3, BUCKET, "decisions/", "test")
    seen_at_export: list[tuple[str, bool]] = []
    seen_partitions: list[list[str]] = []

    def export(partition: str, chunks: Iterator[bytes]) -> str:
        seen_partitions.append(partitions(store_url))
        seen_at_export.append((partition, partition in seen_partitions[-1]))  # still there while exported
        return archive(partition, chunks)

    database = Database(store_url, name="decision store", lock_timeout_ms=3000)
    result = retain_decisions(database, retention_days=90, now=NOW, export=export)

    assert result.dropped == ["decisions_2026_01", "decisions_2026_02"]
    assert seen_at_export == [("decisions_2026_01", True), ("decisions_2026_02", True)]
    assert seen_partitions[1] == ["decisions_2026_02", "decisions_2026_03", "decisions_2026_06"]  # one at a time
    assert partitions(store_url) == ["decisions_2026_03", "decisions_2026_06"]
    assert result.exported == {
        name: f"s3://{BUCKET}/decisions/test/{name}.csv.gz" for name in ("decisions_2026_01", "decisions_2026_02")
    }
    body = s3.get_object(Bucket=BUCKET, Key="decisions/test/decisions_2026_02.csv.gz")["Body"].read()
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(body).decode())))
    assert [r["asset"] for r in rows] == ["ASSET0", "ASSET1", "ASSET2"]
    assert {r["cycle_id"] for r in rows} == {"cycle-20260220"} and json.loads(rows[0]["source"])["provider"] == "replay"

    again = retain_decisions(database, retention_days=90, now=NOW, export=export)
    assert again.dropped == [] and again.exported == {} and len(seen_at_export) == 2
    assert partitions(store_url) == ["decisions_2026_03", "decisions_2026_06"]
    database.close()


def test_without_an_archive_the_partitions_are_dropped_unexported(store_url: str) -> None:
    database = Database(store_url)
    result = retain_decisions(database, retention_days=30, now=NOW, export=None)
    assert result.dropped == ["decisions_2026_01", "decisions_2026_02", "decisions_2026_03"] and not result.exported
    database.close()


def test_a_failed_export_drops_nothing(store_url: str) -> None:
    def broken(partition: str, chunks: Iterator[bytes]) -> str:
        raise OSError("S3 unreachable")

    database = Database(store_url)
    with pytest.raises(OSError, match="S3 unreachable"):
        retain_decisions(database, retention_days=90, now=NOW, export=broken)
    assert len(partitions(store_url)) == 4
    database.close()


def test_the_handler_runs_from_the_environment_and_emits_the_count(
    store_url: str, s3, monkeypatch: pytest.MonkeyPatch, lambda_context, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.retain_decisions import handler

    monkeypatch.setenv("DATABASE_URL", store_url)
    monkeypatch.setenv("DECISION_ARCHIVE_BUCKET", BUCKET)
    monkeypatch.setenv("STAGE", "test")
    days = (datetime.now(UTC) - datetime(2026, 4, 2, tzinfo=UTC)).days  # the window ends on 2 April: Jan-Mar go
    monkeypatch.setenv("DECISION_RETENTION_DAYS", str(days))
    result = handler.lambda_handler({}, lambda_context)
    assert result["dropped"] == ["decisions_2026_01", "decisions_2026_02", "decisions_2026_03"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = [m["retention_partitions_dropped"] for m in emf if "retention_partitions_dropped" in m]
    assert [v[0] if isinstance(v, list) else v for v in values] == [3]  # EMF may carry a value as a list


def test_the_gzip_stream_reads_back_what_went_in() -> None:
    chunks = [b"a,b\n", b"", b"1,2\n" * 10_000]
    packed = io.BufferedReader(GzipStream(chunks), buffer_size=4096).read()
    assert gzip.decompress(packed) == b"".join(chunks)


def test_a_run_cut_short_keeps_the_partitions_it_finished(store_url: str, s3) -> None:
    archive = S3DecisionArchive(s3, BUCKET, "decisions/", "test")
    calls: list[str] = []

    def export_then_time_out(partition: str, chunks: Iterator[bytes]) -> str:
        calls.append(partition)
        if len(calls) == 2:
            raise TimeoutError("the Lambda ran out of time")
        return archive(partition, chunks)

    database = Database(store_url)
    with pytest.raises(TimeoutError):
        retain_decisions(database, retention_days=90, now=NOW, export=export_then_time_out)
    assert partitions(store_url) == ["decisions_2026_02", "decisions_2026_03", "decisions_2026_06"]
    result = retain_decisions(database, retention_days=90, now=NOW, export=archive)
    assert result.dropped == ["decisions_2026_02"] and list(result.exported) == ["decisions_2026_02"]
    database.close()
