"""Values and exceptions to JSON text and back (``orchestrator/serialization.py``): what
round-trips to its annotated type, what is refused when stored (and named), the checks on
stored keys and texts, secrets stored as their values, and how an exception comes back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import sys
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr

from orchestrator.errors import (
    InvalidArgumentError,
    RetryLaterError,
    SerializationError,
    StepError,
    WorkflowFailedError,
)
from orchestrator.serialization import (
    MAX_KEY_CHARS,
    adapter_for,
    check_key,
    check_readable,
    decode,
    decode_error,
    encode,
    encode_error,
    error_summary,
)


class Order(BaseModel):
    id: int
    placed_at: dt.datetime
    lines: list[str] = []


class Credentials(BaseModel):
    user: str
    password: SecretStr


@dataclasses.dataclass(frozen=True)
class Shipment:
    order_id: uuid.UUID
    weight_kg: decimal.Decimal


class Carrier(enum.Enum):
    POST = "post"
    COURIER = "courier"


class Unserializable:
    """No JSON form: pydantic has no serializer for a plain object."""


class CardDeclinedError(Exception):
    """A user exception rebuilt from its args."""


class InsufficientFundsError(Exception):
    """A user exception whose __init__ does not take back what it passed to Exception."""

    def __init__(self, balance: int, needed: int) -> None:
        super().__init__(f"balance {balance} is below {needed}")
        self.balance = balance


class Billing:
    class RefusedError(Exception):
        """An exception class nested in a class of an imported module."""


PLACED = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


# ------------------------------------------------------------------------------ values


def test_plain_json_values_round_trip_compactly() -> None:
    value = {"a": [1, 2.5, None, True, "é"], "b": {}}
    text = encode(value)
    assert text == '{"a":[1,2.5,null,true,"é"],"b":{}}'
    assert decode(text) == value


@pytest.mark.parametrize(
    ("annotation", "value", "text"),
    [
        (
            Order,
            Order(id=1, placed_at=PLACED),
            '{"id":1,"placed_at":"2024-05-06T07:08:09Z","lines":[]}',
        ),
        (
            Shipment,
            Shipment(uuid.UUID(int=1), decimal.Decimal("1.50")),
            '{"order_id":"00000000-0000-0000-0000-000000000001","weight_kg":"1.50"}',
        ),
        (dt.datetime, PLACED, '"2024-05-06T07:08:09Z"'),
        (dt.date, dt.date(2024, 2, 29), '"2024-02-29"'),
        (dt.timedelta, dt.timedelta(seconds=90), '"PT1M30S"'),
        (tuple[int, str], (1, "a"), '[1,"a"]'),
        (set[int], {3}, "[3]"),
        (Carrier, Carrier.COURIER, '"courier"'),
        (bytes, b"ab", '"ab"'),
        (list[Order], [Order(id=2, placed_at=PLACED, lines=["x"])], None),
    ],
)
def test_a_value_round_trips_to_its_annotated_type(
    annotation: Any, value: object, text: str | None
) -> None:
    adapter = adapter_for(annotation)
    encoded = encode(value, adapter)
    if text is not None:
        assert encoded == text
    decoded = decode(encoded, adapter)
    assert decoded == value
    assert type(decoded) is type(value)


def test_without_an_annotation_a_model_comes_back_as_plain_json() -> None:
    text = encode(Order(id=1, placed_at=PLACED))
    assert decode(text) == {"id": 1, "placed_at": "2024-05-06T07:08:09Z", "lines": []}


def test_decoding_coerces_to_the_annotation() -> None:
    assert decode('{"id":"7","placed_at":"2024-05-06T07:08:09Z"}', adapter_for(Order)) == Order(
        id=7, placed_at=PLACED
    )
    assert decode('"42"', adapter_for(int)) == 42


def test_none_any_and_a_type_pydantic_cannot_build_mean_plain_json() -> None:
    plain = adapter_for(Any)
    assert adapter_for(None) is plain
    assert adapter_for(Unserializable) is plain  # pydantic cannot build one: plain JSON
    assert adapter_for(int) is adapter_for(int)  # cached


def test_none_text_decodes_to_none_whatever_the_annotation() -> None:
    assert decode(None, adapter_for(int)) is None


@pytest.mark.parametrize(
    "value",
    [Unserializable(), {"nested": [object()]}],
)
def test_an_unserializable_value_is_refused_naming_what_it_is(value: object) -> None:
    with pytest.raises(SerializationError, match=r"^cannot serialize the receipt of type ") as info:
        encode(value, what="the receipt")
    assert info.value.detail == {"what": "the receipt", "type": type(value).__name__}
    assert isinstance(info.value, InvalidArgumentError)  # a 400 at the HTTP edge


def test_a_cycle_is_refused_not_a_recursion_crash() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(SerializationError, match="cannot serialize the list of type list"):
        encode(cycle, what="the list")


def test_a_lone_surrogate_in_a_value_is_refused() -> None:
    with pytest.raises(SerializationError) as info:
        encode({"name": "a\ud800"}, what="the name")
    assert info.value.detail["what"] == "the name"


def test_nesting_too_deep_to_read_back_is_refused_when_stored() -> None:
    nested: Any = []
    for _ in range(240):
        nested = [nested]
    with pytest.raises(SerializationError, match="nested at most about 200 levels"):
        encode(nested, what="the tree")


def test_stored_text_that_does_not_match_the_annotation_names_what() -> None:
    with pytest.raises(SerializationError, match=r"^stored the count does not match") as info:
        decode('"many"', adapter_for(int), what="the count")
    assert info.value.detail == {"what": "the count"}


def test_stored_text_that_is_not_json_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="does not match its annotation"):
        decode("{not json")


@pytest.mark.parametrize("annotation", [float, Any])
def test_a_non_finite_float_is_refused_when_stored_or_read_back_as_itself(
    annotation: Any,
) -> None:
    adapter = adapter_for(annotation)
    try:
        text = encode(math.inf, adapter, what="the rate")
    except SerializationError as exc:
        assert exc.detail["what"] == "the rate"
    else:
        assert decode(text, adapter, what="the rate") == math.inf


# ------------------------------------------------------------------------------ secrets


def test_a_secret_in_a_model_is_stored_as_its_value_not_its_mask() -> None:
    adapter = adapter_for(Credentials)
    text = encode(Credentials(user="ann", password=SecretStr("hunter2")), adapter)
    assert text == '{"user":"ann","password":"hunter2"}'
    decoded = decode(text, adapter)
    assert isinstance(decoded.password, SecretStr)
    assert decoded.password.get_secret_value() == "hunter2"


def test_a_secret_is_stored_as_its_value_without_an_annotation_too() -> None:
    assert encode({"token": SecretStr("t0k")}) == '{"token":"t0k"}'


def test_secret_bytes_round_trip_as_their_value() -> None:
    adapter = adapter_for(SecretBytes)
    text = encode(SecretBytes(b"pw"), adapter)
    assert text == '"pw"'
    assert decode(text, adapter).get_secret_value() == b"pw"


# ------------------------------------------------------------------------------ keys


def test_a_valid_key_is_returned_unchanged() -> None:
    key = "order-" + "é" * 10
    assert check_key(key, "workflow id") is key
    assert check_key("x" * MAX_KEY_CHARS, "workflow id") == "x" * MAX_KEY_CHARS


def test_a_key_longer_than_the_limit_is_refused_with_its_length() -> None:
    with pytest.raises(InvalidArgumentError, match="topic is 513 characters long") as info:
        check_key("x" * (MAX_KEY_CHARS + 1), "topic")
    assert info.value.detail == {"what": "topic", "length": MAX_KEY_CHARS + 1}


@pytest.mark.parametrize("key", ["a\x00b", "a\ud800b", "\udfff"])
def test_a_key_with_nul_or_a_lone_surrogate_is_refused(key: str) -> None:
    with pytest.raises(InvalidArgumentError, match="event key must not contain NUL") as info:
        check_key(key, "event key")
    assert info.value.detail == {"what": "event key"}


def test_an_empty_key_is_refused_unless_allowed() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^dedup id must be a non-empty string$"):
        check_key("", "dedup id")
    assert check_key("", "dedup id", empty=True) == ""


@pytest.mark.parametrize(("value", "type_name"), [(42, "int"), (None, "NoneType"), (b"k", "bytes")])
def test_a_key_that_is_not_a_string_is_refused_naming_its_type(
    value: object, type_name: str
) -> None:
    with pytest.raises(
        InvalidArgumentError, match=f"^stream key must be a string, got {type_name}$"
    ):
        check_key(value, "stream key")


# ------------------------------------------------------------------------------ readable texts


def test_a_text_with_an_escaped_lone_surrogate_is_refused() -> None:
    with pytest.raises(
        SerializationError, match="cannot store the output: it could not be read"
    ) as info:
        check_readable('{"name":"\\ud800"}', "the output")
    assert info.value.detail == {"what": "the output"}


def test_an_escaped_surrogate_pair_is_readable() -> None:
    text = '"\\ud83d\\ude00"'  # 😀, escaped
    assert check_readable(text, "the output") is text


def test_a_text_nested_deeper_than_the_parser_reads_is_refused() -> None:
    with pytest.raises(SerializationError, match="nested at most about 200 levels deep"):
        check_readable("[" * 300 + "]" * 300, "the tree")


def test_many_brackets_that_are_not_deep_are_readable() -> None:
    text = "[" + ",".join(["[]"] * 400) + "]"
    assert check_readable(text, "the list") is text


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad value", 3),
        KeyError("k"),
        TimeoutError("slow"),
        FileNotFoundError(2, "No such file"),
        KeyboardInterrupt(),
        CardDeclinedError("card 4242 declined"),
    ],
)
def test_an_exception_with_json_args_comes_back_as_its_class(error: BaseException) -> None:
    rebuilt = decode_error(encode_error(error))
    assert type(rebuilt) is type(error)
    assert rebuilt.args == error.args
    assert str(rebuilt) == str(error)


def test_an_encoded_error_names_its_class_message_and_args() -> None:
    text = encode_error(CardDeclinedError("declined", 402))
    name = f"{__name__}.CardDeclinedError"
    assert text == (
        f'{{"type":"{name}","class":"{name}","message":"(\'declined\', 402)",'
        '"args":["declined",402],"detail":null}'
    )


def test_an_orchestrator_error_comes_back_with_its_message_and_detail() -> None:
    rebuilt = decode_error(encode_error(StepError("step failed", step="charge", attempts=3)))
    assert type(rebuilt) is StepError
    assert rebuilt.message == "step failed"
    assert rebuilt.detail == {"step": "charge", "attempts": 3}
    later = decode_error(encode_error(RetryLaterError("429", retry_after=12)))
    assert isinstance(later, RetryLaterError)
    assert later.retry_after == 12.0


def test_detail_that_is_not_json_is_stored_as_its_text() -> None:
    class Token:
        def __str__(self) -> str:
            return "token#7"

    rebuilt = decode_error(encode_error(InvalidArgumentError("bad", what="x", token=Token())))
    assert isinstance(rebuilt, InvalidArgumentError)
    assert rebuilt.detail == {"what": "x", "token": "token#7"}


def test_a_workflow_failure_keeps_the_original_type_name_for_display() -> None:
    failed = WorkflowFailedError("Declined: no", error_type="billing.Declined", error_message="no")
    text = encode_error(failed)
    assert error_summary(text) == ("billing.Declined", "Declined: no")
    rebuilt = decode_error(text)
    assert type(rebuilt) is WorkflowFailedError
    assert (rebuilt.error_type, rebuilt.error_message) == ("billing.Declined", "no")


def test_a_user_exception_its_init_cannot_rebuild_comes_back_without_its_attributes() -> None:
    """Built with __new__ and given its args: its class and message, not what __init__ set."""
    rebuilt = decode_error(encode_error(InsufficientFundsError(5, 10)))
    assert type(rebuilt) is InsufficientFundsError
    assert rebuilt.args == ("balance 5 is below 10",)
    assert not hasattr(rebuilt, "balance")


def test_an_exception_with_args_that_are_not_json_is_rebuilt_from_its_message() -> None:
    marker = object()
    text = encode_error(CardDeclinedError(marker))
    assert '"args":null' in text
    rebuilt = decode_error(text)
    assert type(rebuilt) is CardDeclinedError
    assert rebuilt.args == (str(marker),)


def test_lone_surrogates_in_a_message_are_replaced_and_the_args_dropped() -> None:
    text = encode_error(ValueError("bad \ud800 value"))
    assert '"args":null' in text
    rebuilt = decode_error(check_readable(text, "the error"))
    assert type(rebuilt) is ValueError
    assert rebuilt.args == ("bad ? value",)


def test_a_class_from_a_module_not_imported_is_a_workflow_failure_and_not_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "wave", raising=False)  # wave.Error is an exception class
    text = '{"type":"wave.Error","class":"wave.Error","message":"x","args":["x"],"detail":null}'
    rebuilt = decode_error(text)
    assert "wave" not in sys.modules
    assert type(rebuilt) is WorkflowFailedError
    assert rebuilt.error_type == "wave.Error"
    assert rebuilt.error_message == "x"
    assert rebuilt.message == "wave.Error: x"


@pytest.mark.parametrize("dotted", ["builtins.int", "os.system", "os.path", "nowhere.Gone"])
def test_a_name_that_is_not_an_exception_class_is_never_called(dotted: str) -> None:
    text = f'{{"type":"{dotted}","class":"{dotted}","message":"m","args":["rm -rf /"]}}'
    rebuilt = decode_error(text)
    assert type(rebuilt) is WorkflowFailedError
    assert rebuilt.message == f"{dotted}: m"


def test_a_local_class_is_a_workflow_failure_with_its_name() -> None:
    class LocalError(Exception):
        pass

    rebuilt = decode_error(encode_error(LocalError("gone")))
    assert isinstance(rebuilt, WorkflowFailedError)
    assert rebuilt.error_type.endswith("<locals>.LocalError")
    assert rebuilt.error_message == "gone"


def test_a_class_nested_in_a_class_comes_back_as_itself() -> None:
    rebuilt = decode_error(encode_error(Billing.RefusedError("refused")))
    assert type(rebuilt) is Billing.RefusedError
    assert rebuilt.args == ("refused",)


def test_text_that_is_not_json_is_a_workflow_failure_carrying_it() -> None:
    rebuilt = decode_error("Traceback: boom")
    assert type(rebuilt) is WorkflowFailedError
    assert rebuilt.message == "Traceback: boom"
    assert (rebuilt.error_type, rebuilt.error_message) == ("", "Traceback: boom")


def test_error_summary_gives_type_and_message() -> None:
    assert error_summary(encode_error(ValueError("v"))) == ("builtins.ValueError", "v")
    assert error_summary(encode_error(StepError("step failed", step="s"))) == (
        "orchestrator.errors.StepError",
        "step failed",
    )
    assert error_summary(None) is None
    assert error_summary("") is None
    assert error_summary("plain text") == ("", "plain text")


@pytest.mark.parametrize("text", ["42", '"boom"', "null", "[1]"])
def test_an_error_text_that_is_json_but_not_an_object_is_shown_as_text(text: str) -> None:
    assert error_summary(text) == ("", text)
    assert isinstance(decode_error(text), WorkflowFailedError)
