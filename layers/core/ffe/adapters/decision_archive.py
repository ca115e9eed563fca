"""The decision archive: a partition's CSV, gzipped on the fly and streamed to S3 (multipart past 8 MiB).

Nothing is held whole in memory or on disk: ``GzipStream`` compresses the chunks as boto3 reads them, and
``upload_fileobj`` sends them part by part. Objects land at ``s3://<bucket>/<prefix><stage>/<partition>.csv.gz``
(e.g. ``decisions/prod/decisions_2026_01.csv.gz``); a second export of the same partition overwrites it.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

GZIP_WBITS = 31  # zlib's gzip container: the file opens with gunzip, zcat, pandas.read_csv


class GzipStream(io.RawIOBase):
    """A readable file of ``chunks`` gzip-compressed, produced as it is read."""

    def __init__(self, chunks: Iterable[bytes], level: int = 6) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._zip = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._done:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._pending, self._done = self._zip.flush(), True
            else:
                self._pending = self._zip.compress(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class S3DecisionArchive:
    """``export(partition, chunks)`` for ``ffe.steps.retain``: the partition's CSV as one gzipped S3 object."""

    def __init__(self, s3: Any, bucket: str, prefix: str, stage: str) -> None:
        self._s3, self.bucket = s3, bucket
        self.prefix = f"{prefix.strip('/')}/{stage}/" if prefix.strip("/") else f"{stage}/"

    def key(self, partition: str) -> str:
        return f"{self.prefix}{partition}.csv.gz"

    def __call__(self, partition: str, chunks: Iterator[bytes]) -> str:
        key = self.key(partition)
        body = io.BufferedReader(GzipStream(chunks), buffer_size=1 << 20)
        self._s3.upload_fileobj(
            body, self.bucket, key, ExtraArgs={"ContentType": "text/csv", "ContentEncoding": "gzip"}
        )
        return f"s3://{self.bucket}/{key}"
