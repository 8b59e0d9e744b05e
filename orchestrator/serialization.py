"""Values, pydantic models and exceptions <-> JSON text, decoded back to the annotated type.

Values are encoded with pydantic (so models, dataclasses, datetimes, UUIDs… work) and decoded
with the annotation of the parameter or return value they belong to, so a value round-trips to
the same type. Exceptions are stored as ``{"type", "message", "args", "detail"}`` and rebuilt as
the original class when that class is importable (already imported) and constructible.

Every stored value is held to a size limit (``max_payload_bytes``) here, where it is encoded:
``encode``, ``Signature.encode_input`` and ``Signature.encode_output`` raise
PayloadTooLargeError when given a ``limit`` the encoded text exceeds (its length is already
known: nothing is measured twice), and ``encode_error`` truncates the message to fit instead,
since a failure must always be recordable.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import sys
import typing
from collections.abc import Callable
from typing import Any

import pydantic_core
from pydantic import SecretBytes, SecretStr, TypeAdapter, ValidationError
from pydantic.types import Secret
from pydantic_core import PydanticSerializationError

from orchestrator.codec import undecodable_reason
from orchestrator.errors import (
    InvalidArgumentError,
    OrchestratorError,
    PayloadTooLargeError,
    PayloadUndecodableError,
    SerializationError,
    WorkflowFailedError,
)

_ANY_ADAPTER: TypeAdapter[Any] = TypeAdapter(Any)
# A stored value is read back with pydantic's JSON parser, which refuses nesting deeper than
# about 250 levels and lone UTF-16 surrogates ("\ud800"). Texts that may hold either (a
# surrogate escape, more brackets than this) are parsed once before they are stored.
_CHECK_ABOVE_BRACKETS = 200


# pydantic writes secrets (SecretStr, SecretBytes, Secret[...]) as this mask in JSON: stored so,
# a workflow would run with the mask instead of the secret. Texts holding it are encoded again
# with the secrets' values (they decode back to the secret types from the annotations).
_SECRET_MASK = '"**********"'


def _reveal(value: Any) -> Any:
    """A python-mode dump with its secrets replaced by their values."""
    if isinstance(value, SecretStr | SecretBytes | Secret):
        secret = value.get_secret_value()
        return secret.decode("utf-8", "surrogateescape") if isinstance(secret, bytes) else secret
    if isinstance(value, dict):
        return {key: _reveal(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_reveal(item) for item in value]
    return value


def _dump_revealed(adapter: TypeAdapter[Any], value: Any) -> Any:
    """``adapter``'s JSON-mode dump of ``value``, secrets as their values."""
    python = adapter.dump_python(value, mode="python", round_trip=True, warnings=False)
    return json.loads(pydantic_core.to_json(_reveal(python)))


DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024  # 2 MiB: the default of max_payload_bytes
MAX_KEY_CHARS = 512  # workflow ids, topics, event and stream keys, idempotency and dedup keys


def check_key(value: object, what: str, *, empty: bool = False) -> str:
    """A name that is stored and indexed (a workflow id, a topic, a key): a string of at most
    MAX_KEY_CHARS characters, without NUL (no database text holds it) or lone surrogates (not
    UTF-8); empty only when ``empty``. InvalidArgumentError otherwise."""
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{what} must be a string, got {type(value).__name__}", what=what
        )
    if not value and not empty:
        raise InvalidArgumentError(f"{what} must be a non-empty string", what=what)
    if len(value) > MAX_KEY_CHARS:
        raise InvalidArgumentError(
            f"{what} is {len(value)} characters long; at most {MAX_KEY_CHARS} are allowed",
            what=what,
            length=len(value),
        )
    if not storable_text(value):
        raise InvalidArgumentError(
            f"{what} must not contain NUL characters or lone surrogates", what=what
        )
    return value


def storable_text(text: str) -> bool:
    """Whether a database text column can hold ``text``: no NUL, no lone surrogate."""
    return "\x00" not in text and _is_utf8(text)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def too_large(what: str, size: int, limit: int) -> PayloadTooLargeError:
    """The error for ``what`` (its encoded form ``size`` bytes long) over ``limit`` bytes."""
    return PayloadTooLargeError(
        f"{what} is {size} bytes once encoded as JSON, more than the limit of {limit} bytes."
        " Store large data elsewhere and pass a reference to it (an id, a URL), or raise the"
        " limit: Orchestrator(max_payload_bytes=...) or ORCHESTRATOR_MAX_PAYLOAD_BYTES.",
        what=what,
        size=size,
        limit=limit,
    )


def renamed(error: PayloadTooLargeError, what: str) -> PayloadTooLargeError:
    """``error`` again, naming ``what`` (a call site's own words: "the message to ...")."""
    return too_large(what, int(error.detail["size"]), int(error.detail["limit"]))


