"""How ``POST /workflows/{name}`` binds a JSON body to a workflow's arguments (http/inputs.py):
an object of arguments by parameter name (``*args`` as a list under its name, extra names only
with ``**kwargs``), or the body itself when the only parameter is a pydantic model; values are
validated by the parameters' annotations, and every misfit is one 422 ``validation_error`` with
field errors located under ``body``. Workflows are registered on a real Orchestrator (SQLite in
memory, never launched: binding reads only the signature)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.requests import Request

from orchestrator import Orchestrator, WorkflowFunction
from orchestrator.http.errors import RequestInvalidError, orchestrator_error_handler
from orchestrator.http.inputs import bind_body, model_parameter

BODY_DOES_NOT_FIT = "the body does not fit the workflow's parameters"


class Order(BaseModel):
    sku: str
    quantity: int


class Shipment(BaseModel):
    order: Order
    express: bool = False


@pytest.fixture
def app() -> Orchestrator:
    return Orchestrator("binding", "sqlite:///:memory:", app_version="unit")


def bound(
    workflow: WorkflowFunction[Any, Any], body: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``bind_body``'s answer, checked to be a valid call of the workflow's signature."""
    args, kwargs = bind_body(workflow, body)
    workflow.signature.bind(args, kwargs)  # InvalidArgumentError if Python would refuse it
    return args, kwargs


def field_errors(workflow: WorkflowFunction[Any, Any], body: Any) -> list[dict[str, Any]]:
    """The field errors of a body that does not fit (the 422 ``validation_error``)."""
    with pytest.raises(RequestInvalidError) as raised:
        bind_body(workflow, body)
    error = raised.value
    assert (error.http_status, error.code, error.message) == (
        422,
        "validation_error",
        BODY_DOES_NOT_FIT,
    )
    errors: list[dict[str, Any]] = error.detail["errors"]
    assert all(set(item) == {"loc", "msg", "type"} for item in errors), errors
    return errors


def locations(errors: list[dict[str, Any]]) -> list[list[Any]]:
    return [item["loc"] for item in errors]


# -- an object of arguments by name ----------------------------------------------------------


def test_the_body_names_each_argument(app: Orchestrator) -> None:
    @app.workflow(name="checkout")
    async def checkout(order_id: str, sku: str, quantity: int) -> None:
        return None

    body = {"quantity": 1, "sku": "mug", "order_id": "order-17"}  # any order of keys
    assert bound(checkout, body) == (("order-17", "mug", 1), {})


