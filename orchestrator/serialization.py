"""Values, pydantic models and exceptions <-> JSON text, decoded back to the annotated type.

Values are encoded with pydantic (so models, dataclasses, datetimes, UUIDs… work) and decoded
with the annotation of the parameter or return value they belong to, so a value round-trips to
the same type. Exceptions are stored as ``{"type", "message", "args", "detail"}`` and rebuilt as
the original class when that class is importable (already imported) and constructible.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from orchestrator.errors import (
    InvalidArgumentError,
    OrchestratorError,
    SerializationError,
    WorkflowFailedError,
)

_ANY_ADAPTER: TypeAdapter[Any] = TypeAdapter(Any)


@functools.lru_cache(maxsize=4096)
def adapter_for(annotation: Any) -> TypeAdapter[Any]:
    """A cached TypeAdapter; ``Any`` or a missing annotation means plain JSON values."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is None:
        return _ANY_ADAPTER
    try:
        return TypeAdapter(annotation)
    except Exception:  # an annotation pydantic cannot build: fall back to plain JSON
        return _ANY_ADAPTER


def encode(value: Any, adapter: TypeAdapter[Any] = _ANY_ADAPTER, *, what: str = "value") -> str:
    """Encode ``value`` as JSON text, or raise SerializationError naming ``what``."""
    try:
        return adapter.dump_json(value, warnings=False).decode()
    except (PydanticSerializationError, ValueError, TypeError) as exc:
        raise SerializationError(
            f"cannot serialize {what} of type {type(value).__name__}: {exc}. Values must be "
            "JSON-compatible or pydantic models.",
            what=what,
            type=type(value).__name__,
        ) from exc


def decode(
    text: str | None, adapter: TypeAdapter[Any] = _ANY_ADAPTER, *, what: str = "value"
) -> Any:
    """Decode JSON text into the adapter's type."""
    if text is None:
        return None
    try:
        return adapter.validate_json(text)
    except ValidationError as exc:
        raise SerializationError(
            f"stored {what} does not match its annotation: {exc}", what=what
        ) from exc


class Signature:
    """A callable's parameter and return adapters, for encoding its inputs and output."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.qualname = getattr(fn, "__qualname__", repr(fn))
        self.signature = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable forward references: treat as unannotated
            hints = {}
        self.parameters: dict[str, TypeAdapter[Any]] = {
            name: adapter_for(hints.get(name, inspect.Parameter.empty))
            for name in self.signature.parameters
        }
        self.output = adapter_for(hints.get("return", inspect.Parameter.empty))

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        """Check the arguments against the signature (InvalidArgumentError-style message)."""
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentError(f"{self.qualname}(): {exc}", what="arguments") from exc

    def encode_input(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Encode arguments as ``{"args": [...], "kwargs": {...}}`` after checking them."""
        bound = self.bind(args, kwargs)
        params = self.signature.parameters
        encoded_args: list[Any] = []
        encoded_kwargs: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = params[name].kind
            adapter = self.parameters[name]
            if kind is inspect.Parameter.VAR_POSITIONAL:
                encoded_args.extend(self._to_json(v, _ANY_ADAPTER, name) for v in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                for key, item in value.items():
                    encoded_kwargs[key] = self._to_json(item, _ANY_ADAPTER, key)
            elif kind is inspect.Parameter.KEYWORD_ONLY:
                encoded_kwargs[name] = self._to_json(value, adapter, name)
            else:
                encoded_args.append(self._to_json(value, adapter, name))
        return json.dumps({"args": encoded_args, "kwargs": encoded_kwargs}, separators=(",", ":"))

    def _to_json(self, value: Any, adapter: TypeAdapter[Any], name: str) -> Any:
        try:
            return adapter.dump_python(value, mode="json", warnings=False)
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise SerializationError(
                f"{self.qualname}(): argument {name!r} of type {type(value).__name__} cannot be "
                f"serialized: {exc}. Pass JSON-compatible values or pydantic models.",
                what=name,
            ) from exc

    def decode_input(self, text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Rebuild positional and keyword arguments with their annotated types."""
        try:
            data = json.loads(text)
            raw_args: list[Any] = data["args"]
            raw_kwargs: dict[str, Any] = data["kwargs"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SerializationError(f"stored input of {self.qualname} is malformed") from exc
        positional = [
            p
            for p in self.signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        try:
            args = tuple(
                self.parameters[positional[i].name].validate_python(v) if i < len(positional) else v
                for i, v in enumerate(raw_args)
            )
            kwargs = {
                k: self.parameters[k].validate_python(v) if k in self.parameters else v
                for k, v in raw_kwargs.items()
            }
        except ValidationError as exc:
            raise SerializationError(
                f"stored input of {self.qualname} does not match its signature: {exc}"
            ) from exc
        return args, kwargs

    def encode_output(self, value: Any) -> str:
        return encode(value, self.output, what=f"return value of {self.qualname}")

    def decode_output(self, text: str | None) -> Any:
        return decode(text, self.output, what=f"return value of {self.qualname}")


def encode_error(exc: BaseException) -> str:
    """Encode an exception so that ``decode_error`` can rebuild it (or describe it)."""
    cls = type(exc)
    if isinstance(exc, WorkflowFailedError) and exc.error_type:
        type_name = exc.error_type
    else:
        type_name = f"{cls.__module__}.{cls.__qualname__}"
    try:
        args = json.loads(json.dumps(list(exc.args)))
    except (TypeError, ValueError):
        args = None
    detail = None
    if isinstance(exc, OrchestratorError):
        try:
            detail = json.loads(json.dumps(exc.detail, default=str))
        except (TypeError, ValueError):
            detail = None
    message = exc.message if isinstance(exc, OrchestratorError) else str(exc)
    return json.dumps(
        {
            "type": type_name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "message": message,
            "args": args,
            "detail": detail,
        },
        separators=(",", ":"),
    )


def error_summary(text: str | None) -> tuple[str, str] | None:
    """(type name, message) of an encoded error, for display."""
    if not text:
        return None
    try:
        data = json.loads(text)
        return str(data.get("type", "")), str(data.get("message", ""))
    except ValueError:
        return "", text


def decode_error(text: str) -> BaseException:
    """Rebuild an encoded exception: its original class if possible, else WorkflowFailedError."""
    try:
        data = json.loads(text)
    except ValueError:
        return WorkflowFailedError(text, error_type="", error_message=text)
    type_name = str(data.get("type", ""))
    message = str(data.get("message", ""))
    cls = _find_exception_class(str(data.get("class", type_name)))
    if cls is not None:
        rebuilt = _construct(cls, message, data.get("args"), data.get("detail"))
        if rebuilt is not None:
            return rebuilt
    return WorkflowFailedError(
        f"{type_name}: {message}", error_type=type_name, error_message=message
    )


def _find_exception_class(dotted: str) -> type[BaseException] | None:
    module_name, _, qualname = dotted.rpartition(".")
    # Only classes from modules already imported: stored data never triggers an import.
    module = sys.modules.get(module_name)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return obj
    return None


def _construct(
    cls: type[BaseException], message: str, args: Any, detail: Any
) -> BaseException | None:
    if issubclass(cls, OrchestratorError):
        rebuilt = cls.__new__(cls)
        OrchestratorError.__init__(rebuilt, message, **(detail or {}))
        return rebuilt
    try:
        return cls(*args) if isinstance(args, list) else cls(message)
    except Exception:
        try:
            error = cls.__new__(cls)
            error.args = tuple(args) if isinstance(args, list) else (message,)
            return error
        except Exception:
            return None
