"""One stage bucket's objects: a lazily made S3 client and S3's errors as the engine's (``S3Files``), shared by the
universe files (``ffe.adapters.universe``) and a cycle's snapshot and Map Run results (``ffe.adapters.cycle_files``).

The client is made when first used, with boto3's own configuration, so ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_S3`` send it to LocalStack or moto (docs/localstack.md#endpoints). A missing bucket or a refused
access is a ``PermanentError`` that says what to do; throttling, a 5xx or an unreachable S3 a ``TransientError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ffe.domain.errors import PermanentError, TransientError

MISSING_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})
_THROTTLED = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "ServiceUnavailable"}
)


class S3Files:
    def __init__(self, bucket: str, client: Any = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    @contextmanager
    def errors(self, verb: str, key: str) -> Iterator[None]:
        """botocore's errors inside the block as the engine's error classes, each saying what to do."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        bucket = self.bucket
        where = f"cannot {verb} s3://{bucket}/{key}"
        try:
            yield
        except NoCredentialsError as exc:
            raise PermanentError(f"{where}: no AWS credentials; configure them (aws configure, AWS_PROFILE)") from exc
        except BotoCoreError as exc:  # unreachable, a timeout
            raise TransientError(f"{where}: S3 unreachable: {exc}", bucket=bucket) from exc
        except ClientError as exc:
            code = error_code(exc)
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code == "NoSuchBucket":
                raise PermanentError(
                    f"{where}: bucket {bucket} does not exist; deploy the stage (it creates the cycles bucket) "
                    "or name another with --bucket"
                ) from exc
            if code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
                action = "s3:GetObject" if verb == "read" else "s3:PutObject"
                raise PermanentError(
                    f"{where}: access denied; use credentials allowed {action} on arn:aws:s3:::{bucket}/{key}"
                ) from exc
            if code in _THROTTLED or status >= 500 or status == 429:
                raise TransientError(f"{where}: S3 answered {code} (HTTP {status}); try again", bucket=bucket) from exc
            message = exc.response.get("Error", {}).get("Message", "")
            raise PermanentError(f"{where}: S3 refused: {code}: {message}", bucket=bucket) from exc


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
