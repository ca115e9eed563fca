"""template.yaml -> CloudFormation, offline, the way ``sam build`` + ``sam deploy`` would see it.

Local CodeUri/ContentUri become S3 objects (uploaded by the deployer), DefinitionUri is inlined,
aws-sam-translator runs with no managed-policy lookup, and DefinitionSubstitutions are folded into
``Fn::Sub`` so moto's CloudFormation can resolve them.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.metrics.metrics import Metrics
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import intrinsics_multi_constructor

ARTIFACT_BUCKET = "ffe-local-artifacts"
REGION = "us-east-1"


@dataclass
class TranslatedTemplate:
    cloudformation: dict[str, Any]
    code_dirs: dict[str, Path] = field(default_factory=dict)  # logical id -> local folder (functions, layers)
    substitutions: dict[str, dict[str, Any]] = field(default_factory=dict)  # state machine -> original keys


def project_root() -> Path:
    """The folder holding template.yaml: the working directory or one of its parents."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "template.yaml").exists():
            return folder
    raise FileNotFoundError("template.yaml not found in the working directory or its parents")


class _TemplateLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """aws-sam-translator's own YAML reading (``yaml_helper.yaml_parse``: the safe loader, ``!Ref``-style intrinsics
    read as ``{"Ref": ...}``) on libyaml's parser where PyYAML has it: about ten times faster than the pure-Python
    one (tests/template/test_template_yaml.py holds the two equal on every template in the repo)."""


_TemplateLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def parse_template(text: str) -> dict[str, Any]:
    """A CloudFormation/SAM template's YAML, its short-form intrinsics as their long form."""
    parsed: dict[str, Any] = yaml.load(text, Loader=_TemplateLoader)  # noqa: S506 - a safe loader
    return parsed


def load_sam(root: Path) -> dict[str, Any]:
    return parse_template((root / "template.yaml").read_text())


def translate(root: Path, parameters: dict[str, str]) -> TranslatedTemplate:
    """Transform ``root/template.yaml`` to plain CloudFormation that moto can deploy."""
    sam = load_sam(root)
    code_dirs: dict[str, Path] = {}
    for logical_id, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                code_dirs[logical_id] = (root / props[key]).resolve()
                props[key] = f"s3://{ARTIFACT_BUCKET}/{logical_id}.zip"
        if isinstance(props.get("DefinitionUri"), str):
            props["Definition"] = json.loads((root / props.pop("DefinitionUri")).read_text())

    metrics = Metrics()  # the translator's own usage metrics: published nowhere, but marked done
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name=REGION), metrics=metrics)
    cfn = translator.translate(sam_template=sam, parameter_values=dict(parameters), get_managed_policy_map=dict)
    metrics.publish()
    out = TranslatedTemplate(cfn, _rekey_layers(cfn, code_dirs))
    for logical_id, resource in cfn["Resources"].items():
        # a state machine with an inline Definition (an object, no DefinitionString) has nothing to fold
        if resource["Type"] == "AWS::StepFunctions::StateMachine" and "DefinitionString" in resource["Properties"]:
            out.substitutions[logical_id] = copy.deepcopy(resource["Properties"].get("DefinitionSubstitutions", {}))
            fold_substitutions(resource["Properties"])
    return out


# moto's CloudFormation cannot create these (API Gateway stages and deployments; SQS queue policies, which it
# would skip with a warning): the offline runtime leaves them out, together with everything that references
# them, and the tests check them on the translated template instead (tests/template). The API itself runs
# through ``ffe api``; offline, nothing needs a queue policy to reach a queue.
UNSUPPORTED_OFFLINE = ("AWS::ApiGateway::", "AWS::SQS::QueuePolicy")


