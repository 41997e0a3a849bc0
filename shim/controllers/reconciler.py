"""The loop every controller shares: shared informers feed a work queue of keys (`namespace/name`, or `name`
for cluster-scoped objects), and a few workers reconcile one key at a time (kube's controller pattern: never
the same key twice at once)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shim.client import ApiClient, ApiException, Resource, SharedInformer, SharedInformerFactory
from shim.client.events import EventRecorder
from shim.client.informer import Handler, Registration
from shim.client.supervise import keep_running, spawn
from shim.client.workqueue import WorkQueue
from shim.controllers.eventqueue import EventQueue
from shim.controllers.ownership import OwnerChanged

Obj = dict[str, Any]


def namespace_terminating(exc: ApiException) -> bool:
    """The API refused a create because the namespace is being deleted (nothing to retry or report)."""
    causes = (exc.body.get("details") or {}).get("causes") or ()
    return any(cause.get("type") == "NamespaceTerminating" for cause in causes)


class Reconciler:
    """Base of a controller: `watch()` resources in `__init__`, implement `sync(key)`; errors requeue the key
    with back-off. `events` records Kubernetes Events without blocking the reconcile.

    Informers come from `informers`, the process's shared factory; without one the controller builds its own
    (a controller run alone, as in tests) and stops it with itself."""

    workers = 5  # kube's --concurrent-deployment-syncs / --concurrent-replicaset-syncs default

    def __init__(self, client: ApiClient, component: str, informers: SharedInformerFactory | None = None) -> None:
        self.client = client
        self.informers = informers if informers is not None else SharedInformerFactory(client)
        self._owns_informers = informers is None
        self.queue = WorkQueue()
        self.events = EventQueue(EventRecorder(client, component))
        self.component = component
        self.log = logging.getLogger(f"shim.controllers.{component}")
        self._registrations: list[Registration] = []
        self._task: asyncio.Task[None] | None = None

    def watch(self, resource: Resource, handler: Handler) -> SharedInformer:
        """Call `handler(event, obj, old)` for each change of `resource` in every namespace; the shared
        informer is returned for reading its cache and adding indexes."""
        informer = self.informers.informer_for(resource)
        self._registrations.append(informer.add_event_handler(handler))
        return informer

    def start(self) -> None:
        self.informers.start()
        self.events.start()
        name = f"{self.component} workers"
        self._task = spawn(keep_running(name, self._run, self.client.health), name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for registration in self._registrations:
            registration.informer.remove_event_handler(registration)
        if self._owns_informers:
            await self.informers.stop()
        await self.events.stop()

    async def sync(self, key: str) -> None:
        """Reconcile the object named by `key` (`namespace/name`); raise to retry later."""
        raise NotImplementedError

    async def _run(self) -> None:
        # acting on a partial cache would, e.g., create pods that already exist
        await asyncio.gather(*(registration.synced.wait() for registration in self._registrations))
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
