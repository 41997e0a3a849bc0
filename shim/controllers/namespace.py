"""Namespace controller: a deleted namespace empties itself, then drops its `kubernetes` finalizer."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from shim.client import ApiClient, ApiException, Informer, Resource
from shim.client.api import Obj
from shim.client.discovery import served_resources
from shim.client.supervise import keep_running, spawn

log = logging.getLogger("shim.controllers.namespace")

NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
FINALIZER = "kubernetes"


class NamespaceController:
    """Watches namespaces; for each terminating one, deletes its contents, then finalizes it."""

    def __init__(self, client: ApiClient, retry_interval: float = 1.0) -> None:
        self.client = client
        self.retry_interval = retry_interval
        self.informer = Informer(client, NAMESPACES, self._on_event)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.informer.start()
        self._worker = spawn(keep_running("namespace worker", self._work, self.client.health), "namespace worker")

    async def stop(self) -> None:
        await self.informer.stop()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _on_event(self, kind: str, ns: Obj) -> None:
        name = ns["metadata"]["name"]
        if kind != "DELETED" and ns["metadata"].get("deletionTimestamp") and name not in self._queued:
            self._queued.add(name)
            self._queue.put_nowait(name)

    async def _work(self) -> None:
        while True:
            name = await self._queue.get()
            try:
                done = await self.finalize(name)
            except (ApiException, aiohttp.ClientError, TimeoutError) as exc:  # retried below
                log.warning("namespace %s: %s", name, exc)
                done = False
            except Exception:  # keep the worker alive: the namespace is retried below
                log.exception("namespace %s: finalizing failed", name)
                done = False
            if done:
                self._queued.discard(name)
            else:
                asyncio.get_running_loop().call_later(self.retry_interval, self._queue.put_nowait, name)

    async def finalize(self, name: str) -> bool:
        """One pass: delete what is left in the namespace; finalize it once nothing is. True when done."""
        try:
            ns = await self.client.get(NAMESPACES, name)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        finalizers = list(ns.get("spec", {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            return True
        remaining = 0
        for resource, verbs in await served_resources(self.client):
            if not resource.namespaced or "deletecollection" not in verbs or "list" not in verbs:
                continue
            await self.client.delete_collection(resource, name, propagationPolicy="Background")
            remaining += len((await self.client.list(resource, name)).get("items", []))
        if remaining:
            return False
        ns["spec"]["finalizers"] = [f for f in finalizers if f != FINALIZER]
        await self.client.request("PUT", f"/api/v1/namespaces/{name}/finalize", ns)
        return True
