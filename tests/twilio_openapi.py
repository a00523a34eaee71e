"""Check requests recorded by the fake Twilio against Twilio's own OpenAPI description.

The description (twilio_api_v2010.yaml, from twilio/twilio-oai) lives outside the repository, in
the shared folder beside it: <repo>/../shared/twilio-oai/. Without it the checks skip.

    assert_matches_twilio_openapi(fake.messages()[0])   # in any test using tests/fake_twilio.py

What a request is checked for: its operation exists (method and path template); path parameters
match their patterns; every form (or query) parameter is declared by the operation; a parameter
that is not an array is sent once; required parameters are present and not empty; of each
"conditional" group Twilio declares (x-twilio.conditional, e.g. From or MessagingServiceSid) at
least one is present; values fit the declared type, enum, pattern, length and URI format, and,
for strings without an enum, the values the description lists after "Can be:" (this is how the
description states that AsyncAmd is "true" or "false", and MachineDetection "Enable" or
"DetectMessageEnd").
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.fake_twilio import RecordedRequest

# <repo>/tests/twilio_openapi.py -> <repo>/../shared/twilio-oai/twilio_api_v2010.yaml
OPENAPI_PATH = (
    Path(__file__).resolve().parents[2] / "shared" / "twilio-oai" / "twilio_api_v2010.yaml"
)
PARSED_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "twilio-openapi"
FORM = "application/x-www-form-urlencoded"
_INTEGER = re.compile(r"-?\d+")
_CAN_BE = re.compile(r"Can be: ([^.]*)\.")
_QUOTED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: Mapping[str, Any]


class TwilioOpenApi:
    """The loaded description, with `$ref`s resolved on demand and operations found by path."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.operations: list[Operation] = []
        for template, item in document["paths"].items():
            regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            for method in ("get", "post", "put", "delete"):
                if method in item:
                    self.operations.append(
                        Operation(method.upper(), template, re.compile(regex), item[method])
                    )
        # Literal segments win over placeholders: ".../Calls/FeedbackSummary.json" before
        # ".../Calls/{Sid}.json".
        self.operations.sort(key=lambda op: op.template.count("{"))

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            node: Any = self.document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def operation(self, method: str, path: str) -> Operation | None:
        return next(
            (op for op in self.operations if op.method == method and op.pattern.fullmatch(path)),
            None,
        )

    def operation_by_id(self, operation_id: str) -> Operation:
        return next(op for op in self.operations if op.spec.get("operationId") == operation_id)

    def response_schema(self, operation: Operation, status: int) -> Mapping[str, Any] | None:
        response = operation.spec.get("responses", {}).get(str(status))
        if not response or "content" not in response:
            return None
        return self.resolve(response["content"]["application/json"]["schema"])


def openapi_available(path: Path = OPENAPI_PATH) -> bool:
    return path.is_file()


@functools.cache
def load_twilio_openapi(path: Path = OPENAPI_PATH) -> TwilioOpenApi:
    """The description, parsed once per process from its pickle in pytest's cache folder, made
    by the first process to need it: PyYAML's objects are built in Python, a second or more for
    these 1.5 MB of YAML, a pickle loads in a tenth of that."""
    content = path.read_bytes()
    cached = PARSED_CACHE / f"{hashlib.sha256(content).hexdigest()}.pickle"
    try:
        spec = pickle.loads(cached.read_bytes())  # written below, by the suite
    except (FileNotFoundError, pickle.UnpicklingError, EOFError):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        spec = yaml.load(content, Loader=loader)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}")
        partial.write_bytes(pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))
        partial.replace(cached)  # whole or absent for the other test processes
    return TwilioOpenApi(spec)


def require_twilio_openapi(path: Path = OPENAPI_PATH) -> TwilioOpenApi:
    """The description, or skip the calling test with the reason."""
    if not openapi_available(path):
        pytest.skip(f"Twilio's OpenAPI description is absent: {path} (twilio/twilio-oai)")
    return load_twilio_openapi(path)


