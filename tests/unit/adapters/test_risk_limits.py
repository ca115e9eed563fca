"""The stage's risk limits from SSM (through Powertools), validated at load."""

import json

import boto3
import pytest
from moto import mock_aws

from ffe.adapters.brokers_factory import risk_limits
from ffe.domain.errors import PermanentError
from ffe.settings import RiskSettings


def settings(**env: str) -> RiskSettings:
    return RiskSettings.model_validate({"database_url": "postgresql:///x", **env})


def test_limits_come_from_the_environment_without_a_parameter() -> None:
    assert risk_limits(settings(risk_max_position_fraction="0.2")).max_position_fraction == 0.2


@pytest.mark.parametrize(
    ("stored", "message"),
    [({"max_position_fraction": 0.05, "var_limit": 0.01}, None),
     ({"max_position_fraction": 1.5}, "max_position_fraction must be in"),
     ({"max_leverage": 3}, "keys among"),
     (["not", "an", "object"], "JSON object")],
)  # fmt: skip
def test_limits_from_ssm_are_validated(stored: object, message: str | None) -> None:
    with mock_aws():
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name="/ffe/test/risk-limits", Type="String", Value=json.dumps(stored)
        )
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        configured = settings(risk_limits_parameter="/ffe/test/risk-limits")
        if message is None:
            limits = risk_limits(configured)
            assert (limits.max_position_fraction, limits.var_limit, limits.max_drawdown) == (0.05, 0.01, 0.15)
        else:
            with pytest.raises(PermanentError, match=message):
                risk_limits(configured)
