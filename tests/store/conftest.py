"""Backends under test: every contract test runs against each of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.store import Store
from shim.store.factory import open_store
from tests.etcd_server import ETCD_BINARY, EtcdServer
from tests.prerequisites import MISSING

BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("etcd", marks=pytest.mark.etcd),
]


class StoreFactory:
    """Opens the backend under test, and reopens it: a reopened durable store sees what was written before.

    `log_store` says the backend is a `LogStore`, which takes the `window=` and `watcher_backlog=` options.
    """

    def __init__(self, url: str, durable: bool, log_store: bool = False) -> None:
        self.url = url
        self.durable = durable
        self.log_store = log_store
        self.opened: list[Store] = []

    async def __call__(self, **kwargs: Any) -> Store:
        store = await open_store(self.url, **kwargs)
        self.opened.append(store)
        return store


@pytest.fixture(params=BACKENDS)
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Every store opened through the factory is closed at the end of the test."""
    if request.param == "memory":
        factory = StoreFactory("memory://", durable=False, log_store=True)
    elif request.param == "sqlite":
        factory = StoreFactory(f"sqlite://{tmp_path / 'store.db'}", durable=True, log_store=True)
    elif request.param == "etcd":
        # one etcd for the session; a key prefix of its own keeps each test's keys apart
        address = request.getfixturevalue("etcd_server").address
        factory = StoreFactory(f"etcd://{address}/test-{uuid.uuid4().hex}", durable=True)
    else:
        raise AssertionError(request.param)
    yield factory
    for store in factory.opened:
        await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory()


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """A real etcd on loopback shared by the whole session."""
    if ETCD_BINARY is None:
        pytest.skip(MISSING + "etcd (apt-get install etcd-server)")
    with EtcdServer(tmp_path_factory.mktemp("etcd")) as server:
        yield server