def openapi_problems(record: RecordedRequest, spec: TwilioOpenApi) -> list[str]:
    """What in `record` Twilio's description does not allow; empty when it matches."""
    operation = spec.operation(record.method, record.path)
    if operation is None:
        return [f"no operation {record.method} {record.path} in Twilio's API description"]
    problems: list[str] = []
    declared_parameters = [spec.resolve(p) for p in operation.spec.get("parameters", [])]
    path_values = _path_values(operation.template, record.path)
    for parameter in declared_parameters:
        if parameter.get("in") == "path" and parameter["name"] in path_values:
            value = path_values[parameter["name"]]
            problems += _value_problems(parameter["name"], value, parameter.get("schema", {}), spec)

    query_params = {p["name"]: p for p in declared_parameters if p.get("in") == "query"}
    for name, values in record.query.items():
        if name not in query_params:
            problems.append(f"query parameter {name!r} is not declared")
            continue
        for value in values:
            problems += _value_problems(name, value, query_params[name].get("schema", {}), spec)

    body = operation.spec.get("requestBody")
    if body is None:
        if record.form:
            problems.append(f"{operation.template} takes no body, got {sorted(record.form)}")
        return problems
    schema = spec.resolve(body["content"][FORM]["schema"])
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if not any(record.form.get(name, [])):
            problems.append(f"required parameter {name!r} is missing")
    for group in operation.spec.get("x-twilio", {}).get("conditional", []):
        names = _property_names(group, properties)
        if not any(any(record.form.get(name, [])) for name in names):
            problems.append(f"one of {names} is required")
    for name, values in record.form.items():
        if name not in properties:
            problems.append(f"parameter {name!r} is not declared by {operation.template}")
            continue
        prop = spec.resolve(properties[name])
        if prop.get("type") == "array":
            item_schema = {**spec.resolve(prop.get("items", {}))}
            item_schema.setdefault("description", prop.get("description", ""))
            for value in values:
                problems += _value_problems(name, value, item_schema, spec)
        else:
            if len(values) > 1:
                problems.append(f"parameter {name!r} is not an array but was sent {len(values)}x")
            for value in values:
                problems += _value_problems(name, value, prop, spec)
    return problems


def assert_matches_twilio_openapi(
    record: RecordedRequest, spec: TwilioOpenApi | None = None
) -> None:
    """Fail unless `record` is a request Twilio's API description allows (skip without it)."""
    problems = openapi_problems(record, spec or require_twilio_openapi())
    assert not problems, f"{record.method} {record.path} breaks Twilio's API contract:\n  " + (
        "\n  ".join(problems)
    )


def response_problems(record: RecordedRequest, spec: TwilioOpenApi) -> list[str]:
    """How the JSON the fake answered differs from the fields of Twilio's response schema."""
    operation = spec.operation(record.method, record.path)
    if operation is None or record.status is None or record.response is None:
        return [f"no answered operation for {record.method} {record.path}"]
    schema = spec.response_schema(operation, record.status)
    if schema is None:
        return [f"{operation.template} declares no JSON answer for status {record.status}"]
    declared = set(schema.get("properties", {}))
    answered = set(record.response)
    problems = [f"field {name!r} is not in Twilio's schema" for name in sorted(answered - declared)]
    problems += [f"field {name!r} is missing" for name in sorted(declared - answered)]
    for name, prop in schema.get("properties", {}).items():
        value = record.response.get(name)
        if value is None or name not in record.response:
            continue
        resolved = spec.resolve(prop)
        if isinstance(value, str) and resolved.get("type", "string") == "string":
            problems += _value_problems(name, value, resolved, spec)
    return problems


def _property_names(snake_names: Iterable[str], properties: Mapping[str, Any]) -> list[str]:
    by_key = {name.lower(): name for name in properties}
    return [by_key.get(name.replace("_", "").lower(), name) for name in snake_names]


def _path_values(template: str, path: str) -> dict[str, str]:
    names = re.findall(r"\{([^}]+)\}", template)
    regex = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template))
    found = re.fullmatch(regex, path)
    return dict(zip(names, found.groups(), strict=True)) if found else {}


def _documented_values(schema: Mapping[str, Any]) -> list[str]:
    description = " ".join(str(schema.get("description", "")).split())
    found = _CAN_BE.search(description)
    return _QUOTED.findall(found.group(1)) if found else []


def _value_problems(
    name: str, value: str, schema: Mapping[str, Any], spec: TwilioOpenApi
) -> list[str]:
    schema = spec.resolve(schema)
    kind = schema.get("type", "string")
    shown = f"{name}={value!r}"
    if kind == "integer" and not _INTEGER.fullmatch(value):
        return [f"{shown} is not an integer"]
    if kind == "number":
        try:
            float(value)
        except ValueError:
            return [f"{shown} is not a number"]
    if kind == "boolean" and value not in {"true", "false"}:
        return [f"{shown} is not a boolean (true or false)"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{shown} is not one of {schema['enum']}")
    elif kind == "string" and "enum" not in schema:
        documented = _documented_values(schema)
        words = value.split() if " " in value else [value]
        if documented and any(word not in documented for word in words):
            problems.append(f"{shown} is not one of {documented} (per its description)")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{shown} does not match {schema['pattern']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(f"{shown} is shorter than {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"{shown} is longer than {schema['maxLength']}")
    ignore_format = schema.get("x-twilio", {}).get("ignoreFormat", False)
    if schema.get("format") == "uri" and not ignore_format:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            problems.append(f"{shown} is not an absolute http(s) URL")
    if schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            problems.append(f"{shown} is not an ISO 8601 date-time")
    return problems
