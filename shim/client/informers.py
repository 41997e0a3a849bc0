"""The shared informer factory: one SharedInformer per resource, namespace and selector per process.

After client-go's `informers/factory.go`: every controller, the scheduler and the node agents ask the factory
for "pods"; the first ask builds the informer, later asks get the same one, so one list+watch and one decoded
copy of each object serve them all. Informers asked for after `start()` start at once.
"""

from __future__ import annotations

import asyncio

from shim.client.api import ApiClient, Resource
from shim.client.informer import SharedInformer

InformerKey = tuple[str, str, str, str | None, tuple[tuple[str, str], ...]]


class SharedInformerFactory:
    """Builds, starts and stops the informers of one process over one client (whose `health` they report to)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._informers: dict[InformerKey, SharedInformer] = {}
        self._started = False

    def informer_for(self, resource: Resource, namespace: str | None = None, **selectors: str) -> SharedInformer:
        """The informer of `resource` (in `namespace`, filtered by `labelSelector`/`fieldSelector`), built on
        the first ask; a differently filtered view is a different informer, as with client-go's filtered
        factories."""
        key = (resource.group, resource.version, resource.plural, namespace, tuple(sorted(selectors.items())))
        informer = self._informers.get(key)
        if informer is None:
            informer = self._informers[key] = SharedInformer(self.client, resource, namespace, **selectors)
            if self._started:
                informer.start()
        return informer

    def informers(self) -> list[SharedInformer]:
        """Every informer built so far."""
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer built so far, and from now on each new one as it is built (idempotent)."""
        self._started = True
        for informer in self._informers.values():
            informer.start()

    async def wait_for_sync(self) -> None:
        """Until every informer built so far has listed once."""
        await asyncio.gather(*(informer.synced.wait() for informer in self._informers.values()))

    async def stop(self) -> None:
        """Stop every informer and forget them (a later ask builds afresh)."""
        self._started = False
        for informer in self._informers.values():
            await informer.stop()
        self._informers.clear()
