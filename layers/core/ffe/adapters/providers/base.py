"""What every live provider shares: the HTTP call, error classification with full context, symbols.

A provider module only knows its endpoints and its JSON; this module turns transport failures and
HTTP statuses into the engine's errors (``AuthError``, ``RateLimitedError``, ``TransientError``,
``InvalidInputError``), always naming provider, asset, timeframe, HTTP status and request id, and
never the query string (Alpha Vantage puts the API key there).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ffe.containers import container_cached
from ffe.domain.errors import AuthError, InvalidInputError, RateLimitedError, TransientError
from ffe.domain.models import Timeframe

# httpx logs every request URL at INFO, query string included, and Alpha Vantage's key is in the query.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Every call has a timeout: connect fast, read within a Lambda-friendly budget.
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
USER_AGENT = "ffe/0.1 (+https://github.com/ffe; market-data fetcher)"
REQUEST_ID_HEADERS = ("RequestID", "x-request-id", "cb-request-id", "x-amzn-requestid", "cf-ray")
_AUTH_WORDING = re.compile(r"auth|permission|credential|api[ _-]?key|unauthori[sz]ed|forbidden|token", re.I)

Credentials = Callable[[], Mapping[str, str]]  # read at call time, so rotated secrets are picked up


@dataclass(frozen=True, slots=True)
class Call:
    """Who is asking for what: the context every error carries."""

    provider: str
    asset: str | None = None
    timeframe: Timeframe | None = None

    def context(self, response: httpx.Response | None = None, **extra: object) -> dict[str, object]:
        ctx: dict[str, object] = {"provider": self.provider, "asset": self.asset, "timeframe": self.timeframe}
        if response is not None:
            ctx["http_status"] = response.status_code
            ctx["request_id"] = request_id(response)
            ctx["endpoint"] = f"{response.request.method} {response.request.url.copy_with(query=None)}"
        ctx.update(extra)
        return ctx


@container_cached
def shared_client() -> httpx.Client:
    """One pooled client per container, so warm invocations reuse TLS connections (closed on a cold start)."""
    return httpx.Client(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}, follow_redirects=False)


def get_json(
    client: httpx.Client, call: Call, url: str, *, secrets: tuple[str, ...] = (), **kwargs: Any
) -> tuple[Any, httpx.Response]:
    """GET ``url`` and return its JSON body, or raise the classified error with full context.

    ``secrets`` (API keys, tokens) are blanked out of any provider text that goes into an error.
    """
    started = time.perf_counter()
    try:
        response = client.get(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientError(f"{call.provider} timed out: {type(exc).__name__}", **call.context()) from exc
    except httpx.TransportError as exc:
        detail = redact(str(exc), secrets)
        raise TransientError(f"{call.provider} unreachable: {type(exc).__name__}: {detail}", **call.context()) from exc
    raise_for_status(call, response, secrets)
    try:
        body = response.json()
    except ValueError as exc:
        raise InvalidInputError(
            f"{call.provider} returned malformed JSON ({len(response.content)} bytes)",
            **call.context(response, latency_ms=round((time.perf_counter() - started) * 1000)),
        ) from exc
    return body, response


def raise_for_status(call: Call, response: httpx.Response, secrets: tuple[str, ...] = ()) -> None:
    """401/403 or auth wording -> AuthError; 429 -> RateLimitedError; 5xx -> TransientError; 4xx -> invalid."""
    status = response.status_code
    if status < 400:
        return
    message = redact(provider_message(response), secrets)
    ctx = call.context(response)
    if status in (401, 403) or (status < 500 and _AUTH_WORDING.search(message)):
        raise AuthError(f"{call.provider} rejected the credentials: {message}", **ctx)
    if status == 429:
        retry_after = retry_after_seconds(response)
        raise RateLimitedError(f"{call.provider} rate limit: {message}", retry_after_seconds=retry_after, **ctx)
    if status >= 500:
        raise TransientError(f"{call.provider} server error: {message}", **ctx)
    raise InvalidInputError(f"{call.provider} refused the request: {message}", **ctx)


def looks_like_auth(text: str) -> bool:
    """Auth wording. Check rate-limit wording first: some limit notices mention "API key" too."""
    return bool(_AUTH_WORDING.search(text))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def provider_message(response: httpx.Response) -> str:
    """The provider's own words for an error: a JSON message field, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("errorMessage", "message", "error", "Error Message", "Information", "Note", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return str(body)[:200]


def request_id(response: httpx.Response) -> str | None:
    for header in REQUEST_ID_HEADERS:
        if header in response.headers:
            return response.headers[header]
    return None


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


def split_pair(symbol: str) -> tuple[str, str]:
    """'EURUSD' -> ('EUR', 'USD'); 'BTCUSD' -> ('BTC', 'USD'). Quotes are 3-letter currency codes."""
    if len(symbol) < 6:
        raise InvalidInputError(f"{symbol!r} is not a currency pair")
    return symbol[:-3], symbol[-3:]


def parse_price(value: Any, field: str, call: Call) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{call.provider} sent a non-numeric {field}: {value!r}", **call.context()) from exc
