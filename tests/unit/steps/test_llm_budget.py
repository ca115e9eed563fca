"""The LLM voter's budget per cycle (docs/scaling.md#the-llm-budget): the batch's assets within it are asked with the
LLM voter, the rest without, in at most two requests, the answers in the batch's order."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffe.domain.errors import PermanentError
from ffe.settings import InferenceSettings, get_settings
from ffe.steps.infer import split_by_llm


def assets(names: Sequence[str]) -> list[Any]:
    return [SimpleNamespace(asset=name) for name in names]


class Endpoint:
    def __init__(self) -> None:
        self.requests: list[tuple[list[str], bool]] = []

    def __call__(self, group: Sequence[Any], llm: bool) -> list[str]:
        self.requests.append(([inp.asset for inp in group], llm))
        return [f"{inp.asset}:{'llm' if llm else 'rl'}" for inp in group]


def test_a_batch_inside_the_budget_is_one_request_with_the_llm() -> None:
    endpoint = Endpoint()
    got = split_by_llm(assets(["A0", "A1", "A2"]), lambda inp: True, endpoint)
    assert got == ["A0:llm", "A1:llm", "A2:llm"] and endpoint.requests == [(["A0", "A1", "A2"], True)]


def test_a_batch_the_budget_ends_in_is_two_requests_answered_in_order() -> None:
    endpoint = Endpoint()
    within = {"A0", "A2"}
    got = split_by_llm(assets(["A0", "A1", "A2", "A3"]), lambda inp: inp.asset in within, endpoint)
    assert got == ["A0:llm", "A1:rl", "A2:llm", "A3:rl"]
    assert endpoint.requests == [(["A0", "A2"], True), (["A1", "A3"], False)]


@given(st.lists(st.booleans(), max_size=40))
def test_every_asset_is_answered_once_in_order_with_its_own_setting(wants: list[bool]) -> None:
    endpoint = Endpoint()
    names = [f"A{i}" for i in range(len(wants))]
    got = split_by_llm(assets(names), lambda inp: wants[names.index(inp.asset)], endpoint)
    assert got == [f"{n}:{'llm' if w else 'rl'}" for n, w in zip(names, wants, strict=True)]
    assert len(endpoint.requests) == len({*wants})  # one request per setting present, none for an empty group


def test_a_short_answer_is_an_error_not_a_misaligned_record() -> None:
    with pytest.raises(RuntimeError, match="answered 1 outcomes for 2 assets"):
        split_by_llm(assets(["A0", "A1"]), lambda inp: True, lambda group, llm: ["only one"])


def test_the_budget_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from ffe import containers

    monkeypatch.setenv("INFERENCE_LLM_ASSETS_PER_CYCLE", "-1")
    containers.reset()
    with pytest.raises(PermanentError, match="INFERENCE_LLM_ASSETS_PER_CYCLE"):
        get_settings(InferenceSettings)
    monkeypatch.setenv("INFERENCE_LLM_ASSETS_PER_CYCLE", "250")
    containers.reset()
    assert get_settings(InferenceSettings).inference_llm_assets_per_cycle == 250
    containers.reset()
