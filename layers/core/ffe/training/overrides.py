"""``--set KEY=VALUE``: change one training hyper-parameter of a ``TrainPlan`` (``ffe evaluate --set``).

Keys are the plan's fields (``ewc_lambda``, ``online_fraction``...) or its meta-controller config's as
``meta.<field>`` (``meta.churn_penalty``, ``meta.hidden``...); the value is parsed as the field's type
(``meta.hidden=64,32`` is a tuple). What a walk-forward fold or the command itself sets (``seed``, ``symbols``,
``train_end``, ``progress``) cannot be set, and a bad key or value is a ``ValueError`` naming it. The new plan is
built here, so the plan's and the config's own checks (``TrainPlan.__post_init__``, ``MetaTrainConfig.__post_init__``:
every number finite and in its range) refuse a value the training could not run with before any training starts.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

from ffe.training.meta_config import MetaTrainConfig

FIXED = frozenset({"seed", "symbols", "train_end", "progress", "meta", "meta.seed", "data_files"})


def apply_overrides(plan: Any, assignments: Sequence[str]) -> Any:
    """``plan`` with each ``KEY=VALUE`` applied, in order.

    Raises:
        ValueError: an assignment without ``=``, an unknown or fixed key, a value of the wrong type, or a value
            out of its range (the message names the setting: ``--set: meta.hidden: every layer width must be...``).
    """
    top: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {assignment!r}")
        if key in FIXED:
            raise ValueError(f"--set {key}: set by the command itself, not a hyper-parameter")
        target, owner, name = (meta, MetaTrainConfig, key[5:]) if key.startswith("meta.") else (top, type(plan), key)
        hints = typing.get_type_hints(owner)
        if name not in {f.name for f in dataclasses.fields(owner)}:
            raise ValueError(f"--set {key}: no such setting; settings: {', '.join(settable(plan))}")
        target[name] = _parse(key, text.strip(), hints[name])
    try:
        new_meta = dataclasses.replace(plan.meta, **meta) if meta else plan.meta
        return dataclasses.replace(plan, meta=new_meta, **top)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--set: {exc}") from None


def settable(plan: Any) -> list[str]:
    """Every key ``apply_overrides`` accepts."""
    names = [f.name for f in dataclasses.fields(plan) if f.name not in FIXED]
    return names + [f"meta.{f.name}" for f in dataclasses.fields(MetaTrainConfig) if f"meta.{f.name}" not in FIXED]


def _parse(key: str, text: str, hint: Any) -> Any:
    kinds = typing.get_args(hint) or (hint,)
    if tuple in {typing.get_origin(k) for k in kinds} and "," in text:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"--set {key}={text}: not integers separated by commas") from None
    for kind in kinds:
        if kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                continue
        if kind is str:  # meta.reward_position=traded; the config checks the value
            return text
    raise ValueError(f"--set {key}={text}: not a {' or '.join(getattr(k, '__name__', str(k)) for k in kinds)}")


__all__ = ["apply_overrides", "settable"]
