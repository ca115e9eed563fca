"""The price table ``ffe cost`` multiplies by: AWS list prices, us-east-1, on-demand, no free tier subtracted.

NOT FETCHED LIVE: written on READ (below) from the public price list as known then, without network access. Check
each line against its page (``url``) before relying on a figure; a changed price is a one-line edit here, and
tests/unit/cost/test_prices.py keeps every component of the estimate tied to a line with its date and page.
"""

from __future__ import annotations

from dataclasses import dataclass

REGION = "us-east-1"
READ = "2026-12-03"
CURRENCY = "USD"

_SFN = "https://aws.amazon.com/step-functions/pricing/"
# a Distributed Map bills one Standard transition per child execution it starts (the "Transitions in Distributed
# Map state" section); read on READ like the rest
SFN_TRANSITIONS_PAGE = "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html"
# Express duration: the memory a workflow uses, billed in 64-MB chunks, times its duration rounded up to the next
# 100 ms (_SFN, "Express Workflows"); the GB-second price below is the first tier's (1,000 GB-hours a month)
EXPRESS_MEMORY_CHUNK_MB = 64
EXPRESS_DURATION_STEP_MS = 100
EXPRESS_FIRST_TIER_GB_SECONDS = 1000 * 3600
_LAMBDA = "https://aws.amazon.com/lambda/pricing/"
_SAGEMAKER = "https://aws.amazon.com/sagemaker/pricing/"
_AURORA = "https://aws.amazon.com/rds/aurora/pricing/"
_PROXY = "https://aws.amazon.com/rds/proxy/pricing/"
_VPC = "https://aws.amazon.com/vpc/pricing/"
_PRIVATELINK = "https://aws.amazon.com/privatelink/pricing/"
_DYNAMODB = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
_SQS = "https://aws.amazon.com/sqs/pricing/"
_CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"
_S3 = "https://aws.amazon.com/s3/pricing/"
_KMS = "https://aws.amazon.com/kms/pricing/"
_SECRETS = "https://aws.amazon.com/secrets-manager/pricing/"
_XRAY = "https://aws.amazon.com/xray/pricing/"


@dataclass(frozen=True)
class Price:
    key: str
    usd: float  # per ``unit``
    unit: str
    url: str
    read: str = READ
    region: str = REGION


PRICES: dict[str, Price] = {
    p.key: p
    for p in (
        Price("sfn.standard.transition", 0.000025, "state transition", _SFN),
        Price("sfn.express.request", 0.000001, "request", _SFN),
        Price("sfn.express.gb_second", 0.00001667, "GB-second (first 1,000 GB-hours)", _SFN),
        Price("lambda.request", 0.0000002, "request", _LAMBDA),
        Price("lambda.gb_second.x86_64", 0.0000166667, "GB-second (x86, first 6 billion)", _LAMBDA),
        Price("lambda.gb_second.arm64", 0.0000133334, "GB-second (Arm, first 7.5 billion)", _LAMBDA),
        Price("sagemaker.ml.g5.xlarge", 1.408, "instance-hour (real-time inference)", _SAGEMAKER),
        Price("sagemaker.ml.g5.2xlarge", 1.515, "instance-hour (real-time inference)", _SAGEMAKER),
        Price("sagemaker.ml.m5.large", 0.115, "instance-hour (real-time inference)", _SAGEMAKER),
        Price("sagemaker.ml.c5.xlarge", 0.204, "instance-hour (real-time inference)", _SAGEMAKER),
        Price("aurora.acu_hour", 0.12, "ACU-hour (Serverless v2, Aurora Standard)", _AURORA),
        Price("aurora.storage", 0.10, "GB-month", _AURORA),
        Price("aurora.io", 0.0000002, "I/O request", _AURORA),
        Price("proxy.acu_hour", 0.015, "ACU-hour (Serverless v2 target, minimum 8 ACUs)", _PROXY),
        Price("nat.hour", 0.045, "NAT gateway-hour", _VPC),
        Price("nat.gb", 0.045, "GB processed", _VPC),
        Price("endpoint.az_hour", 0.01, "interface endpoint AZ-hour", _PRIVATELINK),
        Price("endpoint.gb", 0.01, "GB processed", _PRIVATELINK),
        Price("dynamodb.rru", 0.000000125, "read request unit (on-demand)", _DYNAMODB),
        Price("dynamodb.wru", 0.000000625, "write request unit (on-demand)", _DYNAMODB),
        Price("sqs.request", 0.0000004, "request (standard queue)", _SQS),
        Price("cloudwatch.metric", 0.30, "custom metric-month (first 10,000)", _CLOUDWATCH),
        Price("cloudwatch.alarm", 0.10, "standard-resolution alarm-month", _CLOUDWATCH),
        Price("cloudwatch.dashboard", 3.00, "dashboard-month", _CLOUDWATCH),
        Price("logs.ingest", 0.50, "GB ingested (standard class)", _CLOUDWATCH),
        Price("logs.storage", 0.03, "GB-month stored", _CLOUDWATCH),
        Price("s3.storage", 0.023, "GB-month (Standard, first 50 TB)", _S3),
        Price("s3.put", 0.000005, "PUT/COPY/POST/LIST request", _S3),
        Price("s3.get", 0.0000004, "GET request", _S3),
        Price("kms.key", 1.00, "customer-managed key-month", _KMS),
        Price("kms.request", 0.000003, "request", _KMS),
        Price("secrets.secret", 0.40, "secret-month", _SECRETS),
        Price("secrets.call", 0.000005, "API call", _SECRETS),
        Price("xray.trace", 0.000005, "trace recorded", _XRAY),
    )
}


def price(key: str) -> Price:
    """The line ``key``; a missing one names itself (an instance type the table lacks, for one)."""
    try:
        return PRICES[key]
    except KeyError:
        raise KeyError(f"no price line {key!r} in ffe/cost/prices.py (region {REGION}, read {READ})") from None
