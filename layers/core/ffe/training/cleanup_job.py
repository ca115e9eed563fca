"""The scheduled checkpoint cleanup's entry point (SageMaker script mode): ``python -m ffe.training.cleanup``
against the registry whose URI a Secrets Manager secret holds, with its metrics sent to CloudWatch.

The state machine ``ffe-<stage>-checkpoint-cleanup`` (template.yaml) starts a training job on the training image
with the staged source (``make training-source``, tarred) and ``sagemaker_program`` this file; script mode runs
``python ffe/training/cleanup_job.py --apply true --stage <stage>``, and every argument goes to the cleanup.

``MLFLOW_TRACKING_URI`` is used when set; otherwise the secret ``MLFLOW_TRACKING_URI_SECRET_ARN`` names is read:
its value is the tracking URI itself, or JSON with the key ``MLFLOW_TRACKING_URI``. A training job's log group
is not read as EMF, so the EMF lines the cleanup prints (``models_cleaned``) are also sent with PutMetricData;
one that cannot be sent is a warning in the log, never the job's failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, cast

if __package__ in (None, ""):  # script mode runs this file directly from source_dir/ffe/training
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SECRET_ENV = "MLFLOW_TRACKING_URI_SECRET_ARN"  # noqa: S105 (the variable naming the secret, not a secret)


def tracking_uri_from_secret(secret: str) -> str:
    """The tracking URI a secret's value holds: the URI, or JSON ``{"MLFLOW_TRACKING_URI": "..."}``."""
    text = secret.strip()
    if text.startswith("{"):
        return str(json.loads(text)["MLFLOW_TRACKING_URI"])
    return text


class EmfTee:
    """Writes through to ``stream`` and keeps each complete line that is an EMF document."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._partial = ""
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        *done, self._partial = (self._partial + text).split("\n")
        self.lines += [line for line in done if _is_emf(line)]
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, encoding, ... of the real stream
        return getattr(self._stream, name)


def _is_emf(line: str) -> bool:
    try:
        document = json.loads(line)
    except ValueError:
        return False
    return isinstance(document, dict) and "_aws" in document


def run(
    argv: Sequence[str] | None,
    cleanup: Callable[[Sequence[str] | None], int],
    secrets: Callable[[], Any],
    cloudwatch: Callable[[], Any],
) -> int:
    """Resolve the tracking URI, run ``cleanup(argv)`` and send the EMF lines it printed (clients made lazily)."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        arn = os.environ.get(SECRET_ENV)
        if not arn:
            print(f"neither MLFLOW_TRACKING_URI nor {SECRET_ENV} is set: no registry to clean up", file=sys.stderr)
            return 2
        value = secrets().get_secret_value(SecretId=arn)["SecretString"]
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri_from_secret(value)
    tee = EmfTee(sys.stdout)
    with contextlib.redirect_stdout(cast(IO[str], tee)):
        code = cleanup(argv)
    if tee.lines:
        from ffe.training.run_metrics import put_metrics

        try:
            put_metrics(tee.lines, cloudwatch())
        except Exception as exc:  # no permission, no network: the lines are in the log
            print(f"[WARNING] metrics not sent to CloudWatch: {type(exc).__name__}: {exc}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    import boto3

    from ffe.training.cleanup import main as cleanup

    return run(argv, cleanup, lambda: boto3.client("secretsmanager"), lambda: boto3.client("cloudwatch"))


if __name__ == "__main__":
    raise SystemExit(main())
