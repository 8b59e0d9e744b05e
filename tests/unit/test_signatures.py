"""``Signature`` (``orchestrator/serialization.py``): a callable's arguments checked against its
signature and stored as ``{"args", "kwargs"}``, read back with the parameters' annotations; its
return value stored and read back with the return annotation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from orchestrator.errors import InvalidArgumentError, SerializationError
from orchestrator.serialization import Signature

PLACED = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
DEFAULT_TOKEN = SecretStr("default-token")


class Order(BaseModel):
    id: int
    total: float


class Opaque:
    """A value with no JSON form (pydantic cannot serialize it)."""


def place(order: Order, when: dt.datetime, *, note: str = "", count: int = 1) -> Order:
    return order


def greet(greeting: str = "hello", name: str = "world") -> str:
    return f"{greeting}, {name}"


def spread(first: int, *rest: Any, flag: bool = False, **extra: Any) -> int:
    return first


def untyped(a, b=2):  # type: ignore[no-untyped-def]  # no annotations at all
    return a


def test_a_signature_knows_its_name_parameters_and_output() -> None:
    signature = Signature(place)
    assert signature.qualname == "place"
    assert list(signature.parameters) == ["order", "when", "note", "count"]
    assert signature.output.validate_python({"id": "1", "total": 2}) == Order(id=1, total=2.0)


def test_arguments_round_trip_to_their_annotated_types() -> None:
    signature = Signature(place)
    text = signature.encode_input((Order(id=1, total=2.5), PLACED), {"note": "gift"})
    assert text == (
        '{"args":[{"id":1,"total":2.5},"2024-05-06T07:08:09Z"],"kwargs":{"note":"gift"}}'
    )
    args, kwargs = signature.decode_input(text)
    assert args == (Order(id=1, total=2.5), PLACED)
    assert isinstance(args[1], dt.datetime)
    assert kwargs == {"note": "gift"}


def test_stored_arguments_are_coerced_by_annotation_when_read() -> None:
    signature = Signature(place)
    args, kwargs = signature.decode_input(
        '{"args":[{"id":"7","total":"3"},"2024-05-06T07:08:09Z"],"kwargs":{"count":"5"}}'
    )
    assert args == (Order(id=7, total=3.0), PLACED)
    assert kwargs == {"count": 5}


def test_arguments_are_not_validated_when_stored_only_when_read() -> None:
    """Only the arity is checked on the way in; a value of the wrong type is stored as given
    and the mismatch is a SerializationError when the arguments are read."""

    def count(n: int) -> int:
        return n

    signature = Signature(count)
    assert signature.encode_input(("12",), {}) == '{"args":["12"],"kwargs":{}}'
    assert signature.decode_input('{"args":["12"],"kwargs":{}}') == ((12,), {})
    text = signature.encode_input(("many",), {})
    with pytest.raises(SerializationError, match=r"stored input of .*count does not match"):
        signature.decode_input(text)


def test_keyword_only_arguments_are_stored_by_name() -> None:
    signature = Signature(place)
    text = signature.encode_input((Order(id=1, total=1), PLACED), {"count": 3})
    assert text.endswith('"kwargs":{"count":3}}')
    assert signature.decode_input(text)[1] == {"count": 3}


def test_a_positional_argument_given_by_name_is_stored_in_its_place() -> None:
    signature = Signature(place)
    text = signature.encode_input((), {"when": PLACED, "order": Order(id=2, total=0)})
    assert signature.decode_input(text) == ((Order(id=2, total=0), PLACED), {})


def test_a_left_out_positional_default_is_filled_so_a_later_one_keeps_its_place() -> None:
    signature = Signature(greet)
    text = signature.encode_input((), {"name": "alice"})
    assert text == '{"args":["hello","alice"],"kwargs":{}}'
    assert signature.decode_input(text) == (("hello", "alice"), {})
    assert greet(*signature.decode_input(text)[0]) == "hello, alice"


def test_defaults_left_out_at_the_end_are_not_stored() -> None:
    signature = Signature(greet)
    assert signature.encode_input((), {}) == '{"args":[],"kwargs":{}}'
    assert signature.encode_input(("hi",), {}) == '{"args":["hi"],"kwargs":{}}'


def test_several_gaps_are_each_filled_with_their_defaults() -> None:
    def four(a: int = 1, b: int = 2, c: int = 3, d: int = 4) -> None:
        pass

    signature = Signature(four)
    text = signature.encode_input((), {"b": 20, "d": 40})
    assert text == '{"args":[1,20,3,40],"kwargs":{}}'


def test_a_default_that_cannot_be_stored_sends_later_values_by_name() -> None:
    sentinel = Opaque()

    def lookup(source: Any = sentinel, key: str = "", limit: int = 10) -> None:
        pass

    signature = Signature(lookup)
    text = signature.encode_input((), {"key": "k", "limit": "5"})
    assert text == '{"args":[],"kwargs":{"key":"k","limit":"5"}}'
    assert signature.decode_input(text) == ((), {"key": "k", "limit": 5})


def test_positional_only_parameters_are_stored_positionally() -> None:
    def move(src: str, /, dst: str) -> None:
        pass

    signature = Signature(move)
    assert signature.encode_input(("a",), {"dst": "b"}) == '{"args":["a","b"],"kwargs":{}}'


def test_var_positional_and_var_keyword_arguments_round_trip() -> None:
    signature = Signature(spread)
    text = signature.encode_input((1, "two", 3.0), {"flag": True, "colour": ["red"]})
    assert text == '{"args":[1,"two",3.0],"kwargs":{"flag":true,"colour":["red"]}}'
    assert signature.decode_input(text) == ((1, "two", 3.0), {"flag": True, "colour": ["red"]})


def test_a_callable_without_annotations_stores_plain_json() -> None:
    signature = Signature(untyped)
    text = signature.encode_input(({"a": [1]},), {"b": PLACED})
    assert text == '{"args":[{"a":[1]},"2024-05-06T07:08:09Z"],"kwargs":{}}'
    assert signature.decode_input(text) == (({"a": [1]}, "2024-05-06T07:08:09Z"), {})


def test_an_unresolvable_annotation_means_plain_json() -> None:
    def later(x: NotDefinedAnywhere) -> NotDefinedAnywhere:  # type: ignore[name-defined]  # noqa: F821
        return x

    signature = Signature(later)
    text = signature.encode_input(({"a": 1},), {})
    assert signature.decode_input(text) == (({"a": 1},), {})
    assert signature.decode_output(signature.encode_output([1])) == [1]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "place(): missing a required argument: 'order'"),
        ((1, 2, 3), {}, "place(): too many positional arguments"),
        ((1, 2), {"bogus": 1}, "place(): got an unexpected keyword argument 'bogus'"),
        ((1,), {"order": 2, "when": 3}, "place(): multiple values for argument 'order'"),
    ],
)
def test_wrong_missing_or_extra_arguments_are_an_invalid_argument(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        Signature(place).encode_input(args, kwargs)
    assert type(info.value) is InvalidArgumentError
    assert str(info.value) == message
    assert info.value.detail == {"what": "arguments"}


def test_a_positional_only_argument_given_by_name_is_an_invalid_argument() -> None:
    def move(src: str, /) -> None:
        pass

    with pytest.raises(InvalidArgumentError, match="'src' parameter is positional only"):
        Signature(move).bind((), {"src": "a"})


def test_an_argument_that_cannot_be_stored_is_named() -> None:
    with pytest.raises(
        SerializationError, match=r"^untyped\(\): argument 'b' of type Opaque"
    ) as info:
        Signature(untyped).encode_input((1,), {"b": Opaque()})
    assert info.value.detail == {"what": "b"}


def test_a_lone_surrogate_in_an_argument_is_refused_when_stored() -> None:
    with pytest.raises(SerializationError, match="cannot store the arguments of greet") as info:
        Signature(greet).encode_input(("hi\ud800",), {})
    assert info.value.detail == {"what": "the arguments of greet"}


@pytest.mark.parametrize("text", ["not json", '{"args": []}', '{"kwargs": {}}', "[1]", "null"])
def test_malformed_stored_input_is_a_serialization_error(text: str) -> None:
    with pytest.raises(SerializationError, match=r"^stored input of place is malformed$"):
        Signature(place).decode_input(text)


@pytest.mark.parametrize("text", ['{"args": 1, "kwargs": {}}', '{"args": [], "kwargs": []}'])
def test_stored_input_of_the_wrong_shape_is_a_serialization_error(text: str) -> None:
    with pytest.raises(SerializationError, match=r"^stored input of place is malformed$"):
        Signature(place).decode_input(text)


def test_a_secret_argument_is_stored_as_its_value() -> None:
    def login(user: str, password: SecretStr) -> None:
        pass

    signature = Signature(login)
    text = signature.encode_input(("ann",), {"password": SecretStr("hunter2")})
    assert text == '{"args":["ann","hunter2"],"kwargs":{}}'
    password = signature.decode_input(text)[0][1]
    assert isinstance(password, SecretStr)
    assert password.get_secret_value() == "hunter2"


def test_the_output_round_trips_to_the_return_annotation() -> None:
    signature = Signature(place)
    text = signature.encode_output(Order(id=4, total=1.5))
    assert text == '{"id":4,"total":1.5}'
    assert signature.decode_output(text) == Order(id=4, total=1.5)
    assert signature.decode_output('{"id":"4","total":1}') == Order(id=4, total=1.0)
    assert signature.decode_output(None) is None


def test_an_output_that_does_not_match_the_annotation_names_the_callable() -> None:
    with pytest.raises(SerializationError, match=r"^stored return value of place does not match"):
        Signature(place).decode_output('{"id":"x"}')


def test_an_output_that_cannot_be_stored_names_the_callable() -> None:
    with pytest.raises(SerializationError, match="cannot serialize return value of greet") as info:
        Signature(greet).encode_output(Opaque())
    assert info.value.detail == {"what": "return value of greet", "type": "Opaque"}


def test_a_secret_output_is_stored_as_its_value() -> None:
    def token() -> SecretStr:
        return SecretStr("t0k")

    signature = Signature(token)
    assert signature.encode_output(SecretStr("t0k")) == '"t0k"'
    assert signature.decode_output('"t0k"').get_secret_value() == "t0k"


def test_a_secret_default_filled_into_a_gap_is_stored_as_its_value() -> None:
    def connect(token: SecretStr = DEFAULT_TOKEN, host: str = "") -> None:
        pass

    signature = Signature(connect)
    text = signature.encode_input((), {"host": "db"})
    token = signature.decode_input(text)[0][0]
    assert token.get_secret_value() == "default-token"


def test_var_positional_and_var_keyword_values_come_back_as_their_annotation() -> None:
    def ship(*orders: Order, **by_carrier: Order) -> None:
        pass

    signature = Signature(ship)
    text = signature.encode_input((Order(id=1, total=1),), {"post": Order(id=2, total=2)})
    assert signature.decode_input(text) == (
        (Order(id=1, total=1),),
        {"post": Order(id=2, total=2)},
    )


def test_a_var_keyword_key_named_like_the_var_positional_parameter_round_trips() -> None:
    def tag(*labels: int, **options: Any) -> None:
        pass

    signature = Signature(tag)
    text = signature.encode_input((1,), {"labels": "not-an-int"})
    assert signature.decode_input(text) == ((1,), {"labels": "not-an-int"})


def test_arguments_all_given_by_position_are_stored_as_binding_them_would() -> None:
    """The common call (every parameter positional, every argument passed by position) skips
    inspect's bind(): its text must be the one the bound path gives for the same values."""

    def pay(order: Order, when: dt.datetime, token: SecretStr, amount: float) -> None:
        return None

    signature = Signature(pay)
    order, token = Order(id=1, total=2.5), SecretStr("s3cret")
    by_position = signature.encode_input((order, PLACED, token, 4.0), {})
    by_name = signature.encode_input(
        (), {"order": order, "when": PLACED, "token": token, "amount": 4.0}
    )
    assert by_position == by_name
    assert "s3cret" in by_position  # a secret is stored as its value on this path too
    assert Signature(lambda: None).encode_input((), {}) == '{"args":[],"kwargs":{}}'
    with pytest.raises(SerializationError):  # inf and NaN are refused on this path too
        signature.encode_input((order, PLACED, token, float("inf")), {})
    with pytest.raises(InvalidArgumentError):  # a count that does not fit still binds (and fails)
        signature.encode_input((order, PLACED), {})
    with pytest.raises(SerializationError, match="'when'"):
        signature.encode_input((order, Opaque(), token, 1.0), {})
