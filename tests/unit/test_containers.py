"""The registry of warm-container state (ffe.containers): what is registered is kept, and reset() forgets it."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import uuid

import pytest

from ffe import containers
from ffe.containers import container_cached, on_reset


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """What these tests register leaves with them (a copy of the registry, restored afterwards)."""
    monkeypatch.setattr(containers, "_RESETS", dict(containers._RESETS))


class Resource:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_cached_result_is_kept_per_arguments_until_reset() -> None:
    built: list[str] = []

    @container_cached
    def resource(name: str) -> Resource:
        built.append(name)
        return Resource(name)

    first = resource("a")
    assert resource("a") is first and resource(name="a") is not None
    assert resource("b") is not first
    assert resource.cache_info().currsize == 3  # positional and keyword calls are kept apart, as functools does
    containers.reset()
    assert resource.cache_info().currsize == 0
    assert first.closed  # forgotten means closed: a connection does not outlive its container
    assert resource("a") is not first and built == ["a", "a", "b", "a"]


def test_a_result_without_close_is_simply_forgotten() -> None:
    @container_cached
    def settings() -> dict[str, str]:
        return {"stage": "dev"}

    kept = settings()
    containers.reset()
    assert settings() is not kept


def test_the_registry_knows_what_it_forgets() -> None:
    @container_cached
    def client() -> object:
        return object()

    assert f"{__name__}.test_the_registry_knows_what_it_forgets.<locals>.client" in containers.registered()
    assert client.__name__ == "client" and client.__doc__ is None  # it wraps the function (functools.wraps)


def test_other_state_registers_its_own_reset() -> None:
    state = {"warm": True}
    on_reset(f"test-{uuid.uuid4()}", state.clear)
    containers.reset()
    assert state == {}


def test_one_failing_reset_does_not_keep_the_rest_warm(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("cannot forget")

    forgotten: list[bool] = []
    on_reset(f"test-broken-{uuid.uuid4()}", broken)
    on_reset(f"test-after-{uuid.uuid4()}", lambda: forgotten.append(True))
    with caplog.at_level(logging.WARNING, logger="ffe.containers"):
        containers.reset()
    assert forgotten == [True]
    assert "cannot forget" in caplog.text


def test_threads_racing_for_a_result_build_it_once() -> None:
    built: list[int] = []
    barrier = threading.Barrier(8)

    @container_cached
    def slow() -> Resource:
        built.append(1)
        return Resource("slow")

    def call() -> None:
        barrier.wait()
        slow()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == [1]


def test_the_registry_imports_neither_psycopg_nor_moto() -> None:
    code = (
        "import sys, ffe.containers, ffe.settings; ffe.containers.reset(); "
        "print(sorted(m for m in ('psycopg', 'moto', 'boto3', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