def check_readable(text: str, what: str) -> str:
    """Return ``text`` if it can be read back once stored, else raise SerializationError: a
    value that cannot be read back must be refused at the call that stores it, not break
    every later read of the workflow (listings, the HTTP API, the CLI)."""
    if (
        "\\ud" in text
        or "\\uD" in text
        or text.count("[") + text.count("{") > _CHECK_ABOVE_BRACKETS
    ):
        try:
            pydantic_core.from_json(text)
        except ValueError as exc:
            raise SerializationError(
                f"cannot store {what}: it could not be read back ({exc}). Values must be valid"
                " Unicode (no lone surrogates such as \\ud800) and nested at most about 200"
                " levels deep.",
                what=what,
            ) from exc
    return text


@functools.lru_cache(maxsize=4096)
def adapter_for(annotation: Any) -> TypeAdapter[Any]:
    """A cached TypeAdapter; ``Any`` or a missing annotation means plain JSON values."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is None:
        return _ANY_ADAPTER
    try:
        return TypeAdapter(annotation)
    except Exception:  # an annotation pydantic cannot build: fall back to plain JSON
        return _ANY_ADAPTER


def encode(
    value: Any,
    adapter: TypeAdapter[Any] = _ANY_ADAPTER,
    *,
    what: str = "value",
    limit: int | None = None,
) -> str:
    """Encode ``value`` as JSON text, or raise SerializationError naming ``what``
    (PayloadTooLargeError if the text is longer than ``limit`` bytes)."""
    try:
        raw = adapter.dump_json(value, warnings=False)
        size = len(raw)  # UTF-8 bytes, as stored
        text = raw.decode()
        if _SECRET_MASK in text:
            text = json.dumps(_dump_revealed(adapter, value), separators=(",", ":"))
            size = len(text)  # (ASCII: json.dumps escapes the rest)
        if "null" in text:  # pydantic writes inf and NaN as null: refuse them instead
            check_finite(adapter.dump_python(value, mode="python", warnings=False), what)
    except (PydanticSerializationError, ValueError, TypeError, RecursionError) as exc:
        raise SerializationError(
            f"cannot serialize {what} of type {type(value).__name__}: {exc}. Values must be "
            "JSON-compatible or pydantic models.",
            what=what,
            type=type(value).__name__,
        ) from exc
    if limit is not None and size > limit:
        raise too_large(what, size, limit)
    return check_readable(text, what)


def check_finite(value: Any, what: str) -> None:
    """Raise ValueError if ``value`` (a python-mode dump) holds an infinite or NaN float: JSON
    has no such number, and storing it as null would change the value on every replay."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number (JSON has no {value!r})")
    elif isinstance(value, dict):
        for item in value.values():
            check_finite(item, what)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            check_finite(item, what)


def raise_if_undecodable(text: str, what: str) -> None:
    """Raise PayloadUndecodableError if ``text`` is a codec's UNDECODABLE marker (a stored
    value whose key is gone). Called only once a parse has failed: a decode that succeeds
    pays nothing for codecs."""
    reason = undecodable_reason(text)
    if reason is not None:
        raise PayloadUndecodableError(f"the stored {what} cannot be decoded: {reason}", what=what)


