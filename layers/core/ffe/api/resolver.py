"""Powertools' REST resolver, plus what API Gateway's proxy integration leaves to the function.

- API Gateway passes the request path still percent-encoded (``/cycles/sched%3A1``). Each path parameter
  the route matched is decoded once (UTF-8; an invalid sequence becomes U+FFFD, which no id pattern
  accepts), so a client that encodes more than it must names the same resource. ``path_text`` gives
  the decoded text as sent, before validation turned it into a typed value.
- API Gateway passes ``HEAD`` on to the function too: its answer goes back without a body.
- Powertools only knows "not found": ``endpoint`` registers a route and remembers its path's methods, so a
  known path asked with another method can be told apart (``allowed_methods``: a 405 with ``Allow``), and
  a ``GET`` route answers ``HEAD`` too (not listed in the OpenAPI document).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import Route
from aws_lambda_powertools.utilities.typing import LambdaContext

F = TypeVar("F", bound=Callable[..., Any])


class ProxyResolver(APIGatewayRestResolver):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.methods: dict[str, set[str]] = {}  # path template -> the methods it is served with (HEAD included)

    def endpoint(self, method: str, path: str, **kwargs: Any) -> Callable[[F], F]:
        """``route`` that also remembers the path's methods (for 405 answers); a GET route answers HEAD too."""
        self.methods.setdefault(path, set()).update([method, "HEAD"] if method == "GET" else [method])

        def register(func: F) -> F:
            self.route(path, method, **kwargs)(func)
            if method == "GET":  # the resolver drops the body; HEAD is not in the OpenAPI document
                self.route(path, "HEAD", **{**kwargs, "include_in_schema": False})(func)
            return func

        return register

    def allowed_methods(self, path: str) -> set[str]:
        """The methods of every route whose template matches ``path`` (empty: no route serves it)."""
        return {m for template, methods in self.methods.items() if _template(template).match(path) for m in methods}

    def current_route(self) -> Route | None:
        """The route serving this request; None for the resolver's catch-all not-found route."""
        current: Route | None = self.context.get("_route")
        if current is None or current.method not in self.methods.get(current.path, ()):
            return None
        return current

    def _convert_matches_into_route_keys(self, match: re.Match[str]) -> dict[str, str]:
        decoded = {name: unquote(value, errors="replace") for name, value in match.groupdict().items()}
        self.append_context(_path_text=dict(decoded))
        return decoded

    def path_text(self, name: str) -> str:
        """The route's path parameter ``name`` as sent (percent-decoded), e.g. ``"+1"`` where the id is 1."""
        return str(self.context["_path_text"][name])

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        response = super().resolve(event, context)
        if str(event.get("httpMethod") or "").upper() == "HEAD":
            response.update(body="", isBase64Encoded=False)
        return response


@cache
def _template(path: str) -> re.Pattern[str]:
    """``/decisions/<id>`` -> a regex matching ``/decisions/<anything but a slash>``."""
    parts = ("[^/]+" if part.startswith("<") else re.escape(part) for part in path.split("/"))
    return re.compile("^" + "/".join(parts) + "$")
