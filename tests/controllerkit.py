"""Running controllers inside the test process, against the real `kube-shim up` the tests share."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

from shim.client import ApiClient, Resource

Obj = dict[str, Any]
T = TypeVar("T")
POLL_INTERVAL = 0.05


class Controller(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def running(*controllers: Controller) -> AsyncIterator[None]:
    """Start the controllers; stop them (in reverse order) when the block ends."""
    for controller in controllers:
        controller.start()
    try:
        yield
    finally:
        for controller in reversed(controllers):
            await controller.stop()


async def listed_until(
    api: ApiClient,
    resource: Resource,
    namespace: str,
    predicate: Callable[[list[Obj]], T],
    what: str,
    timeout: float = 30.0,
) -> T:
    """List `resource` until `predicate(items)` is truthy; return that. For conditions over several objects
    (one is gone, all others are there), each check sees one consistent list, never a half-filled cache."""
    deadline = time.monotonic() + timeout
    while True:
        items = (await api.list(resource, namespace))["items"]
        if result := predicate(items):
            return result
        if time.monotonic() > deadline:
            names = [o["metadata"]["name"] for o in items]
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {names}")
        await asyncio.sleep(POLL_INTERVAL)
