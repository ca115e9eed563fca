"""The versioned cache both model stores share: loaded once, the most recently used kept, failures remembered
for a while and only failures of the loader's own kind."""

from __future__ import annotations

import pytest

from ffe.version_cache import VersionCache


class Missing(Exception):
    pass


def test_a_version_loads_once_and_the_least_recently_used_goes_first() -> None:
    loads: list[str] = []

    def load(version: str) -> str:
        loads.append(version)
        return version.upper()

    cache = VersionCache(load, Missing, capacity=2)
    assert [cache.get("a"), cache.get("b"), cache.get("a")] == ["A", "B", "A"]
    cache.get("c")  # over capacity: b was used least recently
    assert cache.versions() == ["a", "c"] and loads == ["a", "b", "c"]
    cache.get("b")
    assert loads == ["a", "b", "c", "b"]


def test_a_failure_of_the_loaders_kind_is_remembered_until_it_expires() -> None:
    now = [0.0]
    attempts: list[str] = []

    def load(version: str) -> str:
        attempts.append(version)
        raise Missing(f"{version} is not published")

    cache = VersionCache(load, Missing, failure_seconds=60, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(Missing, match="not published"):
            cache.get("v")
    assert attempts == ["v"]
    now[0] = 61.0
    with pytest.raises(Missing):
        cache.get("v")
    assert attempts == ["v", "v"]


def test_other_errors_are_not_remembered() -> None:
    attempts: list[str] = []

    def load(version: str) -> str:
        attempts.append(version)
        raise TimeoutError("S3 slow")

    cache = VersionCache(load, Missing)
    for _ in range(2):
        with pytest.raises(TimeoutError):
            cache.get("v")
    assert attempts == ["v", "v"]
