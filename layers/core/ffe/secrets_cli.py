"""``ffe secrets``: write a stage's provider, broker, MLflow and database secrets where the template expects them.

``put --stage S KIND`` reads the fields (a prompt that echoes nothing on a terminal; else JSON on stdin or
``--from-file``), checks them against the kind's shape (``ffe.secret_shapes``), creates or updates the Secrets
Manager secret ``ffe/<stage>/<kind>`` (tags project=ffe, stage) and prints its ARN and the
``<Parameter>=<arn>`` to deploy with. ``list --stage S`` shows the stage's secrets: names, ARNs and when each
last changed, never a value (it never reads one). Bad input is one line naming the field, exit code 2; no value
is ever printed, not even in an error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ffe.secret_shapes import KINDS, STAGES, SecretShapeError, parse_json, secret_name, validated


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="secrets_action", required=True)
    put = actions.add_parser("put", help="create or update ffe/<stage>/<kind>; prints its ARN and the override")
    put.add_argument("kind", choices=sorted(KINDS), help="which secret (the template parameter it fills)")
    put.add_argument("--stage", required=True, choices=STAGES)
    put.add_argument(
        "--from-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the JSON object of fields ('-': stdin). Default: JSON on stdin when it is not a terminal, else a "
        "prompt per field that echoes nothing",
    )
    put.add_argument("--kms-key-id", default=None, metavar="KEY", help="a customer-managed KMS key (default: AWS's)")
    put.add_argument("--region", default=None, help="AWS region of the stage (default: your AWS config)")
    listing = actions.add_parser("list", help="the stage's secrets: name, parameter, ARN, last changed (no values)")
    listing.add_argument("--stage", required=True, choices=STAGES)
    listing.add_argument("--region", default=None, help="AWS region of the stage (default: your AWS config)")


def command(args: argparse.Namespace, client: Any = None) -> int:
    """Run ``ffe secrets put|list``; ``client`` (a secretsmanager client) is made from the AWS config if None."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ffe.local.errors import LocalError

    if args.secrets_action == "put":
        try:
            document = validated(args.kind, _fields(args))
        except SecretShapeError as exc:
            raise LocalError(str(exc)) from None
    try:
        client = client or _client(args.region)
        if args.secrets_action == "list":
            return _list(client, args.stage)
        return _put(client, args.stage, args.kind, document, args.kms_key_id)
    except ClientError as exc:  # AWS's message names the secret and the problem; it never holds the value
        error = exc.response.get("Error", {})
        raise LocalError(f"Secrets Manager refused: {error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as exc:  # no credentials, no region, no network
        raise LocalError(f"AWS: {exc}") from None


def _client(region: str | None) -> Any:
    import boto3

    return boto3.Session(region_name=region).client("secretsmanager")


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The fields from --from-file, from stdin when it is not a terminal, else from a prompt that echoes nothing."""
    source = args.from_file
    if source is None and sys.stdin.isatty():
        return _prompt(args.kind)
    if source is None or str(source) == "-":
        text, where = sys.stdin.read(), "stdin"
    else:
        try:
            text, where = source.read_text(encoding="utf-8"), str(source)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SecretShapeError(f"{args.kind}: cannot read {source}: {reason}") from None
    if not text.strip():
        raise SecretShapeError(f"{args.kind}: {where} is empty; give a JSON object of the fields, or run on a terminal")
    return parse_json(text, args.kind)


def _prompt(kind: str) -> dict[str, Any]:
    spec = KINDS[kind]
    values: dict[str, Any] = {}
    for name in (*spec.required, *spec.optional):
        optional = " (optional, Enter leaves it out)" if name in spec.optional else ""
        pem = " (\\n for each line break, as in the key's JSON download)" if name == "private_key" else ""
        value = getpass.getpass(f"{kind} {name}{optional}{pem}: ")
        values[name] = value.replace("\\n", "\n") if name == "private_key" else value
    return values


def _put(client: Any, stage: str, kind: str, document: dict[str, Any], kms_key_id: str | None) -> int:
    from botocore.exceptions import ClientError

    from ffe.local.errors import LocalError

    spec = KINDS[kind]
    name = secret_name(stage, kind)
    value = json.dumps(document)
    tags = [{"Key": "project", "Value": "ffe"}, {"Key": "stage", "Value": stage}]
    key = {"KmsKeyId": kms_key_id} if kms_key_id else {}
    try:
        arn = client.create_secret(
            Name=name,
            SecretString=value,
            Description=f"ffe {stage}: {spec.parameter}, read by {spec.reader}",
            Tags=tags,
            **key,
        )["ARN"]
        done = "created"
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code not in ("ResourceExistsException", "InvalidRequestException"):
            raise
        if client.describe_secret(SecretId=name).get("DeletedDate"):  # AWS refuses both create and update
            raise LocalError(
                f"{name} is scheduled for deletion: `aws secretsmanager restore-secret --secret-id {name}`, "
                "then put it again"
            ) from None
        if code != "ResourceExistsException":
            raise
        if kms_key_id:  # a new key for an existing secret: update_secret re-encrypts with it
            arn = client.update_secret(SecretId=name, SecretString=value, KmsKeyId=kms_key_id)["ARN"]
        else:
            arn = client.put_secret_value(SecretId=name, SecretString=value)["ARN"]
        client.tag_resource(SecretId=name, Tags=tags)
        done = "updated"
    print(f"{done} {name} (tags project=ffe, stage={stage})")
    if done == "updated":
        print("a new version: the functions read it within 5 minutes (their secrets cache)")
    print(f"arn: {arn}")
    print(f"deploy with it: add this to parameter_overrides of [{stage}.deploy.parameters] in samconfig.toml")
    print(f"{spec.parameter}={arn}")
    return 0


def _list(client: Any, stage: str) -> int:
    from ffe.terminal import Column, show, table

    prefix = secret_name(stage, "")
    parameters = {secret_name(stage, kind): spec.parameter for kind, spec in KINDS.items()}
    found = [
        secret
        for page in client.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "name", "Values": [prefix]}], IncludePlannedDeletion=True
        )
        for secret in page.get("SecretList", [])
        if secret["Name"].startswith(prefix)
    ]
    found.sort(key=lambda secret: secret["Name"])
    rows = [
        [
            secret["Name"],
            parameters.get(secret["Name"], "-"),
            _time(secret.get("LastChangedDate") or secret.get("CreatedDate")),
            f"requested {_time(secret['DeletedDate'])}" if secret.get("DeletedDate") else "-",
            secret["ARN"],
        ]
        for secret in found
    ]
    show(f"{len(rows)} secret(s) under {prefix} (times UTC; values are never shown)")
    if rows:
        columns = [
            Column("secret"),
            Column("parameter"),
            Column("last changed"),
            Column("deletion (recoverable for its window)"),
            Column("arn"),
        ]
        show(table(columns, rows, wide=True))
    missing = sorted(set(parameters) - {secret["Name"] for secret in found})
    if missing:
        show(f"not created: {', '.join(missing)} (`ffe secrets put --stage {stage} <kind>`)")
    return 0


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"
