"""Live broker adapters (Coinbase Advanced Trade, OANDA v20) over httpx, and what they share.

Each adapter implements ``ffe.domain.ports.Broker``. This module holds the HTTP call for any method
(the providers' ``get_json`` is GET-only) on top of ``providers.base.raise_for_status``, the auth errors
with a fix hint, and strict decimal parsing: a broker read never turns a bad number into a default.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from ffe.adapters.providers.base import Call, provider_message, raise_for_status, redact
from ffe.domain.errors import AuthError, InvalidInputError, TransientError
from ffe.domain.portfolio import OrderRequest, ProductRules


def send_json(
    client: httpx.Client,
    call: Call,
    method: str,
    url: str,
    *,
    hint: str,
    forbidden_hint: str | None = None,
    secrets: tuple[str, ...] = (),
    accept: tuple[int, ...] = (),
    **kwargs: Any,
) -> tuple[Any, httpx.Response]:
    """Send one request and return its JSON body, or raise the classified error with full context.

    ``accept`` lists 4xx statuses whose body the caller reads itself (a venue's order rejection, a
    "no such order"); 401 and 403 are never accepted. ``hint`` says which secret to fix and is added to
    every AuthError, ``forbidden_hint`` (which permission) replaces it on a 403. ``secrets`` are blanked out of
    any venue text in an error.
    """
    endpoint = f"{method} {httpx.URL(url).copy_with(query=None)}"
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientError(
            f"{call.provider} timed out: {type(exc).__name__}", **call.context(endpoint=endpoint)
        ) from exc
    except httpx.TransportError as exc:
        detail = redact(str(exc), secrets)
        raise TransientError(
            f"{call.provider} unreachable: {type(exc).__name__}: {detail}", **call.context(endpoint=endpoint)
        ) from exc
    if response.status_code in (401, 403) or response.status_code not in accept:
        chosen = forbidden_hint if response.status_code == 403 and forbidden_hint else hint
        check_status(call, response, hint=chosen, secrets=secrets)
    try:
        body = response.json()
    except ValueError as exc:
        raise InvalidInputError(
            f"{call.provider} returned malformed JSON ({len(response.content)} bytes)", **call.context(response)
        ) from exc
    return body, response


def check_status(call: Call, response: httpx.Response, *, hint: str, secrets: tuple[str, ...] = ()) -> None:
    """``raise_for_status``, with the fix hint added to an AuthError."""
    try:
        raise_for_status(call, response, secrets)
    except AuthError as exc:
        message = redact(provider_message(response), secrets)
        raise AuthError(
            f"{call.provider} rejected the credentials (HTTP {response.status_code}: {message}). Fix: {hint}",
            **exc.context,
        ) from exc


def decimal_field(
    value: Any, field: str, call: Call, response: httpx.Response | None = None, *, signed: bool = False
) -> Decimal:
    """A finite decimal from a JSON string or integer; negative only when ``signed``. Floats are refused
    as well as NaN and infinities: every venue here sends amounts as decimal strings."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInputError(
            f"{call.provider} sent {field} = {value!r}, not a decimal string", **call.context(response)
        )
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise InvalidInputError(
            f"{call.provider} sent a non-numeric {field}: {value!r}", **call.context(response)
        ) from exc
    if not number.is_finite():
        raise InvalidInputError(f"{call.provider} sent a non-finite {field}: {value!r}", **call.context(response))
    if number < 0 and not signed:
        raise InvalidInputError(f"{call.provider} sent a negative {field}: {value!r}", **call.context(response))
    return number


def field_of(body: Any, key: str, kind: type | tuple[type, ...], call: Call, response: httpx.Response) -> Any:
    """``body[key]`` when ``body`` is an object and the value has the expected JSON type."""
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidInputError(
            f"{call.provider} sent a body without {key!r} ({expected}): {str(body)[:160]}", **call.context(response)
        )
    return value


def check_quantity(order: OrderRequest, rules: ProductRules, call: Call) -> None:
    """Refuse, before anything is sent, a quantity that is not positive, below the venue minimum or off its
    increment (the risk gate rounds sizes; this is the last line)."""
    quantity = order.quantity
    context = call.context(client_order_id=order.client_order_id)
    if not isinstance(quantity, Decimal) or not quantity.is_finite() or quantity <= 0:
        raise InvalidInputError(
            f"{call.provider}: order quantity must be a positive Decimal, not {quantity!r}", **context
        )
    if quantity < rules.min_size:
        raise InvalidInputError(
            f"{call.provider}: {quantity} {call.asset} is below the venue minimum {rules.min_size}; not sent", **context
        )
    if quantity % rules.size_increment:
        raise InvalidInputError(
            f"{call.provider}: {quantity} {call.asset} is not a multiple of the increment {rules.size_increment}; "
            "not sent",
            **context,
        )


class RulesCache:
    """A venue's product rules, kept for ``ttl_s`` (they change rarely; every order needs them)."""

    def __init__(self, monotonic: Callable[[], float], ttl_s: float = 300.0) -> None:
        self._monotonic = monotonic
        self._ttl_s = ttl_s
        self._rules: dict[str, tuple[float, ProductRules]] = {}

    def get(self, asset: str) -> ProductRules | None:
        cached = self._rules.get(asset)
        return cached[1] if cached is not None and self._monotonic() - cached[0] < self._ttl_s else None

    def put(self, rules: ProductRules) -> ProductRules:
        self._rules[rules.asset] = (self._monotonic(), rules)
        return rules


def plain(number: Decimal) -> str:
    """A decimal as venues want it: no exponent ('1E-8' -> '0.00000001')."""
    return format(number, "f")