def test_keyword_only_parameters_are_passed_by_keyword(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(a: int, *, b: str, c: bool = False) -> None:
        return None

    assert bound(wf, {"a": 1, "b": "x"}) == ((1,), {"b": "x"})
    assert bound(wf, {"a": 1, "b": "x", "c": True}) == ((1,), {"b": "x", "c": True})


def test_an_omitted_default_leaves_later_arguments_to_keywords(app: Orchestrator) -> None:
    @app.workflow(name="greet")
    async def greet(greeting: str = "hello", name: str = "world") -> None:
        return None

    assert bound(greet, {}) == ((), {})
    assert bound(greet, {"greeting": "hi"}) == (("hi",), {})
    assert bound(greet, {"name": "alice"}) == ((), {"name": "alice"})


def test_positional_only_parameters_are_passed_by_position(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(a: int, b: int = 2, /) -> None:
        return None

    assert bound(wf, {"a": 1}) == ((1,), {})
    assert bound(wf, {"b": 3, "a": 1}) == ((1, 3), {})


def test_a_positional_only_argument_needs_every_earlier_one(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(a: int = 1, b: int = 2, /) -> None:
        return None

    errors = field_errors(wf, {"b": 3})
    assert errors == [
        {"loc": ["body", "b"], "msg": "needs every earlier argument", "type": "missing"}
    ]


def test_var_positional_arguments_are_a_list_under_their_name(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(first: str, *rest: int) -> None:
        return None

    assert bound(wf, {"first": "x", "rest": [1, 2, 3]}) == (("x", 1, 2, 3), {})
    assert bound(wf, {"first": "x", "rest": []}) == (("x",), {})
    assert bound(wf, {"first": "x"}) == (("x",), {})


def test_var_positional_arguments_must_be_a_list(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(*rest: int) -> None:
        return None

    errors = field_errors(wf, {"rest": 1})
    assert errors == [{"loc": ["body", "rest"], "msg": "must be a list", "type": "list_type"}]


def test_each_var_positional_item_is_validated_at_its_index(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(*rest: int) -> None:
        return None

    assert bound(wf, {"rest": ["1", 2]}) == ((1, 2), {})  # lax: a numeric string is an int
    errors = field_errors(wf, {"rest": [1, "two", 3, 4.5]})
    assert locations(errors) == [["body", "rest", 1], ["body", "rest", 3]]
    assert [item["type"] for item in errors] == ["int_parsing", "int_from_float"]


def test_var_positional_arguments_need_every_earlier_argument(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(a: int = 1, *rest: int) -> None:
        return None

    errors = field_errors(wf, {"rest": [5]})
    assert errors == [
        {"loc": ["body", "rest"], "msg": "needs every earlier argument", "type": "missing"}
    ]
    assert bound(wf, {"rest": []}) == ((), {})  # nothing to place: nothing is missing


def test_extra_names_go_to_var_keyword_validated_by_its_annotation(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(a: int, **extra: int) -> None:
        return None

    assert bound(wf, {"a": 1, "x": 2, "y": "3"}) == ((1,), {"x": 2, "y": 3})
    errors = field_errors(wf, {"a": 1, "x": "many"})
    assert locations(errors) == [["body", "x"]]
    assert errors[0]["type"] == "int_parsing"


def test_a_key_named_like_var_keyword_is_not_dropped(app: Orchestrator) -> None:
    """``wf(a=1, options=5)`` is a valid call (``options == {"options": 5}``): the body must
    either pass the value on like that or be refused, never lose it."""

    @app.workflow(name="wf")
    async def wf(a: int, **options: int) -> None:
        return None

    try:
        args, kwargs = bind_body(wf, {"a": 1, "options": 5})
    except RequestInvalidError as refused:
        assert ["body", "options"] in locations(refused.detail["errors"])
    else:
        assert (args, kwargs) == ((1,), {"options": 5})


def test_a_workflow_without_parameters_takes_an_empty_object(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf() -> None:
        return None

    assert bound(wf, {}) == ((), {})
    errors = field_errors(wf, {"x": 1})
    assert errors == [{"loc": ["body", "x"], "msg": "unexpected argument", "type": "extra"}]


def test_unannotated_parameters_take_any_json_value(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(x, y=3):  # type: ignore[no-untyped-def]
        return None

    value = {"nested": [1, None, {"a": True}]}
    assert bound(wf, {"x": value}) == (({"nested": [1, None, {"a": True}]},), {})
    assert bound(wf, {"x": "s", "y": [1]}) == (("s", [1]), {})


# -- misfits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], [1, 2], "text", 3, True])
def test_a_body_that_is_not_an_object_is_refused(app: Orchestrator, body: Any) -> None:
    @app.workflow(name="wf")
    async def wf(a: int = 0) -> None:
        return None

    errors = field_errors(wf, body)
    assert errors == [
        {"loc": ["body"], "msg": "must be an object of arguments", "type": "dict_type"}
    ]


def test_an_unknown_name_is_refused_without_var_keyword(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(a: int, *, b: int = 0) -> None:
        return None

    errors = field_errors(wf, {"a": 1, "zz": 5, "b": 2, "yy": None})
    assert errors == [
        {"loc": ["body", "zz"], "msg": "unexpected argument", "type": "extra"},
        {"loc": ["body", "yy"], "msg": "unexpected argument", "type": "extra"},
    ]


def test_a_missing_required_argument_is_refused(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(a: int, b: str = "x", *, c: float) -> None:
        return None

    errors = field_errors(wf, {"b": "y"})
    assert errors == [
        {"loc": ["body", "a"], "msg": "Field required", "type": "missing"},
        {"loc": ["body", "c"], "msg": "Field required", "type": "missing"},
    ]


def test_the_stored_input_shape_is_not_a_body(app: Orchestrator) -> None:
    """``{"args": [...], "kwargs": {...}}`` is how an input is stored, not how it is sent."""

    @app.workflow(name="wf")
    async def wf(a: int, b: int = 0) -> None:
        return None

    errors = field_errors(wf, {"args": [1], "kwargs": {"b": 2}})
    assert errors == [
        {"loc": ["body", "args"], "msg": "unexpected argument", "type": "extra"},
        {"loc": ["body", "kwargs"], "msg": "unexpected argument", "type": "extra"},
        {"loc": ["body", "a"], "msg": "Field required", "type": "missing"},
    ]


def test_every_misfit_is_reported_at_once(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(count: int, when: dt.datetime, *tags: str, note: str) -> None:
        return None

    body = {"count": "many", "tags": ["a", 7], "extra": 1}
    errors = field_errors(wf, body)
    assert locations(errors) == [
        ["body", "extra"],
        ["body", "count"],
        ["body", "when"],
        ["body", "tags"],
        ["body", "note"],
    ]
    assert [item["type"] for item in errors] == [
        "extra",
        "int_parsing",
        "missing",
        "missing",  # tags cannot be placed without `when`
        "missing",
    ]


def test_values_are_validated_and_converted_by_their_annotations(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(count: int, at: dt.datetime, ratio: float, tags: tuple[str, ...]) -> None:
        return None

    body = {"count": "5", "at": "2024-01-01T12:00:00Z", "ratio": 1, "tags": ["a", "b"]}
    args, kwargs = bound(wf, body)
    assert args == (5, dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC), 1.0, ("a", "b"))
    assert kwargs == {}
    assert isinstance(args[1], dt.datetime)
    assert isinstance(args[3], tuple)


def test_a_value_of_the_wrong_type_is_a_field_error(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(count: int, name: str, at: dt.datetime) -> None:
        return None

    errors = field_errors(wf, {"count": 1.5, "name": 3, "at": "yesterday"})
    assert locations(errors) == [["body", "count"], ["body", "name"], ["body", "at"]]
    assert [item["type"] for item in errors] == [
        "int_from_float",
        "string_type",
        "datetime_from_date_parsing",
    ]
    assert errors[0]["msg"].endswith("got a number with a fractional part")


def test_a_nested_model_argument_reports_the_field_inside_it(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(order: Order, note: str) -> None:
        return None

    args, _ = bound(wf, {"order": {"sku": "mug", "quantity": 2}, "note": "gift"})
    assert args == (Order(sku="mug", quantity=2), "gift")
    errors = field_errors(wf, {"order": {"sku": "mug", "quantity": "x"}, "note": "gift"})
    assert locations(errors) == [["body", "order", "quantity"]]


def test_field_errors_do_not_echo_the_values_sent(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(pin: int, order: Order) -> None:
        return None

    with pytest.raises(RequestInvalidError) as raised:
        bind_body(wf, {"pin": "hunter2-secret", "order": {"sku": "s3cr3t-sku", "quantity": "q"}})
    text = json.dumps(raised.value.detail)
    assert "hunter2-secret" not in text
    assert "s3cr3t-sku" not in text


# -- a pydantic model as the only parameter ---------------------------------------------------


def test_the_body_is_the_model_of_a_single_model_parameter(app: Orchestrator) -> None:
    @app.workflow(name="ship")
    async def ship(shipment: Shipment) -> None:
        return None

    assert model_parameter(ship) == "shipment"
    body = {"order": {"sku": "mug", "quantity": "2"}}
    expected = Shipment(order=Order(sku="mug", quantity=2), express=False)
    assert bound(ship, body) == ((expected,), {})


def test_a_model_body_misfit_is_located_from_body(app: Orchestrator) -> None:
    @app.workflow(name="ship")
    async def ship(shipment: Shipment) -> None:
        return None

    errors = field_errors(ship, {"order": {"sku": "mug", "quantity": "two"}, "express": "no"})
    assert locations(errors) == [["body", "order", "quantity"]]  # "no" is a valid bool
    errors = field_errors(ship, {"express": True})
    assert errors == [{"loc": ["body", "order"], "msg": "Field required", "type": "missing"}]


def test_a_model_body_is_not_wrapped_in_the_parameter_name(app: Orchestrator) -> None:
    @app.workflow(name="buy")
    async def buy(order: Order) -> None:
        return None

    errors = field_errors(buy, {"order": {"sku": "mug", "quantity": 1}})
    assert locations(errors) == [["body", "sku"], ["body", "quantity"]]


def test_a_model_body_must_be_an_object(app: Orchestrator) -> None:
    @app.workflow(name="buy")
    async def buy(order: Order) -> None:
        return None

    errors = field_errors(buy, [1])
    assert locations(errors) == [["body"]]
    assert errors[0]["type"] == "model_type"


def test_only_a_single_positional_model_parameter_is_the_body(app: Orchestrator) -> None:
    @app.workflow(name="two")
    async def two(order: Order, note: str) -> None:
        return None

    @app.workflow(name="keyword")
    async def keyword(*, order: Order) -> None:
        return None

    @app.workflow(name="optional")
    async def optional(order: Order | None) -> None:
        return None

    @app.workflow(name="listed")
    async def listed(orders: list[Order]) -> None:
        return None

    @app.workflow(name="plain")
    async def plain(count: int) -> None:
        return None

    for workflow in (two, keyword, optional, listed, plain):
        assert model_parameter(workflow) is None, workflow
    item = {"sku": "mug", "quantity": 1}
    assert bound(keyword, {"order": item}) == ((), {"order": Order(sku="mug", quantity=1)})
    assert bound(optional, {"order": None}) == ((None,), {})
    assert bound(listed, {"orders": [item]}) == (([Order(sku="mug", quantity=1)],), {})


def test_unresolvable_annotations_are_treated_as_absent(app: Orchestrator) -> None:
    @app.workflow(name="wf")
    async def wf(order: NoSuchModel) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    assert model_parameter(wf) is None
    assert bound(wf, {"order": {"anything": [1]}}) == (({"anything": [1]},), {})


# -- the answer a client gets ------------------------------------------------------------------


async def test_a_misfit_answers_422_validation_error_with_the_field_errors(
    app: Orchestrator,
) -> None:
    @app.workflow(name="wf")
    async def wf(count: int) -> None:
        return None

    with pytest.raises(RequestInvalidError) as raised:
        bind_body(wf, {"count": "many", "extra": 1})
    request = Request({"type": "http", "method": "POST", "path": "/workflows/wf", "headers": []})
    response = await orchestrator_error_handler(request, raised.value)
    assert response.status_code == 422
    assert json.loads(bytes(response.body)) == {
        "error": "validation_error",
        "message": BODY_DOES_NOT_FIT,
        "detail": {
            "errors": [
                {"loc": ["body", "extra"], "msg": "unexpected argument", "type": "extra"},
                {
                    "loc": ["body", "count"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "type": "int_parsing",
                },
            ]
        },
    }
