"""Powertools' REST resolver, plus what API Gateway's proxy integration leaves to the function.

- API Gateway passes the request path still percent-encoded (``/cycles/sched%3A1``). Each path parameter
  the route matched is decoded once (UTF-8; an invalid sequence becomes U+FFFD, which no id pattern
  accepts), so a client that encodes more than it must names the same resource. ``path_text`` gives
  the decoded text as sent, before validation turned it into a typed value.
- API Gateway passes ``HEAD`` on to the function too: its answer goes back without a body.
"""

from __future__ import annotations

from collections.abc import Mapping
from re import Match
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext


class ProxyResolver(APIGatewayRestResolver):
    def _convert_matches_into_route_keys(self, match: Match[str]) -> dict[str, str]:
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
