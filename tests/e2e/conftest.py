"""One shop (services + `saga up`) on a fresh PostgreSQL database for the e2e tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SKIP_POSTGRES, create_database, drop_database
from tests.e2e.stack import Shop, ShopStack


@pytest.fixture(scope="session")
def shop_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopStack]:
    if SKIP_POSTGRES:
        pytest.skip("PostgreSQL tests disabled (ORCH_TEST_SKIP_POSTGRES=1)")
    name = f"orch_shop_{uuid.uuid4().hex[:12]}"
    stack = ShopStack(create_database(name), Path(tmp_path_factory.mktemp("shop-logs")))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        drop_database(name)


@pytest.fixture
def shop(shop_stack: ShopStack) -> Iterator[Shop]:
    client = Shop(shop_stack)
    try:
        yield client
    finally:
        client.http.close()


@pytest.fixture
def sku() -> str:
    """A product of its own for each test, so stock arithmetic is exact."""
    return f"sku-{uuid.uuid4().hex[:8]}"


def new_order() -> str:
    return f"order-{uuid.uuid4().hex[:12]}"
