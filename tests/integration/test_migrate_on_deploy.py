"""The deploy-time migration custom resource, answering a real HTTP endpoint on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ffe.local.template import load_sam
from ffe.store.migrate import migration_files
from functions.migrate_database import handler as migrate_database
from tests.conftest import ROOT


class CloudFormationResponses:
    """Stands in for the pre-signed S3 URL CloudFormation waits on: records each PUT body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cfn-response?signature=x"


@pytest.fixture
def cloudformation() -> Iterator[CloudFormationResponses]:
    responses = CloudFormationResponses()
    yield responses
    responses.server.shutdown()


def event(kind: str, url: str) -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": url,
        "StackId": "arn:stack",
        "RequestId": "r1",
        "LogicalResourceId": "DatabaseMigration",
        "ResourceProperties": {},
    }


def test_create_migrates_and_reports_success(database_url, cloudformation, lambda_context) -> None:
    lambda_context.log_stream_name = "2026/01/01/[$LATEST]abc"
    migrate_database.lambda_handler(event("Create", cloudformation.url), lambda_context)
    body = cloudformation.bodies[-1]
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] == "ffe-schema"
    assert body["RequestId"] == "r1" and body["LogicalResourceId"] == "DatabaseMigration"


def test_failure_is_reported_not_left_hanging(cloudformation, lambda_context, monkeypatch) -> None:
    lambda_context.log_stream_name = "stream-1"
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@/ffe?host=/nonexistent&connect_timeout=1")
    migrate_database.lambda_handler(event("Update", cloudformation.url), lambda_context)
    body = cloudformation.bodies[-1]
    assert body["Status"] == "FAILED"
    assert "OperationalError" in body["Reason"] and "stream-1" in body["Reason"]


def test_delete_keeps_the_data(cloudformation, lambda_context) -> None:
    lambda_context.log_stream_name = "s"
    migrate_database.lambda_handler(event("Delete", cloudformation.url), lambda_context)
    assert cloudformation.bodies[-1]["Status"] == "SUCCESS"
    assert cloudformation.bodies[-1]["Data"] == {"Applied": "none"}


def test_template_runs_the_newest_migration_on_deploy() -> None:
    resource = load_sam(ROOT)["Resources"]["DatabaseMigration"]
    assert resource["Properties"]["SchemaVersion"] == migration_files()[-1][0], (
        "bump DatabaseMigration.SchemaVersion in template.yaml so CloudFormation runs the new migration"
    )
