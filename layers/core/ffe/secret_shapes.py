"""The secrets a stage reads by ARN: for each kind, its template parameter and the JSON shape its reader expects.

``ffe secrets put`` checks a value against its kind here before it writes it. Each shape is the one its reader
takes, named beside it: a secret that passes here is one the reader can use (a wrong token still fails at the
venue, which pre-flight shows). Errors name the kind and the field, never a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

STAGES = ("dev", "staging", "prod")


class SecretShapeError(ValueError):
    """The value does not have its kind's shape; the message names the field, never the value."""


def _one_of(*allowed: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value.strip().lower() in allowed else f"must be one of {', '.join(allowed)}"

    return check


def _port(value: str) -> str | None:
    return None if value.isdigit() and 0 < int(value) < 65536 else "must be a TCP port (1-65535)"


_CDP_KEY_NAME = re.compile(r"^organizations/[^/\s]+/apiKeys/[^/\s]+$")
_TRACKING_URI = re.compile(
    r"^(arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:mlflow-tracking-server/[A-Za-z0-9-]+"
    r"|https?://\S+|postgresql(\+psycopg)?://\S+)$"
)


def _cdp_key_name(value: str) -> str | None:
    return None if _CDP_KEY_NAME.match(value.strip()) else "must be organizations/<org_id>/apiKeys/<key_id>"


def _ec_p256_pem(value: str) -> str | None:
    """What ``ffe.adapters.brokers.coinbase._private_key`` accepts: an unencrypted PEM EC P-256 private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(value.strip().encode() + b"\n", password=None)
    except (ValueError, TypeError):
        return "must be an unencrypted PEM private key (the key's JSON download, privateKey)"
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        return "must be an EC P-256 key (create the CDP key with the ECDSA algorithm)"
    return None


def _tracking_uri(value: str) -> str | None:
    if _TRACKING_URI.match(value.strip()):
        return None
    return "must be a SageMaker MLflow tracking server ARN, an http(s):// server or a postgresql:// URL"


@dataclass(frozen=True)
class SecretKind:
    """One kind of secret: the template parameter that takes its ARN and the fields its reader uses."""

    parameter: str
    reader: str  # the code that reads it (named in errors and docs)
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    checks: Mapping[str, Callable[[str], str | None]] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()  # prompted without echo (every field that is a credential)
    aliases: Mapping[str, str] = field(default_factory=dict)  # another JSON's name for a field -> ours
    integers: frozenset[str] = frozenset()  # stored as JSON numbers


KINDS: dict[str, SecretKind] = {
    "alpha-vantage": SecretKind(
        "AlphaVantageSecretArn", "ffe.adapters.providers.alpha_vantage", ("api_key",), hidden=frozenset({"api_key"})
    ),
    "oanda": SecretKind(  # the FX provider and the FX broker read the same secret
        "OandaSecretArn",
        "ffe.adapters.providers.oanda, ffe.adapters.brokers.oanda",
        ("token", "account_id"),
        ("environment",),
        checks={"environment": _one_of("practice", "live")},
        hidden=frozenset({"token"}),
    ),
    "coinbase-trading": SecretKind(
        "CoinbaseTradingSecretArn",
        "ffe.adapters.brokers.coinbase",
        ("key_name", "private_key"),
        checks={"key_name": _cdp_key_name, "private_key": _ec_p256_pem},
        hidden=frozenset({"private_key"}),
        aliases={"name": "key_name", "privateKey": "private_key"},  # the CDP key's JSON download
    ),
    "mlflow": SecretKind(  # a server ARN or URL holds no credential, but a postgresql:// URL holds a password
        "MlflowTrackingUriSecretArn",
        "ffe.training.cleanup_job.tracking_uri_from_secret",
        ("MLFLOW_TRACKING_URI",),
        checks={"MLFLOW_TRACKING_URI": _tracking_uri},
        hidden=frozenset({"MLFLOW_TRACKING_URI"}),
    ),
    "database": SecretKind(  # an existing database instead of the stack's Aurora
        "DatabaseSecretArn",
        "ffe.adapters.database.conninfo_from_settings",
        ("host", "username", "password"),
        ("port", "dbname", "sslmode"),
        checks={
            "port": _port,
            "sslmode": _one_of("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
        },
        hidden=frozenset({"password"}),
        integers=frozenset({"port"}),
    ),
}


_VOCABULARY = frozenset(name for spec in KINDS.values() for name in (*spec.required, *spec.optional, *spec.aliases))


def secret_name(stage: str, kind: str) -> str:
    """Where the template expects the secret: its secret parameters' AllowedPattern is ``secret:ffe/...``."""
    return f"ffe/{stage}/{kind}"


def parse_json(text: str, kind: str) -> dict[str, Any]:
    """The JSON object ``text`` holds; the error gives the position only (the text may be a secret)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SecretShapeError(
            f"{kind}: the input is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(document, dict):
        raise SecretShapeError(f"{kind}: the input must be a JSON object of {', '.join(KINDS[kind].required)}")
    return document


def validated(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The secret's JSON document for ``kind``, or SecretShapeError naming the first bad or missing field."""
    spec = KINDS[kind]
    known = (*spec.required, *spec.optional)
    document: dict[str, Any] = {}
    for name, value in values.items():
        key = spec.aliases.get(name, name)
        if key not in known:
            # A name that is no field of any kind may be a value pasted in the wrong place: not shown.
            shown = repr(name) if name in _VOCABULARY else "(its name not shown: it is no field of any kind)"
            raise SecretShapeError(f"{kind}: unknown field {shown}; {_fields(spec)}")
        if value is None or (isinstance(value, str) and not value.strip() and key in spec.optional):
            continue  # an optional field left empty is left out
        number = isinstance(value, int) and not isinstance(value, bool) and key in spec.integers
        if not (isinstance(value, str) or number):
            kinds = "a string or a number" if key in spec.integers else "a string"
            raise SecretShapeError(f"{kind}: field {key!r} must be {kinds}")
        text = str(value).strip()
        if not text:
            raise SecretShapeError(f"{kind}: field {key!r} is empty")
        problem = spec.checks[key](text) if key in spec.checks else None
        if problem:
            raise SecretShapeError(f"{kind}: field {key!r} {problem}")
        document[key] = int(text) if key in spec.integers else text
    missing = [name for name in spec.required if name not in document]
    if missing:
        raise SecretShapeError(f"{kind}: missing field {missing[0]!r}; {_fields(spec)}")
    return document


def _fields(spec: SecretKind) -> str:
    optional = f" (optional: {', '.join(spec.optional)})" if spec.optional else ""
    return f"it takes {', '.join(spec.required)}{optional}"
