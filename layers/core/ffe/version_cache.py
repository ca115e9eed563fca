"""Immutable things by version, loaded once: the model store's bundles (``ffe.adapters.models``) and the endpoint's
policies (``gpu_inference.predictor``).

A version never changes once published, so what loaded is kept with no expiry (the ``capacity`` most recently
used). One load per version runs at a time; a caller that arrives meanwhile waits and reads its result. A failure
of the loader's ``failure`` class is remembered ``failure_seconds`` and raised again to every caller in that time,
so a version that is missing is looked for once a minute however many ask; any other error is not remembered.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class VersionCache(Generic[T]):
    def __init__(
        self,
        load: Callable[[str], T],
        failure: type[Exception],
        capacity: int = 8,
        failure_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load, self._failure = load, failure
        self._capacity, self._failure_seconds, self._clock = capacity, failure_seconds, clock
        self._lock = threading.Lock()
        self._loaded: OrderedDict[str, T] = OrderedDict()
        self._failed: dict[str, tuple[float, Exception]] = {}
        self._loading: dict[str, threading.Lock] = {}

    def get(self, version: str) -> T:
        """What ``version`` loads to, loading it at most once (see the module's docstring).

        Raises:
            the loader's ``failure`` (remembered), or whatever else it raised (not remembered).
        """
        with self._lock:
            if (hit := self._loaded.get(version)) is not None:
                self._loaded.move_to_end(version)
                return hit
            self._raise_remembered(version)
            gate = self._loading.setdefault(version, threading.Lock())
        with gate:
            with self._lock:
                if (hit := self._loaded.get(version)) is not None:
                    return hit
                self._raise_remembered(version)
            try:
                value = self._load(version)
            except self._failure as exc:
                with self._lock:
                    now = self._clock()
                    self._failed = {v: f for v, f in self._failed.items() if now - f[0] < self._failure_seconds}
                    self._failed[version] = (now, exc)
                    self._loading.pop(version, None)
                raise
            self.put(version, value)
            return value

    def put(self, version: str, value: T) -> None:
        with self._lock:
            self._failed.pop(version, None)
            self._loading.pop(version, None)
            self._loaded[version] = value
            while len(self._loaded) > self._capacity:
                self._loaded.popitem(last=False)

    def versions(self) -> list[str]:
        """The versions held now, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()
            self._failed.clear()

    def _raise_remembered(self, version: str) -> None:
        failed = self._failed.get(version)
        if failed is not None and self._clock() - failed[0] < self._failure_seconds:
            raise failed[1]
