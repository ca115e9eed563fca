"""Request bodies as the API reads them: JSON (RFC 8259) with bounded nesting and numbers, each key once.

The resolver hands every JSON body to ``parse``. pydantic-core's parser checks it first: nesting of
about 200 levels at most, integers of about 4,300 digits at most, no ``NaN`` or ``Infinity`` tokens,
no lone surrogate escapes. The standard library then reads it again to find a key given twice in one
object, which either parser would otherwise settle silently by keeping one of the values. What is
refused raises ``InvalidJsonBody``.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic_core

from ffe.api.problems import shown


class InvalidJsonBody(ValueError):
    """The body is not JSON this API accepts; the message says why, naming at most the start of a key."""


def parse(text: str) -> Any:
    try:
        pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as exc:  # e.g. "recursion limit exceeded at line 1 column 202"
        raise InvalidJsonBody(f"not valid JSON: {exc}") from None
    return json.loads(text, object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise InvalidJsonBody(f"key {shown(key)!r} is given more than once")
        seen.add(key)
    return dict(pairs)
