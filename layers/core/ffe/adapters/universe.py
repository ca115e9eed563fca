"""A stage's universe files in S3: ``s3://<bucket>/universe/<timeframe>.json`` (``ffe.universe_file``).

``UniverseStore(bucket)`` reads one (validated: a bad file is an ``InvalidInputError`` naming its S3 URI) and writes
one in the canonical form. Its S3 client is made when first used, with boto3's own configuration, so
``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_S3`` send it to LocalStack or moto (docs/localstack.md#endpoints).
S3's errors become the engine's: a missing bucket or a refused access is a ``PermanentError`` that says what to do,
throttling, a 5xx or an unreachable S3 a ``TransientError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ffe.domain.errors import PermanentError, TransientError
from ffe.universe_file import MAX_UNIVERSE_BYTES, UniverseEntry, dump_universe, parse_universe, universe_key

_MISSING_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})
_THROTTLED = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "ServiceUnavailable"}
)


class UniverseStore:
    """The universe files of one stage's cycles bucket."""

    def __init__(self, bucket: str, client: Any = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def uri(self, timeframe: str) -> str:
        """Where the file for ``timeframe`` is: ``s3://<bucket>/universe/<timeframe>.json``."""
        return f"s3://{self.bucket}/{universe_key(timeframe)}"

    def read(self, timeframe: str) -> list[UniverseEntry] | None:
        """The stage's entries for ``timeframe``, or None when it has no file.

        Raises:
            InvalidInputError: the file fails validation (the message names its S3 URI, row and field).
            PermanentError: no such bucket, or access refused.
            TransientError: throttled, a 5xx, or S3 unreachable.
        """
        from botocore.exceptions import ClientError

        key = universe_key(timeframe)
        uri = f"s3://{self.bucket}/{key}"
        with _s3_errors("read", uri, self.bucket):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            except ClientError as exc:
                if _code(exc) in _MISSING_OBJECT:
                    return None
                raise
            content: bytes = body.read(MAX_UNIVERSE_BYTES + 1)  # one byte over is enough to refuse it
        return parse_universe(content, uri)

    def write(self, timeframe: str, entries: list[UniverseEntry]) -> str:
        """Store ``entries`` in the canonical form (``dump_universe``); returns the key.

        Raises:
            PermanentError: no such bucket, or access refused.
            TransientError: throttled, a 5xx, or S3 unreachable.
        """
        key = universe_key(timeframe)
        body = dump_universe(entries)
        with _s3_errors("write", f"s3://{self.bucket}/{key}", self.bucket):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return key


@contextmanager
def _s3_errors(verb: str, uri: str, bucket: str) -> Iterator[None]:
    """botocore's errors inside the block as the engine's error classes, each saying what to do."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    where = f"cannot {verb} {uri}"
    try:
        yield
    except NoCredentialsError as exc:
        raise PermanentError(f"{where}: no AWS credentials; configure them (aws configure, AWS_PROFILE)") from exc
    except BotoCoreError as exc:  # unreachable, a timeout
        raise TransientError(f"{where}: S3 unreachable: {exc}", bucket=bucket) from exc
    except ClientError as exc:
        code = _code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code == "NoSuchBucket":
            raise PermanentError(
                f"{where}: bucket {bucket} does not exist; deploy the stage (it creates the cycles bucket) "
                "or name another with --bucket"
            ) from exc
        if code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
            action = "s3:GetObject" if verb == "read" else "s3:PutObject"
            raise PermanentError(
                f"{where}: access denied; use credentials allowed {action} on arn:aws:s3:::{bucket}/universe/*"
            ) from exc
        if code in _THROTTLED or status >= 500 or status == 429:
            raise TransientError(f"{where}: S3 answered {code} (HTTP {status}); try again", bucket=bucket) from exc
        message = exc.response.get("Error", {}).get("Message", "")
        raise PermanentError(f"{where}: S3 refused: {code}: {message}", bucket=bucket) from exc


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
