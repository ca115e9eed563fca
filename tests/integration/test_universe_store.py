"""UniverseStore against moto's S3: write then read, no file, a bad file in S3 (named by its URI, row and field),
and S3's errors as the engine's (a missing bucket or refused access permanent, saying what to do; throttling and
5xx transient)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber
from moto import mock_aws

from ffe.adapters.brokers_factory import _VENUES
from ffe.adapters.universe import UniverseStore
from ffe.domain.errors import InvalidInputError, PermanentError, TransientError
from ffe.domain.models import AssetClass
from ffe.universe_file import CLASS_VENUES, MAX_UNIVERSE_BYTES, UniverseEntry, dump_universe, parse_universe

BUCKET = "ffe-dev-cycles-123456789012"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def entries() -> list[UniverseEntry]:
    return parse_universe(b"asset,class,enabled\nBTCUSD,crypto,yes\nSOLUSD,crypto,no\nEURUSD,fx,yes\n", "u.csv")


def test_the_class_venues_are_the_live_brokers() -> None:
    assert {cls: venue for cls, venue in CLASS_VENUES.items() if venue != "none"} == _VENUES
    assert set(CLASS_VENUES) == set(AssetClass)


def test_write_then_read_is_the_same_universe_stored_canonically(s3: Any) -> None:
    store = UniverseStore(BUCKET)  # its own client, made when first used (moto answers it)
    key = store.write("15m", entries())
    assert key == "universe/15m.json"
    stored = s3.get_object(Bucket=BUCKET, Key=key)
    assert stored["ContentType"] == "application/json"
    assert stored["Body"].read() == dump_universe(entries())
    assert store.read("15m") == entries()
    assert store.uri("15m") == f"s3://{BUCKET}/universe/15m.json"


def test_no_file_reads_as_none_and_each_timeframe_has_its_own(s3: Any) -> None:
    store = UniverseStore(BUCKET, s3)
    assert store.read("1h") is None
    store.write("1d", entries())
    assert store.read("1h") is None and store.read("1d") == entries()


def test_a_bad_file_in_s3_is_refused_naming_its_uri_row_and_field(s3: Any) -> None:
    bad = [{"asset": "BTCUSD", "class": "crypto"}, {"asset": "BTCUSD", "class": "crypto", "venue": "oanda"}]
    s3.put_object(Bucket=BUCKET, Key="universe/1h.json", Body=json.dumps(bad).encode())
    with pytest.raises(InvalidInputError) as caught:
        UniverseStore(BUCKET, s3).read("1h")
    assert str(caught.value) == (
        f"s3://{BUCKET}/universe/1h.json: row 2 (item [1]), venue: oanda is not the venue of class crypto: "
        "crypto orders go to coinbase"
    )


def test_an_oversized_file_in_s3_is_refused_after_reading_one_byte_over(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="universe/1h.json", Body=b" " * (MAX_UNIVERSE_BYTES + 500))
    with pytest.raises(InvalidInputError, match=r"universe/1h.json: 2,097,153 bytes, over the 2,097,152-byte limit"):
        UniverseStore(BUCKET, s3).read("1h")


def test_a_bad_timeframe_is_refused_before_s3(s3: Any) -> None:
    with pytest.raises(InvalidInputError, match="timeframe '2h'"):
        UniverseStore(BUCKET, s3).read("2h")


def test_a_missing_bucket_is_permanent_and_says_what_to_do(s3: Any) -> None:
    store = UniverseStore("ffe-dev-cycles-000000000000", s3)
    for act in (lambda: store.read("1h"), lambda: store.write("1h", entries())):
        with pytest.raises(PermanentError) as caught:
            act()
        assert not isinstance(caught.value, InvalidInputError)
        assert "bucket ffe-dev-cycles-000000000000 does not exist; deploy the stage" in str(caught.value)


def stubbed(operation: str, code: str, status: int) -> UniverseStore:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_client_error(operation, service_error_code=code, http_status_code=status)
    stubber.activate()
    return UniverseStore(BUCKET, client)


@pytest.mark.parametrize(
    "code,status,error,words",
    [
        ("AccessDenied", 403, PermanentError, "access denied; use credentials allowed s3:GetObject on"),
        ("SlowDown", 503, TransientError, "S3 answered SlowDown (HTTP 503); try again"),
        ("InternalError", 500, TransientError, "S3 answered InternalError (HTTP 500)"),
        ("InvalidRequest", 400, PermanentError, "S3 refused: InvalidRequest"),
    ],
)
def test_s3_errors_on_read(code: str, status: int, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as caught:
        stubbed("get_object", code, status).read("1h")
    assert str(caught.value).startswith(f"cannot read s3://{BUCKET}/universe/1h.json: ")
    assert words in str(caught.value)


def test_s3_errors_on_write() -> None:
    with pytest.raises(PermanentError, match="allowed s3:PutObject on arn:aws:s3:::ffe-dev-cycles-123456789012/uni"):
        stubbed("put_object", "AccessDenied", 403).write("1h", entries())
    with pytest.raises(TransientError, match="S3 answered SlowDown"):
        stubbed("put_object", "SlowDown", 503).write("1h", entries())


class Unreachable:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_object(self, **kwargs: object) -> Any:
        raise self.error


def test_no_credentials_is_permanent_and_no_network_transient() -> None:
    with pytest.raises(PermanentError, match="no AWS credentials; configure them"):
        UniverseStore(BUCKET, Unreachable(NoCredentialsError())).read("1h")
    with pytest.raises(TransientError, match="S3 unreachable"):
        UniverseStore(BUCKET, Unreachable(EndpointConnectionError(endpoint_url="https://s3"))).read("1h")
