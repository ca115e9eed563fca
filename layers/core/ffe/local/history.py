"""Execution history as the Step Functions console's table view lists it: one row per state visit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ffe.steps.record import lambda_error_message


@dataclass(frozen=True)
class StateVisit:
    name: str
    type: str
    asset: str
    status: str  # Succeeded | Failed (caught or not) | Running
    started: datetime
    duration_ms: float
    attempts: int
    error: str


def state_visits(events: list[dict[str, Any]]) -> list[StateVisit]:
    """Group history events under the state entry they follow (via ``previousEventId`` chains)."""
    by_id = {e["id"]: e for e in events}
    owner: dict[int, int] = {}  # event id -> id of the StateEntered event it belongs to
    open_maps: list[int] = []
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            owner[event["id"]] = event["id"]
            if kind == "MapStateEntered":
                open_maps.append(event["id"])
        elif kind.startswith("Map") and open_maps:
            # A Map's own events follow its last iteration's events, not the Map's entry.
            owner[event["id"]] = open_maps[-1]
            if kind == "MapStateExited":
                open_maps.pop()
        elif event.get("previousEventId") in owner:
            owner[event["id"]] = owner[event["previousEventId"]]
    visits: list[StateVisit] = []
    for entered_id in sorted(set(owner.values())):
        entered = by_id[entered_id]
        members = [e for e in events if owner.get(e["id"]) == entered_id]
        visits.append(_visit(entered, members))
    return visits


def _visit(entered: dict[str, Any], members: list[dict[str, Any]]) -> StateVisit:
    details = entered["stateEnteredEventDetails"]
    types = [e["type"] for e in members]
    failures = [e for e in members if e["type"].endswith("Failed")]
    error = ""
    if failures:
        failure: dict[str, Any] = next((v for k, v in failures[-1].items() if k.endswith("EventDetails")), {})
        error = f"{failure.get('error', '')}: {lambda_error_message(failure.get('cause', ''))}".strip(": ")
    outcomes = [
        t for t in types if t.endswith(("Succeeded", "Failed", "TimedOut")) and not t.startswith("MapIteration")
    ]
    if outcomes and not outcomes[-1].endswith("Succeeded"):
        status = "Failed"
    elif any(t.endswith("StateExited") for t in types):
        status = "Succeeded"
    else:
        status = "Running"
    return StateVisit(
        name=details["name"],
        type=entered["type"].removesuffix("StateEntered"),
        asset=_asset(details.get("input")),
        status=status,
        started=entered["timestamp"],
        duration_ms=(members[-1]["timestamp"] - entered["timestamp"]).total_seconds() * 1000,
        attempts=types.count("LambdaFunctionScheduled"),
        error=error,
    )


def _asset(raw: str | None) -> str:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return ""
    asset = value.get("asset") if isinstance(value, dict) else None
    return asset if isinstance(asset, str) else ""
