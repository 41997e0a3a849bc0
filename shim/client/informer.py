"""Informer: list, then watch from the list's resourceVersion; relist on 410. Keeps a local cache.

Like client-go's reflector it never dies of an error: any exception is logged with the resource it was
watching, followed by a capped exponential back-off and a relist. An exception in the handler is the
handler's bug, logged, and the informer carries on with the next event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shim.client.api import ApiClient, ApiException, Obj, Resource
from shim.client.health import LoopHealth
from shim.client.supervise import Backoff, spawn

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

    def describe(self) -> str:
        """What is watched, for logs: `configmaps`, `pods in ns1`, `pods (spec.nodeName=n1)`."""
        what = self.resource.plural if not self.resource.group else f"{self.resource.plural}.{self.resource.group}"
        if self.namespace:
            what += f" in {self.namespace}"
        if self.selectors:
            what += f" ({', '.join(self.selectors.values())})"
        return what

    def start(self) -> None:
        self._task = spawn(self.run(), f"informer {self.describe()}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self, backoff: Backoff | None = None) -> None:
        """Forever: list, then watch; a 410 or a dropped stream means list again, any other error too after
        a back-off. Only cancellation stops it."""
        backoff = backoff or Backoff(initial=0.2, cap=30.0)
        # until its first list the informer counts as failing: one that never syncs makes /readyz fail
        health = self.client.health.track(f"informer {self.describe()}", failing=True)
        try:
            while True:
                try:
                    rv = await self._relist()
                    self.synced.set()
                    health.ok()
                    backoff.reset()
                    while True:
                        rv = await self._watch(rv)
                except ApiException as exc:
                    if exc.status == 410:  # the watch fell behind compaction: relist at once, as kube does
                        log.info("informer %s: %s; relisting", self.describe(), exc)
                        continue
                    await self._back_off(exc, health, backoff)
                except Exception as exc:
                    await self._back_off(exc, health, backoff)
        finally:
            self.client.health.untrack(health)

    async def _back_off(self, exc: Exception, health: LoopHealth, backoff: Backoff) -> None:
        """Log a failure (with its traceback when a streak begins, briefly while it goes on), then wait."""
        first = health.failed(exc)
        delay = backoff.next()
        log.log(
            logging.ERROR if first else logging.WARNING,
            "informer %s failed, relisting in %.1fs: %s: %s",
            self.describe(),
            delay,
            type(exc).__name__,
            exc,
            exc_info=exc if first else None,
        )
        await asyncio.sleep(delay)

    async def _relist(self) -> str:
        listed = await self.client.list(self.resource, self.namespace, **self.selectors)
        fresh = {object_key(o): o for o in listed.get("items", [])}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                del self.cache[key]
                await self._notify("DELETED", old)
        for key, obj in fresh.items():
            kind = "MODIFIED" if key in self.cache else "ADDED"
            self.cache[key] = obj
            await self._notify(kind, obj)
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
            await self._notify(kind, obj)
        return rv

    async def _notify(self, kind: str, obj: Obj) -> None:
        """Call the handler; its exception is logged and the informer goes on (the cache is already updated)."""
        try:
            await self.handler(kind, obj)
        except Exception:
            log.exception("informer %s: handler failed on %s %s", self.describe(), kind, object_key(obj))
