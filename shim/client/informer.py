"""Informer: list, then watch from the list's resourceVersion; relist on 410. Keeps a local cache."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp

from shim.client.api import ApiClient, ApiException, Obj, Resource

log = logging.getLogger("shim.client")

Handler = Callable[[str, Obj], Awaitable[None]]


def object_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


class Informer:
    """Mirrors one resource into `cache` and calls `handler(event_type, obj)` for every change."""

    def __init__(
        self,
        client: ApiClient,
        resource: Resource,
        handler: Handler,
        namespace: str | None = None,
        **selectors: str,
    ) -> None:
        self.client = client
        self.resource = resource
        self.handler = handler
        self.namespace = namespace
        self.selectors = selectors
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        """Forever: list, then watch; a 410 or a dropped stream means list again (with back-off on errors)."""
        backoff = 0.2
        while True:
            try:
                rv = await self._relist()
                self.synced.set()
                backoff = 0.2
                while True:
                    rv = await self._watch(rv)
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("informer %s: %s", self.resource.plural, exc)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.warning("informer %s: %s", self.resource.plural, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _relist(self) -> str:
        listed = await self.client.list(self.resource, self.namespace, **self.selectors)
        fresh = {object_key(o): o for o in listed.get("items", [])}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                del self.cache[key]
                await self.handler("DELETED", old)
        for key, obj in fresh.items():
            kind = "MODIFIED" if key in self.cache else "ADDED"
            self.cache[key] = obj
            await self.handler(kind, obj)
        return listed["metadata"]["resourceVersion"]

    async def _watch(self, rv: str) -> str:
        """One watch stream; returns the resourceVersion to resume from when it ends normally."""
        async for event in self.client.watch(self.resource, self.namespace, rv, **self.selectors):
            kind, obj = event["type"], event["object"]
            if kind == "ERROR":
                raise ApiException(obj.get("code", 500), obj)
            rv = obj["metadata"]["resourceVersion"]
            if kind == "BOOKMARK":
                continue
            key = object_key(obj)
            if kind == "DELETED":
                self.cache.pop(key, None)
            else:
                self.cache[key] = obj
            await self.handler(kind, obj)
        return rv