def decode(
    text: str | None, adapter: TypeAdapter[Any] = _ANY_ADAPTER, *, what: str = "value"
) -> Any:
    """Decode JSON text into the adapter's type."""
    if text is None:
        return None
    try:
        return adapter.validate_json(text)
    except ValidationError as exc:
        raise_if_undecodable(text, what)
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
        self.output_what = f"return value of {self.qualname}"
        self.input_what = f"the arguments of {self.qualname}"
        # How decode_input reads stored arguments: the adapters of the positional places, of
        # the named ones, of *args' and **kwargs' elements (computed once, not per decode).
        positional: list[TypeAdapter[Any]] = []
        named: dict[str, TypeAdapter[Any]] = {}
        rest = extra = _ANY_ADAPTER
        for name, p in self.signature.parameters.items():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                positional.append(self.parameters[name])
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                named[name] = self.parameters[name]
            elif p.kind is p.VAR_POSITIONAL:
                rest = self.parameters[name]
            elif p.kind is p.VAR_KEYWORD:
                extra = self.parameters[name]
        self._positional, self._named, self._rest, self._extra = positional, named, rest, extra
        # The common call needs no binding: every parameter positional (no *args, **kwargs or
        # keyword-only one) and every one passed by position: 2.3-2.8 us an encoding against
        # 2.8-4.0 us through inspect's bind() (a start's input, a step's arguments hash).
        self._places: tuple[tuple[str, TypeAdapter[Any]], ...] | None = (
            tuple((name, self.parameters[name]) for name in self.signature.parameters)
            if all(
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                for p in self.signature.parameters.values()
            )
            else None
        )

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        """Check the arguments against the signature (InvalidArgumentError-style message)."""
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentError(f"{self.qualname}(): {exc}", what="arguments") from exc

    def encode_input(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        reveal_secrets: bool = False,
        limit: int | None = None,
        what: str | None = None,
    ) -> str:
        """Encode arguments as ``{"args": [...], "kwargs": {...}}`` after checking them;
        PayloadTooLargeError naming ``what`` if the text is longer than ``limit`` bytes.

        Positional parameters go in ``args`` in order; one left out (its default used) before a
        later one that was given is filled with its default, so the later value keeps its
        place (``greet(name="alice")`` for ``greet(greeting="hello", name="world")`` stores
        ``["hello", "alice"]``). A default that cannot be stored sends the later positional
        values to ``kwargs`` instead."""
        places = self._places
        if places is not None and not kwargs and len(args) == len(places):
            encoded_args = [
                self._to_json(value, adapter, name, reveal_secrets)
                for value, (name, adapter) in zip(args, places, strict=True)
            ]
            return self._text(
                encoded_args,
                {},
                bound=(args, kwargs),
                call=(args, kwargs),
                reveal_secrets=reveal_secrets,
                limit=limit,
                what=what,
            )
        bound = self.bind(args, kwargs)
        params = self.signature.parameters
        given = bound.arguments
        encoded_args = []
        encoded_kwargs: dict[str, Any] = {}
        gap: list[inspect.Parameter] = []  # left-out positional parameters not yet filled
        by_keyword = False  # a gap could not be filled: later positional values by name
        for name, parameter in params.items():
            kind = parameter.kind
            adapter = self.parameters[name]
            if name not in given:
                if kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                    gap.append(parameter)
                continue
            value = given[name]
            if kind is parameter.VAR_POSITIONAL:
                encoded_args.extend(self._to_json(v, adapter, name, reveal_secrets) for v in value)
            elif kind is parameter.VAR_KEYWORD:
                for key, item in value.items():
                    encoded_kwargs[key] = self._to_json(item, adapter, key, reveal_secrets)
            elif kind is parameter.KEYWORD_ONLY:
                encoded_kwargs[name] = self._to_json(value, adapter, name, reveal_secrets)
            else:
                if gap and not by_keyword:
                    filled = self._defaults(gap, reveal_secrets)
                    if filled is None:
                        by_keyword = True
                    else:
                        encoded_args.extend(filled)
                    gap = []
                if by_keyword:
                    encoded_kwargs[name] = self._to_json(value, adapter, name, reveal_secrets)
                else:
                    encoded_args.append(self._to_json(value, adapter, name, reveal_secrets))
        return self._text(
            encoded_args,
            encoded_kwargs,
            bound=(bound.args, bound.kwargs),
            call=(args, kwargs),
            reveal_secrets=reveal_secrets,
            limit=limit,
            what=what,
        )

    def _text(
        self,
        encoded_args: list[Any],
        encoded_kwargs: dict[str, Any],
        *,
        bound: tuple[tuple[Any, ...], dict[str, Any]],
        call: tuple[tuple[Any, ...], dict[str, Any]],
        reveal_secrets: bool,
        limit: int | None,
        what: str | None,
    ) -> str:
        """The stored text of encoded arguments (``bound``: the arguments as bound, checked
        for inf and NaN; ``call``: as passed, encoded again if secrets were masked)."""
        args, kwargs = call
        what = what or self.input_what
        try:
            text = json.dumps(
                {"args": encoded_args, "kwargs": encoded_kwargs},
                separators=(",", ":"),
                allow_nan=False,
            )
            if "null" in text:  # pydantic writes inf and NaN as null: refuse them instead
                check_finite(list(bound), what)
        except ValueError as exc:
            raise SerializationError(f"cannot serialize {what}: {exc}", what=what) from exc
        if _SECRET_MASK in text and not reveal_secrets:  # secrets were masked: store their values
            return self.encode_input(args, kwargs, reveal_secrets=True, limit=limit, what=what)
        if limit is not None and len(text) > limit:  # (ASCII: len() is its size in bytes)
            raise too_large(what, len(text), limit)
        return check_readable(text, what)

    def _defaults(self, gap: list[inspect.Parameter], reveal: bool) -> list[Any] | None:
        """The stored form of left-out parameters' defaults, or None if one cannot be stored."""
        filled: list[Any] = []
        for parameter in gap:
            adapter = self.parameters[parameter.name]
            try:
                if reveal:
                    filled.append(_dump_revealed(adapter, parameter.default))
                else:
                    filled.append(
                        adapter.dump_python(parameter.default, mode="json", warnings=False)
                    )
            except (PydanticSerializationError, ValueError, TypeError):
                return None
        return filled

    def _to_json(
        self, value: Any, adapter: TypeAdapter[Any], name: str, reveal: bool = False
    ) -> Any:
        try:
            if reveal:
                return _dump_revealed(adapter, value)
            return adapter.dump_python(value, mode="json", warnings=False)
        except (PydanticSerializationError, ValueError, TypeError, RecursionError) as exc:
            raise SerializationError(
                f"{self.qualname}(): argument {name!r} of type {type(value).__name__} cannot be "
                f"serialized: {exc}. Pass JSON-compatible values or pydantic models.",
                what=name,
            ) from exc

    def decode_input(self, text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Rebuild positional and keyword arguments with their annotated types."""
        try:
            data = json.loads(text)
            raw_args: object = data["args"]
            raw_kwargs: object = data["kwargs"]
        except (ValueError, KeyError, TypeError) as exc:
            raise_if_undecodable(text, f"input of {self.qualname}")
            raise SerializationError(f"stored input of {self.qualname} is malformed") from exc
        if not isinstance(raw_args, list) or not isinstance(raw_kwargs, dict):
            raise SerializationError(f"stored input of {self.qualname} is malformed")
        positional, named, rest, extra = self._positional, self._named, self._rest, self._extra
        try:
            args = tuple(
                (positional[i] if i < len(positional) else rest).validate_python(v)
                for i, v in enumerate(raw_args)
            )
            kwargs = {k: named.get(k, extra).validate_python(v) for k, v in raw_kwargs.items()}
        except ValidationError as exc:
            raise SerializationError(
                f"stored input of {self.qualname} does not match its signature: {exc}"
            ) from exc
        return args, kwargs

    def encode_output(self, value: Any, *, limit: int | None = None, what: str = "") -> str:
        """Encode a return value (``what`` names it in errors; default: its function's)."""
        return encode(value, self.output, what=what or self.output_what, limit=limit)

    def decode_output(self, text: str | None) -> Any:
        return decode(text, self.output, what=f"return value of {self.qualname}")


def encode_error(exc: BaseException, limit: int = DEFAULT_MAX_PAYLOAD_BYTES) -> str:
    """Encode an exception so that ``decode_error`` can rebuild it (or describe it), at most
    ``limit`` bytes long: an error is always recordable, so a longer one loses its ``args``,
    then its ``detail``, then the end of its message (never its type)."""
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
    message = _valid_unicode(exc.message if isinstance(exc, OrchestratorError) else str(exc))
    if args is not None and "\\ud" in json.dumps(args).lower():
        args = None  # lone surrogates: unreadable once stored; the message says enough
    data = {
        "type": type_name,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "message": message,
        "args": args,
        "detail": detail,
    }
    text = json.dumps(data, separators=(",", ":"))  # ASCII: len() is its size in bytes
    if len(text) <= limit:
        return text
    return _truncated_error(data, limit)


def _truncated_error(data: dict[str, Any], limit: int) -> str:
    """An encoded error cut down to ``limit`` bytes (or to its type and class, if even those
    do not fit): without args, without detail if need be, the message shortened and marked."""
    data["args"] = None
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > limit:
        data["detail"] = None
        text = json.dumps(data, separators=(",", ":"))
    message: str = data["message"]
    keep = len(message)
    while len(text) > limit and keep > 0:
        keep = max(0, keep - (len(text) - limit) - 80)  # 80: room for the marker
        data["message"] = (
            f"{message[:keep]}... [truncated: {len(message) - keep} more characters; stored"
            f" errors are cut to max_payload_bytes ({limit})]"
        )
        text = json.dumps(data, separators=(",", ":"))
    return text


def _valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (which no UTF-8 reader accepts) replaced by "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


def error_summary(text: str | None) -> tuple[str, str] | None:
    """(type name, message) of an encoded error, for display."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        reason = undecodable_reason(text)
        if reason is not None:
            return PayloadUndecodableError.__name__, reason
        return "", text
    if not isinstance(data, dict):
        return "", text
    return str(data.get("type", "")), str(data.get("message", ""))


def decode_error(text: str) -> BaseException:
    """Rebuild an encoded exception: its original class if possible, else WorkflowFailedError."""
    try:
        data = json.loads(text)
    except ValueError:
        reason = undecodable_reason(text)
        if reason is not None:
            return PayloadUndecodableError(f"the stored error cannot be decoded: {reason}")
        data = None
    if not isinstance(data, dict):
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
    """The class named ``module.Qual.Name``, from modules already imported only (stored data
    never triggers an import); the longest module prefix first, then nested classes."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        obj: Any = sys.modules.get(".".join(parts[:split]))
        if obj is None:
            continue
        for part in parts[split:]:
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
