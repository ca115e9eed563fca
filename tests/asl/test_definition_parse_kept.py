"""The offline runtime keeps each definition's parse tree (moto parses it again at every execution); every parse
still gets evaluation components of its own, and a definition the grammar refuses raises every time."""

from __future__ import annotations

import json

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

from ffe.local.aws import _parse_each_definition_once

DEFINITION = json.dumps(
    {
        "StartAt": "Choose",
        "States": {
            "Choose": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "Done"}],
                "Default": "Wait",
            },
            "Wait": {"Type": "Pass", "Result": {"waited": True}, "ResultPath": "$.w", "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }
)


def test_a_definition_is_parsed_once_and_each_parse_gets_its_own_program() -> None:
    _parse_each_definition_once()
    _parse_each_definition_once()  # once per process, however often a LocalCloud starts
    first_program, first_tree = AmazonStateLanguageParser.parse(DEFINITION)
    second_program, second_tree = AmazonStateLanguageParser.parse(DEFINITION)
    assert second_tree is first_tree  # the grammar ran once
    assert second_program is not first_program  # an execution's components are its own
    assert type(second_program) is type(first_program)


def test_a_refused_definition_raises_every_time() -> None:
    _parse_each_definition_once()
    broken = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Nope"}}})
    for _ in range(2):
        with pytest.raises(ASLParserException):
            AmazonStateLanguageParser.parse(broken)
