"""The loop every workload controller shares: informers feed a work queue of `namespace/name` keys, and a few
workers reconcile one key at a time (kube's controller pattern: never the same key twice at once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from shim.client import ApiClient, ApiException, Informer, Resource
from shim.client.events import EventRecorder
from shim.client.supervise import keep_running, spawn
from shim.client.workqueue import WorkQueue
from shim.controllers.eventqueue import EventQueue
from shim.controllers.ownership import OwnerChanged

Obj = dict[str, Any]


def namespace_terminating(exc: ApiException) -> bool:
    """The API refused a create because the namespace is being deleted (nothing to retry or report)."""
    causes = (exc.body.get("details") or {}).get("causes") or ()
    return any(cause.get("type") == "NamespaceTerminating" for cause in causes)


def object_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


class ObjectIndex:
    """One informer's objects by namespace and name, kept from its events so handlers also get the old version."""

    def __init__(self) -> None:
        self._by_namespace: dict[str, dict[str, Obj]] = {}

    def apply(self, event: str, obj: Obj) -> Obj | None:
        """Record an informer event; the version it replaces (None when new)."""
        meta = obj["metadata"]
        names = self._by_namespace.setdefault(meta.get("namespace", ""), {})
        if event == "DELETED":
            return names.pop(meta["name"], None)
        old = names.get(meta["name"])
        names[meta["name"]] = obj
        return old

    def get(self, namespace: str, name: str) -> Obj | None:
        return self._by_namespace.get(namespace, {}).get(name)

    def in_namespace(self, namespace: str) -> Iterable[Obj]:
        return list(self._by_namespace.get(namespace, {}).values())


class Reconciler:
    """Base of a controller: `watch()` informers in `__init__`, implement `sync(key)`; errors requeue the key
    with back-off. `events` records Kubernetes Events without blocking the reconcile."""

    workers = 5  # kube's --concurrent-deployment-syncs / --concurrent-replicaset-syncs default

    def __init__(self, client: ApiClient, component: str) -> None:
        self.client = client
        self.queue = WorkQueue()
        self.events = EventQueue(EventRecorder(client, component))
        self.component = component
        self.log = logging.getLogger(f"shim.controllers.{component}")
        self._informers: list[Informer] = []
        self._task: asyncio.Task[None] | None = None

    def watch(self, resource: Resource, handler: Callable[[str, Obj], Awaitable[None]]) -> None:
        """Mirror `resource` in every namespace and call `handler(event, obj)` for each change."""
        self._informers.append(Informer(self.client, resource, handler))

    def start(self) -> None:
        for informer in self._informers:
            informer.start()
        self.events.start()
        name = f"{self.component} workers"
        self._task = spawn(keep_running(name, self._run, self.client.health), name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for informer in self._informers:
            await informer.stop()
        await self.events.stop()

    async def sync(self, key: str) -> None:
        """Reconcile the object named by `key` (`namespace/name`); raise to retry later."""
        raise NotImplementedError

    async def _run(self) -> None:
        # acting on a partial cache would, e.g., create pods that already exist
        await asyncio.gather(*(informer.synced.wait() for informer in self._informers))
        await self.queue.run(self._sync_logged, self.workers)

    async def _sync_logged(self, key: str) -> None:
        try:
            await self.sync(key)
        except ApiException as exc:
            # a conflict only means the cache was behind a write: the retry sees the newer object
            self.log.log(logging.DEBUG if exc.status == 409 else logging.WARNING, "sync %s: %s", key, exc)
            raise
        except OwnerChanged as exc:
            self.log.info("sync %s: %s", key, exc)
            raise
        except Exception:
            self.log.exception("sync %s failed", key)
            raise
