"""Read ``template.yaml`` as ``sam`` does: Globals merged, parameters and conditions resolved.

Only what a local invoke needs: a function's ``Handler``, ``Timeout`` and
``Environment.Variables``, with ``Ref``, ``Fn::If``, ``Fn::Equals``, ``Fn::Not``,
``Fn::And``, ``Fn::Or``, ``Fn::Join``, ``Fn::Sub`` and ``Condition`` resolved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hooks.core.exceptions import ConfigError

__all__ = ["FunctionSpec", "Template", "load_template"]

_NO_VALUE = object()


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    key = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {key: value}


_Loader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the template: {exc}") from exc
    if not isinstance(data, dict) or "Resources" not in data:
        raise ConfigError(f"{path}: not a CloudFormation template (no Resources)")
    return data


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    timeout: float
    environment: dict[str, str]


class Template:
    def __init__(self, path: Path, overrides: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.data = load_template(path)
        params = self.data.get("Parameters", {})
        unknown = set(overrides or {}) - set(params)
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"the template has: {', '.join(sorted(params))}"
            )
        self.parameters: dict[str, Any] = {
            name: (overrides or {}).get(name, spec.get("Default")) for name, spec in params.items()
        }
        self.parameters.update(
            {
                "AWS::StackName": "local",
                "AWS::Region": "us-east-1",
                "AWS::AccountId": "123456789012",
                "AWS::Partition": "aws",
            }
        )
        self.conditions = {
            name: bool(self.resolve(spec)) for name, spec in self.data.get("Conditions", {}).items()
        }

    def functions(self) -> list[str]:
        return [
            name
            for name, res in self.data["Resources"].items()
            if res.get("Type") == "AWS::Serverless::Function"
        ]

    def function(self, logical_id: str) -> FunctionSpec:
        resource = self.data["Resources"].get(logical_id)
        if resource is None or resource.get("Type") != "AWS::Serverless::Function":
            raise ConfigError(
                f"{self.path} has no function {logical_id!r}; functions: "
                f"{', '.join(self.functions())}"
            )
        glob = self.data.get("Globals", {}).get("Function", {})
        props = resource.get("Properties", {})
        env: dict[str, str] = {}
        for source in (glob, props):
            variables = self.resolve(source.get("Environment", {}).get("Variables", {}))
            env.update({k: str(v) for k, v in variables.items() if v is not _NO_VALUE})
        handler = self.resolve(props.get("Handler", glob.get("Handler")))
        timeout = self.resolve(props.get("Timeout", glob.get("Timeout", 3)))
        if not handler:
            raise ConfigError(f"{logical_id} has no Handler")
        return FunctionSpec(logical_id, str(handler), float(timeout), env)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {
                k: v
                for k, v in ((k, self.resolve(v)) for k, v in value.items())
                if v is not _NO_VALUE
            }
        ((key, arg),) = value.items()
        if key == "Ref":
            if arg == "AWS::NoValue":
                return _NO_VALUE
            if arg in self.data["Resources"]:
                # A resource of the stack (the evidence bucket, the topic) exists only in
                # the cloud: locally, the variable is left unset, as if not configured.
                return _NO_VALUE
            if arg not in self.parameters:
                raise ConfigError(f"cannot resolve !Ref {arg} locally")
            return self.parameters[arg]
        if key == "Condition":
            return self.conditions[arg]
        if key == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.conditions[name] else no)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::Join":
            sep, items = arg
            resolved = self.resolve(items)
            return sep.join(
                str(i) for i in (resolved if isinstance(resolved, list) else [resolved])
            )
        if key == "Fn::Sub" and isinstance(arg, str):
            return re.sub(
                r"\$\{([^}!]+)\}", lambda m: str(self.parameters.get(m.group(1), m.group(0))), arg
            )
        return {key: self.resolve(arg)}
