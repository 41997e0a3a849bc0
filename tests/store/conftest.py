"""Backends under test: every contract test runs against each of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from shim.store import Store
from shim.store.memory import open_memory_store

StoreFactory = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["memory"])
async def store_factory(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[StoreFactory]:
    """Opens (and reopens) the store under test; every store opened is closed at the end."""
    opened: list[Store] = []

    async def open_store() -> Store:
        if request.param == "memory":
            store = await open_memory_store()
        else:
            raise AssertionError(request.param)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory()
