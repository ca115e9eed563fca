"""A Distributed Map cycle's files in the stage's cycles bucket (``s3://ffe-<stage>-cycles-<account>/``).

- ``cycles/<timeframe>/<cycle id>/universe.json``: the assets the cycle decides, written by "Open the cycle" (a JSON
  array of ``UniverseItem``), read by the Map's ItemReader. A snapshot, so an edit of the universe file while the
  cycle runs never changes what it decides, and the record of what it decided over stays.
- ``map-runs/<map run id>/``: what the Map's ResultWriter wrote (``manifest.json`` and the ``SUCCEEDED_n.json`` /
  ``FAILED_n.json`` files of its child executions), read by "Close the distributed cycle".

The format of the ResultWriter's files is AWS's ("Processing the output of a Distributed Map state",
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html): the manifest names each
result file by ``Key``; a result file is a JSON array of child executions, each with ``Input`` and ``Output`` as
JSON strings and, when it failed, ``Error`` and ``Cause``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ffe.adapters.s3_files import S3Files
from ffe.contracts import AssetOutcome, MapRunResults, UniverseItem, UniverseSnapshot
from ffe.domain.errors import InvalidInputError


def snapshot_key(timeframe: str, cycle_id: str) -> str:
    return f"cycles/{timeframe}/{cycle_id}/universe.json"


class CycleFiles(S3Files):
    def write_snapshot(
        self, timeframe: str, cycle_id: str, items: Sequence[UniverseItem], source: str
    ) -> UniverseSnapshot:
        key = snapshot_key(timeframe, cycle_id)
        body = json.dumps([item.model_dump(mode="json") for item in items], separators=(",", ":")).encode()
        with self.errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return UniverseSnapshot(bucket=self.bucket, key=key, count=len(items), source=source)

    def read_results(self, results: MapRunResults) -> list[AssetOutcome]:
        """Every asset's outcome the Map's child executions returned; each asset of a child execution that
        failed is ``unconfirmed``, with the child's error."""
        manifest = self._json(results.bucket, results.key)
        files = manifest.get("ResultFiles", {}) if isinstance(manifest, dict) else {}
        outcomes: list[AssetOutcome] = []
        for status in ("SUCCEEDED", "FAILED", "PENDING"):
            for entry in files.get(status, []) or []:
                for child in self._json(manifest.get("DestinationBucket") or results.bucket, entry["Key"]):
                    outcomes.extend(_child_outcomes(child))
        return outcomes

    def _json(self, bucket: str, key: str) -> Any:
        uri = f"s3://{bucket}/{key}"
        with self.errors("read", key):
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            return json.loads(body)
        except ValueError as exc:
            raise InvalidInputError(f"{uri} is not JSON: {exc}") from None


def _child_outcomes(child: dict[str, Any]) -> list[AssetOutcome]:
    output = _loads(child.get("Output"))
    if child.get("Status") == "SUCCEEDED" and isinstance(output, dict):
        return [
            AssetOutcome.model_validate(raw) for raw in (output.get("outcomes") or []) + (output.get("orders") or [])
        ]
    given = _loads(child.get("Input"))
    items = given.get("Items", []) if isinstance(given, dict) else []
    error = f"{child.get('Error') or child.get('Status')}: {child.get('Cause') or ''}".strip(": ")[:256]
    name = str(child.get("Name") or child.get("ExecutionArn") or "?")
    return [
        AssetOutcome(asset=item.get("asset"), outcome="unconfirmed", error=f"batch {name}: {error}"[:256])
        for item in items
        if isinstance(item, dict)
    ]


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None
