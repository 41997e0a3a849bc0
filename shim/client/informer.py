"""A shared informer: one list+watch of one resource, one indexed cache, every handler fed from it.

After client-go's `tools/cache/shared_informer.go` and `reflector.go`: list, then watch from the list's
resourceVersion; relist on 410. Like the reflector it never dies of an error: any exception is logged with the
resource it was watching, followed by a capped exponential back-off and a relist. The cache is updated before
the handlers run; a handler's exception is that handler's bug, logged, and the others still get the event.

Handlers are `handler(event, obj, old)`: `event` is ADDED, MODIFIED or DELETED, `old` the cached version
`obj` replaces (None when it is new; for DELETED, the last cached version). Cached objects are shared by every
consumer: treat them as read-only and deep-copy before changing one.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Awaitable, Callable

from shim.client.api import ApiClient, ApiException, Obj, Resource
from shim.client.health import LoopHealth
from shim.client.indexer import NAMESPACE_INDEX, IndexedStore, IndexFunc, object_key
from shim.client.supervise import Backoff, spawn

log = logging.getLogger("shim.client")

Handler = Callable[[str, Obj, Obj | None], Awaitable[None]]


class Registration:
    """One handler on one informer; `synced` is set once the handler has seen every object of the first list
    (client-go's ResourceEventHandlerRegistration.HasSynced); pass it to `remove_event_handler` to stop it."""

    def __init__(self, informer: SharedInformer, handler: Handler) -> None:
        self.handler = handler
        self.informer = informer
        self.synced = asyncio.Event()
        self.removed = False


class SharedInformer:
    """Mirrors one resource (optionally one namespace, one selector) into an indexed cache and fans every
    change out to the registered handlers. Get it from a SharedInformerFactory so it is built once."""

    def __init__(self, client: ApiClient, resource: Resource, namespace: str | None = None, **selectors: str) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.selectors = selectors
        self.store = IndexedStore()
        self.synced = asyncio.Event()
        self._registrations: list[Registration] = []
        self._dispatch = asyncio.Lock()  # one change at a time reaches the cache and the handlers, in order
        self._task: asyncio.Task[None] | None = None
        self._joining: set[asyncio.Task[None]] = set()

    def describe(self) -> str:
        """What is watched, for logs: `configmaps`, `pods in ns1`, `pods (spec.nodeName=n1)`."""
        what = self.resource.plural if not self.resource.group else f"{self.resource.plural}.{self.resource.group}"
        if self.namespace:
            what += f" in {self.namespace}"
        if self.selectors:
            what += f" ({', '.join(self.selectors.values())})"
        return what

    # -- reading the cache -----------------------------------------------------------------------------------

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        """Index the cache under `name` (see IndexedStore.add_indexer); name it after its owner and purpose."""
        self.store.add_indexer(name, fn)

    def get(self, key: str) -> Obj | None:
        """The cached object under `namespace/name` (or `name` for cluster-scoped ones)."""
        return self.store.get(key)

    def list(self) -> builtins.list[Obj]:
        """Every cached object."""
        return self.store.list()

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        """The cached objects index `name` files under `value`."""
        return self.store.by_index(name, value)

    def in_namespace(self, namespace: str) -> builtins.list[Obj]:
        """The cached objects of one namespace (the namespace index every store has)."""
        return self.store.by_index(NAMESPACE_INDEX, namespace)

    def observe(self, obj: Obj) -> None:
        """Put an object this process just wrote into the cache ahead of its watch event (so the next reconcile
        does not act on the version it replaced), unless the cache already holds a newer one. Handlers are not
        called: they are when the event arrives (with `old` already equal to it)."""
        cached = self.store.get(object_key(obj))
        if cached is None or _older(cached, obj):
            self.store.upsert(obj)

    # -- handlers --------------------------------------------------------------------------------------------

    def add_event_handler(self, handler: Handler) -> Registration:
        """Feed every change to `handler`. One added after the informer started first gets an ADDED for each
        cached object (as client-go replays the cache to a late handler), then the changes that follow."""
        registration = Registration(self, handler)
        if self._task is None:
            self._registrations.append(registration)  # the first list will bring it everything
        else:
            task = spawn(self._join(registration), f"informer {self.describe()} handler replay")
            self._joining.add(task)
            task.add_done_callback(self._joining.discard)
        return registration

    def remove_event_handler(self, registration: Registration) -> None:
        """Stop feeding a handler (its component stopped; the informer goes on for the others)."""
        if registration in self._registrations:
            self._registrations.remove(registration)
        registration.removed = True

    async def _join(self, registration: Registration) -> None:
        async with self._dispatch:
            if registration.removed:
                return
            for obj in self.store.list():
                await self._call(registration, "ADDED", obj, None)
            self._registrations.append(registration)
            if self.synced.is_set():
                registration.synced.set()

    # -- running ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start listing and watching (once: a second call does nothing)."""
        if self._task is None:
            self._task = spawn(self.run(), f"informer {self.describe()}")

    async def stop(self) -> None:
        """Stop listing and watching (the cache keeps what it holds)."""
        tasks = [*self._joining, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
        items = listed.get("items", [])
        async with self._dispatch:
            fresh = {object_key(o) for o in items}
            for key in self.store.list_keys():
                if key not in fresh and (old := self.store.delete(key)) is not None:
                    await self._notify("DELETED", old, old)
            for obj in items:
                old = self.store.upsert(obj)
                await self._notify("ADDED" if old is None else "MODIFIED", obj, old)
            self.synced.set()
            for registration in self._registrations:
                registration.synced.set()
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
            async with self._dispatch:
                if kind == "DELETED":
                    old = self.store.delete(object_key(obj))
                else:
                    old = self.store.upsert(obj)
                    kind = "ADDED" if old is None else "MODIFIED"
                await self._notify(kind, obj, old)
        return rv

    async def _notify(self, kind: str, obj: Obj, old: Obj | None) -> None:
        for registration in list(self._registrations):
            await self._call(registration, kind, obj, old)

    async def _call(self, registration: Registration, kind: str, obj: Obj, old: Obj | None) -> None:
        """Call one handler; its exception is logged and the others still run (the cache is already updated)."""
        if registration.removed:  # removed while this change was being dispatched
            return
        try:
            await registration.handler(kind, obj, old)
        except Exception:
            log.exception("informer %s: handler failed on %s %s", self.describe(), kind, object_key(obj))


def _older(cached: Obj, written: Obj) -> bool:
    """Whether the cached version predates the written one (resourceVersions compared as the numbers this
    API server hands out; an unparsable one counts as older, so the write wins)."""
    try:
        return int(cached["metadata"]["resourceVersion"]) < int(written["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return True
