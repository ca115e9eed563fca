"""The stage's DynamoDB tables for moto, with the key schemas and billing mode ``template.yaml`` gives them."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from ffe.local.template import load_sam

ROOT = Path(__file__).resolve().parents[2]


@cache
def _schema(logical_id: str) -> dict[str, Any]:
    properties = load_sam(ROOT)["Resources"][logical_id]["Properties"]
    return {key: properties[key] for key in ("AttributeDefinitions", "KeySchema", "BillingMode")}


def breaker_table(ddb: Any, name: str = "breakers") -> Any:
    """A table shaped as the stage's CircuitBreakerTable (breakers and rate limits), in ``ddb`` (a boto3 resource)."""
    return ddb.create_table(TableName=name, **_schema("CircuitBreakerTable"))


def bar_cache_table(ddb: Any, name: str = "bars") -> Any:
    """A table shaped as the stage's BarCacheTable, in ``ddb`` (a boto3 resource)."""
    return ddb.create_table(TableName=name, **_schema("BarCacheTable"))
