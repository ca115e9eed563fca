"""A stage's universe files in S3: ``s3://<bucket>/universe/<timeframe>.json`` (``ffe.universe_file``).

``UniverseStore(bucket)`` reads one (validated: a bad file is an ``InvalidInputError`` naming its S3 URI) and writes
one in the canonical form; its client and S3's errors are ``ffe.adapters.s3_files.S3Files``'.
"""

from __future__ import annotations

from ffe.adapters.s3_files import MISSING_OBJECT, S3Files, error_code
from ffe.universe_file import MAX_UNIVERSE_BYTES, UniverseEntry, dump_universe, parse_universe, universe_key


class UniverseStore(S3Files):
    """The universe files of one stage's cycles bucket."""

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
        with self.errors("read", key):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            except ClientError as exc:
                if error_code(exc) in MISSING_OBJECT:
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
        with self.errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return key
