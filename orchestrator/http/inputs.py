"""A workflow's arguments from a JSON body, validated with its parameters' TypeAdapters."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator import WorkflowFunction
from orchestrator.http.errors import RequestInvalidError, field_errors

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def model_parameter(workflow: WorkflowFunction[Any, Any]) -> str | None:
    """The name of the workflow's only parameter when it is annotated with a pydantic model
    (then the request body IS that model), else None."""
    parameters = list(workflow.signature.signature.parameters.values())
    if len(parameters) != 1 or parameters[0].kind not in _POSITIONAL:
        return None
    try:
        hints = typing.get_type_hints(workflow.fn)
    except Exception:  # unresolvable annotations: treat as unannotated
        return None
    annotation = hints.get(parameters[0].name)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return parameters[0].name
    return None


def _invalid(errors: list[dict[str, Any]]) -> RequestInvalidError:
    return RequestInvalidError(
        "the body does not fit the workflow's parameters", errors=field_errors(errors)
    )


def _validate(workflow: WorkflowFunction[Any, Any], name: str, value: Any, loc: list[Any]) -> Any:
    try:
        return workflow.signature.parameters[name].validate_python(value)
    except ValidationError as exc:
        raise _invalid(
            [{**e, "loc": [*loc, *e.get("loc", ())]} for e in exc.errors(include_url=False)]
        ) from None


def _collect(
    workflow: WorkflowFunction[Any, Any],
    name: str,
    value: Any,
    loc: list[Any],
    errors: list[dict[str, Any]],
) -> Any:
    """Validate one value, adding its field errors to ``errors`` (None when invalid)."""
    try:
        return _validate(workflow, name, value, loc)
    except RequestInvalidError as exc:
        errors.extend(exc.detail["errors"])
        return None


def bind_body(
    workflow: WorkflowFunction[Any, Any], body: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments for ``workflow`` from a parsed JSON body.

    A workflow whose only parameter is a pydantic model takes the body as that model;
    otherwise the body is an object of arguments by parameter name (``*args`` as a list under
    its name, extra names only with ``**kwargs``). Raises RequestInvalidError (422) with field
    errors (``loc`` starts with ``body``)."""
    single = model_parameter(workflow)
    if single is not None:
        return (_validate(workflow, single, body, ["body"]),), {}
    if not isinstance(body, dict):
        raise _invalid(
            [{"loc": ["body"], "msg": "must be an object of arguments", "type": "dict_type"}]
        )
    parameters = workflow.signature.signature.parameters
    errors: list[dict[str, Any]] = []
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    var_keyword = next((p for p in parameters.values() if p.kind is p.VAR_KEYWORD), None)
    for key in body:
        known = parameters.get(key)
        if (known is None or known.kind is known.VAR_KEYWORD) and var_keyword is None:
            errors.append({"loc": ["body", key], "msg": "unexpected argument", "type": "extra"})
    missing_positional = False
    for name, parameter in parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            # Names no other parameter has (its own name too: wf(options=5) for **options
            # gives options == {"options": 5}, as in Python).
            for key in (k for k in body if k not in parameters or k == name):
                kwargs[key] = _collect(workflow, name, body[key], ["body", key], errors)
            continue
        if name not in body:
            required = parameter.default is parameter.empty
            if required and parameter.kind is not parameter.VAR_POSITIONAL:
                errors.append({"loc": ["body", name], "msg": "Field required", "type": "missing"})
            missing_positional = missing_positional or parameter.kind in _POSITIONAL
            continue
        if parameter.kind is parameter.VAR_POSITIONAL:
            items = body[name]
            if not isinstance(items, list):
                errors.append({"loc": ["body", name], "msg": "must be a list", "type": "list_type"})
            elif missing_positional and items:
                errors.append(
                    {
                        "loc": ["body", name],
                        "msg": "needs every earlier argument",
                        "type": "missing",
                    }
                )
            else:
                args.extend(
                    _collect(workflow, name, item, ["body", name, i], errors)
                    for i, item in enumerate(items)
                )
            continue
        value = _collect(workflow, name, body[name], ["body", name], errors)
        if parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[name] = value
        elif parameter.kind is parameter.POSITIONAL_ONLY and missing_positional:
            errors.append(
                {"loc": ["body", name], "msg": "needs every earlier argument", "type": "missing"}
            )
        elif missing_positional:
            kwargs[name] = value
        else:
            args.append(value)
    if errors:
        raise _invalid(errors)
    return tuple(args), kwargs
