"""The offline runtime's template reading: the same documents aws-sam-translator's reader gives, faster."""

from __future__ import annotations

import json

import pytest
from moto.cloudformation.models import Stack
from samtranslator.yaml_helper import yaml_parse

from ffe.local.aws import _read_json_templates_as_json
from ffe.local.template import parse_template
from tests.conftest import ROOT

TEMPLATES = sorted([ROOT / "template.yaml", *(ROOT / "iac").glob("*.yaml")])


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.name for p in TEMPLATES])
def test_parse_template_reads_what_the_translator_reads(path) -> None:
    text = path.read_text()
    assert parse_template(text) == yaml_parse(text)


def test_parse_template_reads_short_form_intrinsics_as_their_long_form() -> None:
    text = "A: !Ref Stage\nB: !Sub '${AWS::Region}-x'\nC: !GetAtt Fn.Arn\nD: !If [IsProd, 1, 2]\n"
    assert parse_template(text) == {
        "A": {"Ref": "Stage"},
        "B": {"Fn::Sub": "${AWS::Region}-x"},
        "C": {"Fn::GetAtt": ["Fn", "Arn"]},
        "D": {"Fn::If": ["IsProd", 1, 2]},
    }


def test_moto_reads_a_json_stack_as_json_and_still_reads_yaml() -> None:
    _read_json_templates_as_json()
    _read_json_templates_as_json()  # once per process, however often a LocalCloud starts
    document = {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 0, "Tags": []}}}}
    assert Stack.parse_template(json.dumps(document)) == document
    assert Stack.parse_template("Resources:\n  Q:\n    Type: AWS::SQS::Queue\n") == {
        "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}
    }