def without_unsupported(cfn: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``cfn`` minus the resources moto cannot deploy and whatever refers to them."""
    out = copy.deepcopy(cfn)
    removed = {lid for lid, r in out["Resources"].items() if r["Type"].startswith(UNSUPPORTED_OFFLINE)}
    while removed:
        for lid in removed:
            out["Resources"].pop(lid, None)
        removed = {lid for lid, r in out["Resources"].items() if _refers_to(r, set(removed) | _gone(cfn, out))}
    out["Outputs"] = {k: v for k, v in out.get("Outputs", {}).items() if not _refers_to(v, _gone(cfn, out))}
    return out


# Where a task names its function's published version (Ref Function.Version), until the deployer knows it.
PUBLISHED = "__published__"


@dataclass(frozen=True)
class Alias:
    """A function alias (SAM's AutoPublishAlias) the offline runtime creates through the Lambda API."""

    function: str  # logical id of the function
    name: str


def published_versions(cfn: dict[str, Any]) -> tuple[dict[str, Any], list[Alias]]:
    """A copy of ``cfn`` that moto can deploy with SAM's AutoPublishAlias: the aliases (which moto's
    CloudFormation cannot create) come out, to be made through the Lambda API, and each state machine task that
    names a function's published version reads ``<function ARN>:__published__``, which the deployer turns into
    the version moto published (``AWS::Lambda::Version``), as ``Ref`` to the version is in AWS."""
    out = copy.deepcopy(cfn)
    found = {lid: r for lid, r in out["Resources"].items() if r["Type"] == "AWS::Lambda::Alias"}
    aliases = [Alias(r["Properties"]["FunctionName"]["Ref"], r["Properties"]["Name"]) for r in found.values()]
    for lid in found:
        del out["Resources"][lid]
    versions = {
        lid: r["Properties"]["FunctionName"]["Ref"]
        for lid, r in out["Resources"].items()
        if r["Type"] == "AWS::Lambda::Version"
    }
    for resource in out["Resources"].values():
        sub = resource.get("Properties", {}).get("DefinitionString", {})
        if resource["Type"] == "AWS::StepFunctions::StateMachine" and isinstance(sub, dict) and "Fn::Sub" in sub:
            for lid, function in versions.items():
                sub["Fn::Sub"] = sub["Fn::Sub"].replace(f"${{{lid}}}", f"${{{function}.Arn}}:{PUBLISHED}")
    return out, aliases


def _gone(original: dict[str, Any], current: dict[str, Any]) -> set[str]:
    return set(original["Resources"]) - set(current["Resources"])


def _refers_to(node: Any, names: set[str]) -> bool:
    text = json.dumps(node)
    return any(f'"Ref": "{n}"' in text or f'"{n}"' in text or f"${{{n}}}" in text or f"${{{n}." in text for n in names)


def fold_substitutions(props: dict[str, Any]) -> None:
    """Turn DefinitionString + DefinitionSubstitutions into one string-form ``Fn::Sub``.

    The list form of ``Fn::Sub`` would be simpler, but moto implements it with ``string.Template``,
    which turns the ASL's ``$$.Execution.Id`` into ``$.Execution.Id``; so each ``${Key}`` is rewritten
    to the ``${Resource.Attr}`` / ``${Param}`` it stands for.
    """
    definition = props.pop("DefinitionString")
    if isinstance(definition, dict) and "Fn::Join" in definition:
        separator, parts = definition["Fn::Join"]
        definition = separator.join(parts)
    subs = props.pop("DefinitionSubstitutions", {})

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in subs:
            raise KeyError(f"${{{key}}} in the state machine definition has no DefinitionSubstitutions entry")
        value = subs[key]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return "${" + ".".join(value["Fn::GetAtt"]) + "}"
        if isinstance(value, dict) and "Ref" in value:
            return "${" + value["Ref"] + "}"
        if isinstance(value, str):
            return value
        raise ValueError(f"unsupported DefinitionSubstitutions value for {key}: {value!r}")

    props["DefinitionString"] = {"Fn::Sub": re.sub(r"\$\{([A-Za-z0-9_]+)\}", replace, definition)}


def _rekey_layers(cfn: dict[str, Any], code_dirs: dict[str, Path]) -> dict[str, Path]:
    """The translator renames a LayerVersion to ``<Id><hash>``; follow it so its code is uploaded too."""
    out = dict(code_dirs)
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Lambda::LayerVersion" and logical_id not in out:
            for original in list(code_dirs):
                if logical_id.startswith(original):
                    out[logical_id] = code_dirs[original]
    return out


def s3_objects(cfn: dict[str, Any]) -> dict[str, str]:
    """logical id -> S3 key of every Lambda function / layer whose code the deployer must upload."""
    keys = {}
    for logical_id, resource in cfn["Resources"].items():
        props = resource.get("Properties", {})
        code = props.get("Code") or props.get("Content")
        if resource["Type"] in ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion") and isinstance(code, dict):
            keys[logical_id] = code["S3Key"]
    return keys
