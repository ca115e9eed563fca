"""What a warm Lambda container keeps between invocations, registered in one place.

Lambda reuses a container for many invocations, so what the first one builds (parsed settings, database
connections, HTTP and AWS clients, the model bundle) is kept at module level for the next. Every such piece
of state is registered here, either by building it through ``container_cached`` (a function whose results
are kept; a kept result that has a ``close()`` method is closed when forgotten) or, for state that is not a
function's result, with ``on_reset``. ``reset()`` forgets all of it, so the process behaves like a cold
container again: the local runtime calls it around its in-process Lambda functions and every test starts
with it.

State is registered when its module is imported, so ``reset()`` reaches exactly the modules in use. This
module imports nothing beyond the standard library (the unit tests call it without psycopg or moto).
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, NamedTuple, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger(__name__)
_RESETS: dict[str, Callable[[], None]] = {}  # by qualified name: a module imported again replaces its entry
_REGISTRY_LOCK = threading.Lock()


class CacheInfo(NamedTuple):
    """As ``functools.cache``'s: how many results are kept (``currsize``)."""

    hits: int
    misses: int
    maxsize: None
    currsize: int


class ContainerCached(Generic[P, R]):
    """``functools.cache`` for container state: results are kept per arguments until ``reset()``.

    Unlike ``functools.cache``, a result is built at most once per arguments even when threads race for it
    (the local runtime runs a Map's branches in threads), and forgetting it closes it when it can be closed.
    """

    __name__: str  # the function's, as functools.update_wrapper copies them
    __wrapped__: Callable[P, R]

    def __init__(self, func: Callable[P, R]) -> None:
        functools.update_wrapper(self, func)
        self._func = func
        self._values: dict[Hashable, R] = {}
        self._lock = threading.RLock()  # re-entrant: a builder may call another cached function
        self._hits = self._misses = 0

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key: Hashable = (args, tuple(sorted(kwargs.items())))
        with self._lock:
            if key in self._values:
                self._hits += 1
                return self._values[key]
            self._misses += 1
            value = self._func(*args, **kwargs)
            self._values[key] = value
            return value

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, None, len(self._values))

    def cache_clear(self) -> None:
        """Forget every kept result, closing those that can be closed."""
        with self._lock:
            values = list(self._values.values())
            self._values.clear()
            self._hits = self._misses = 0
        for value in values:
            _close(value)


def container_cached(func: Callable[P, R]) -> ContainerCached[P, R]:
    """Keep ``func``'s results for the container's life (per arguments, which must be hashable)."""
    cached = ContainerCached(func)
    on_reset(f"{func.__module__}.{func.__qualname__}", cached.cache_clear)
    return cached


def on_reset(name: str, forget: Callable[[], None]) -> None:
    """Register ``forget`` (under a unique ``name``, e.g. the module and attribute) to run on ``reset()``."""
    with _REGISTRY_LOCK:
        _RESETS[name] = forget


def registered() -> list[str]:
    """The names of the state ``reset()`` forgets (in registration order)."""
    with _REGISTRY_LOCK:
        return list(_RESETS)


def reset() -> None:
    """Forget every registered piece of container state, as a cold start would.

    Every registered function runs even when one fails (a failure is logged), so one broken close never
    leaves the rest of a warm container behind.
    """
    with _REGISTRY_LOCK:
        resets = list(_RESETS.items())
    for name, forget in resets:
        try:
            forget()
        except Exception:
            _log.warning("resetting container state %s failed", name, exc_info=True)


def _close(value: Any) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            _log.warning("closing %r failed", value, exc_info=True)


def _clear_powertools_parameters() -> None:
    """Powertools keeps the secrets and parameters it read (``max_age``) in module state: a cold start has none."""
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:
        parameters.clear_caches()


on_reset("aws_lambda_powertools.utilities.parameters", _clear_powertools_parameters)
