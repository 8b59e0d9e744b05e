"""The OpenAPI document, plus one start operation per registered workflow with its input schema.

``POST /workflows/{name}`` serves every workflow, so its generic body is "any object". The
document also lists ``POST /workflows/<name>`` for each workflow registered when the document
is first built, with the JSON schema of that workflow's parameters (or of its single pydantic
model), so clients and generators see real input types. Both paths reach the same handler.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter
from pydantic.errors import PydanticUserError

from orchestrator import WorkflowFunction
from orchestrator.http.inputs import model_parameter

GENERIC_PATH = "/workflows/{name}"
REF_TEMPLATE = "#/components/schemas/{model}"
# Names that are a single plain path segment; others are reachable only by the generic path.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.:~-]{1,200}$")
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def input_schema(workflow: WorkflowFunction[Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's JSON schema for ``workflow`` and the component schemas it refers to.

    Falls back to "any object" for a parameter type pydantic cannot describe."""
    adapters = workflow.signature.parameters
    single = model_parameter(workflow)
    parameters = workflow.signature.signature.parameters
    names = [single] if single is not None else list(parameters)
    try:
        schemas, top = TypeAdapter.json_schemas(
            [(name, "validation", adapters[name]) for name in names], ref_template=REF_TEMPLATE
        )
    except (PydanticUserError, TypeError, ValueError):
        return dict(_ANY_OBJECT), {}
    defs: dict[str, Any] = top.get("$defs", {})
    if single is not None:
        return dict(schemas[(single, "validation")]), defs
    properties: dict[str, Any] = {}
    required: list[str] = []
    body: dict[str, Any] = {"type": "object", "properties": properties}
    for name, parameter in parameters.items():
        schema = dict(schemas[(name, "validation")])
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            body["additionalProperties"] = schema
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            schema = {"type": "array", "items": schema}
        elif parameter.default is inspect.Parameter.empty:
            required.append(name)
        else:
            schema.setdefault("default", _json_default(adapters[name], parameter.default))
            if schema["default"] is _NO_DEFAULT:
                del schema["default"]
        properties[name] = schema
    body.setdefault("additionalProperties", False)
    if required:
        body["required"] = required
    return body, defs


_NO_DEFAULT = object()


def _json_default(adapter: TypeAdapter[Any], value: Any) -> Any:
    try:
        return adapter.dump_python(value, mode="json")
    except Exception:  # a default with no JSON form is simply not documented
        return _NO_DEFAULT


def add_workflow_operations(
    document: dict[str, Any], workflows: Mapping[str, WorkflowFunction[Any, Any]]
) -> None:
    """Add ``POST /workflows/<name>`` with its input schema for each plain-named workflow."""
    paths: dict[str, Any] = document.get("paths", {})
    generic = paths.get(GENERIC_PATH, {}).get("post")
    if generic is None:
        return
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name in sorted(workflows):
        path = f"/workflows/{name}"
        if not _PLAIN_NAME.match(name) or path in paths:
            continue
        body, defs = input_schema(workflows[name])
        for model, schema in defs.items():
            components.setdefault(model, schema)
        operation = copy.deepcopy(generic)
        operation["operationId"] = "start_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        operation["summary"] = f"Start {name}"
        doc = inspect.getdoc(workflows[name].fn)
        if doc:
            operation["description"] = doc.split("\n\n")[0] + "\n\n" + generic["description"]
        operation["parameters"] = [
            p for p in operation.get("parameters", []) if p.get("name") != "name"
        ]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
        paths[path] = {"post": operation}
