"""Waiting on the cluster without sleeping: watch a namespace's objects until a predicate holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from shim.client import ApiClient, Informer, Resource

Obj = dict[str, Any]
T = TypeVar("T")


async def watch_until(
    client: ApiClient,
    resource: Resource,
    namespace: str,
    predicate: Callable[[list[Obj]], T],
    timeout: float = 30.0,
    what: str = "the condition",
) -> T:
    """List and watch `resource` in `namespace`; return the first truthy `predicate(objects)`, evaluated after
    every change. AssertionError (with the objects last seen) when `timeout` passes first."""
    found: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    async def check(_event: str, _obj: Obj) -> None:
        if not informer.synced.is_set():
            return  # the initial list arrives one object at a time: judge it once complete
        if not found.done() and (result := predicate(list(informer.cache.values()))):
            found.set_result(result)

    informer = Informer(client, resource, check, namespace=namespace)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), timeout)
        await check("SYNCED", {})
        return await asyncio.wait_for(found, timeout)
    except TimeoutError:
        seen = [(o["metadata"]["name"], o.get("status")) for o in informer.cache.values()]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {seen}") from None
    finally:
        await informer.stop()
