"""Garbage collector: dependents go when their owners do, following `metadata.ownerReferences`.

After kube-controller-manager's `pkg/controller/garbagecollector`. Informers over every deletable resource
feed a graph of owners and dependents (by uid); two kinds of work come out of it:
- `delete:<uid>` (attemptToDeleteItem): an object whose owners are all gone is deleted (with the propagation
  its own finalizers ask for); one that still has a live owner only loses the references to the gone ones;
  an owner being deleted in the foreground (`foregroundDeletion` finalizer) has its dependents deleted first
  and loses the finalizer once no dependent with `blockOwnerDeletion` is left;
- `orphan:<uid>` (attemptToOrphan): an owner deleted with the `orphan` finalizer has its references removed
  from every dependent, then the finalizer.
The API server adds those finalizers for `propagationPolicy` Foreground/Orphan and keeps the owner until they
are gone; Background (the default) deletes the owner at once and leaves its dependents to this controller.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp

from shim.client import ApiClient, ApiException, Resource, SharedInformerFactory
from shim.client.discovery import served_resources
from shim.client.supervise import Backoff, spawn
from shim.controllers.apierrors import missing_ok
from shim.controllers.reconciler import Reconciler

Obj = dict[str, Any]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
IGNORED_RESOURCES = frozenset({("", "events"), ("events.k8s.io", "events")})  # kube's ignoredResources
REQUIRED_VERBS = frozenset({"delete", "list", "watch"})  # GetDeletableResources
ABSENT_CACHE_SIZE = 500  # kube's absentOwnerCache

log = logging.getLogger("shim.controllers.garbagecollector")


@dataclass
class _Node:
    """What the graph keeps of one observed object."""

    resource: Resource
    namespace: str | None
    name: str
    owners: list[Obj]
    finalizers: list[str]
    deleting: bool

    @property
    def deleting_dependents(self) -> bool:
        return self.deleting and FOREGROUND in self.finalizers

    def blocks(self, owner_uid: str) -> bool:
        """Its owner `owner_uid` must wait for it (blockOwnerDeletion) before a foreground deletion ends."""
        return any(ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion") for ref in self.owners)


class GarbageCollector(Reconciler):
    """Discovers the deletable resources when started, then watches them all."""

    workers = 20  # kube's --concurrent-gc-syncs

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "garbage-collector-controller", informers)
        self._graph: dict[str, _Node] = {}  # uid -> object
        self._dependents: dict[str, set[str]] = {}  # owner uid -> dependent uids (owner observed or not)
        self._resources: dict[tuple[str, str], Resource] = {}  # (group, kind) -> resource
        self._absent: OrderedDict[str, None] = OrderedDict()  # uids known to be gone
        self._boot: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._boot = spawn(self._discover_then_start(), "garbage collector discovery")

    async def stop(self) -> None:
        if self._boot is not None:
            self._boot.cancel()
            await asyncio.gather(self._boot, return_exceptions=True)
        await super().stop()

    async def sync(self, key: str) -> None:
        kind, _, uid = key.partition(":")
        if kind == "delete":
            await self._attempt_to_delete(uid)
        elif kind == "orphan":
            await self._attempt_to_orphan(uid)

    async def _discover_then_start(self) -> None:
        backoff = Backoff(initial=1.0, cap=30.0)
        # until discovery works nothing is collected: /readyz says so if that lasts
        health = self.client.health.track("garbage collector discovery", failing=True)
        try:
            while True:
                try:
                    resources = await deletable_resources(self.client)
                    break
                except (ApiException, aiohttp.ClientError, OSError) as exc:
                    log.warning("garbage collector: discovery failed, retrying: %s", exc)
                    health.failed(exc)
                except Exception as exc:
                    log.exception("garbage collector: discovery failed, retrying")
                    health.failed(exc)
                await asyncio.sleep(backoff.next())
        finally:
            self.client.health.untrack(health)
        for resource, kind in resources:
            self._resources[(resource.group, kind)] = resource
            self.watch(resource, functools.partial(self._on_event, resource))
        super().start()

    # -- deleting --------------------------------------------------------------------------------------------

    async def _attempt_to_delete(self, uid: str) -> None:
        node = self._graph.get(uid)
        if node is None or (node.deleting and not node.deleting_dependents):
            return
        try:
            latest = await self.client.get(node.resource, node.name, node.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return  # its DELETED event is on the way
            raise
        meta = latest["metadata"]
        if meta.get("uid") != uid:
            return
        if meta.get("deletionTimestamp"):
            if FOREGROUND in (meta.get("finalizers") or ()):
                await self._delete_dependents_first(uid, node, latest)
            return
        refs = meta.get("ownerReferences") or []
        if not refs:
            return
        states = {ref["uid"]: await self._owner_state(ref, node) for ref in refs}
        gone = {owner for owner, state in states.items() if state != "solid"}
        waiting = {owner for owner, state in states.items() if state == "waiting"}
        if len(gone) < len(states):
            if gone:  # a live owner remains: only the references to the others go
                await self._patch_owner_refs(node, latest, [r for r in refs if r["uid"] not in gone])
            return
        if waiting and self._dependents.get(uid):
            if any((d := self._graph.get(dep)) is not None and d.deleting_dependents for dep in self._dependents[uid]):
                # its owner and a dependent both wait in the foreground: unblock to avoid a cycle (as kube does)
                unblocked = [{**r, "blockOwnerDeletion": False} if r["uid"] in waiting else r for r in refs]
                latest = await self._patch_owner_refs(node, latest, unblocked)
            await self._delete(node, latest, "Foreground")  # the owner waits in the foreground: so does this
            return
        finalizers = meta.get("finalizers") or ()
        policy = "Orphan" if ORPHAN in finalizers else "Foreground" if FOREGROUND in finalizers else "Background"
        await self._delete(node, latest, policy)

    async def _owner_state(self, ref: Obj, dependent: _Node) -> str:
        """classifyReferences: "solid" (exists), "dangling" (gone) or "waiting" (deleting its dependents)."""
        owner_uid = ref["uid"]
        if owner_uid in self._absent:
            return "dangling"
        owner = self._graph.get(owner_uid)
        if owner is not None and owner.name == ref.get("name") and owner.namespace in (None, dependent.namespace):
            return "waiting" if owner.deleting_dependents else "solid"
        group = ref.get("apiVersion", "").rpartition("/")[0]
        resource = self._resources.get((group, ref.get("kind", "")))
        if resource is None:
            raise LookupError(f"no served resource for owner kind {ref.get('kind')} ({ref.get('apiVersion')})")
        if resource.namespaced and not dependent.namespace:
            return "dangling"  # a cluster-scoped object cannot be owned by a namespaced one
        try:
            live = await self.client.get(resource, ref["name"], dependent.namespace if resource.namespaced else None)
        except ApiException as exc:
            if exc.status != 404:
                raise
            live = None
        if live is None or live["metadata"].get("uid") != owner_uid:
            self._remember_absent(owner_uid)
            return "dangling"
        meta = live["metadata"]
        return "waiting" if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or ()) else "solid"

    async def _delete_dependents_first(self, uid: str, node: _Node, latest: Obj) -> None:
        """processDeletingDependentsItem: drop the finalizer once no blocking dependent is left."""
        blocking = [dep for dep in self._dependents.get(uid, ()) if (d := self._graph.get(dep)) and d.blocks(uid)]
        if not blocking:
            await self._remove_finalizer(node, latest, FOREGROUND)
            return
        for dep in blocking:
            if not self._graph[dep].deleting_dependents:
                self.queue.add("delete:" + dep)

    async def _delete(self, node: _Node, latest: Obj, policy: str) -> None:
        """Delete exactly the version judged (uid and resourceVersion preconditions): a change retries."""
        meta = latest["metadata"]
        preconditions = {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}
        with missing_ok():
            await self.client.delete(
                node.resource, node.name, node.namespace, propagationPolicy=policy, preconditions=preconditions
            )

    # -- orphaning -------------------------------------------------------------------------------------------

    async def _attempt_to_orphan(self, uid: str) -> None:
        """Remove the references to `uid` from its dependents, then its `orphan` finalizer."""
        node = self._graph.get(uid)
        if node is None:
            return
        for dep in list(self._dependents.get(uid, ())):
            dependent = self._graph.get(dep)
            if dependent is None:
                continue
            with missing_ok():
                latest = await self.client.get(dependent.resource, dependent.name, dependent.namespace)
                refs = latest["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    await self._patch_owner_refs(dependent, latest, [r for r in refs if r.get("uid") != uid])
        with missing_ok():
            owner = await self.client.get(node.resource, node.name, node.namespace)
            if owner["metadata"].get("uid") == uid:
                await self._remove_finalizer(node, owner, ORPHAN)

    # -- writes ----------------------------------------------------------------------------------------------

    async def _patch_owner_refs(self, node: _Node, latest: Obj, refs: list[Obj]) -> Obj:
        """Set ownerReferences of exactly the version read (a concurrent change conflicts and is retried)."""
        meta = latest["metadata"]
        patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": meta["resourceVersion"]}}
        return await self.client.patch(node.resource, node.name, patch, node.namespace)

    async def _remove_finalizer(self, node: _Node, latest: Obj, finalizer: str) -> None:
        meta = latest["metadata"]
        finalizers = meta.get("finalizers") or []
        if finalizer not in finalizers:
            return
        kept = [f for f in finalizers if f != finalizer]
        patch = {"metadata": {"finalizers": kept, "resourceVersion": meta["resourceVersion"]}}
        with missing_ok():
            await self.client.patch(node.resource, node.name, patch, node.namespace)

    # -- the graph -------------------------------------------------------------------------------------------

    async def _on_event(self, resource: Resource, event: str, obj: Obj, old_version: Obj | None) -> None:
        meta = obj["metadata"]
        uid = meta["uid"]
        old = self._graph.get(uid)
        if event == "DELETED":
            self._forget(uid, old)
            return
        node = _Node(
            resource,
            meta.get("namespace"),
            meta["name"],
            list(meta.get("ownerReferences") or ()),
            list(meta.get("finalizers") or ()),
            bool(meta.get("deletionTimestamp")),
        )
        self._graph[uid] = node
        before = {ref["uid"] for ref in old.owners} if old else set()
        after = {ref["uid"] for ref in node.owners}
        for owner in after - before:
            self._dependents.setdefault(owner, set()).add(uid)
        for owner in before - after:
            self._unlink(owner, uid)
        if old is not None and old.owners != node.owners:
            self._wake_waiting_owners(before | after)  # a blocking reference may have gone
        if any(self._needs_attention(ref) for ref in node.owners):
            self.queue.add("delete:" + uid)
        if node.deleting and ORPHAN in node.finalizers:
            self.queue.add("orphan:" + uid)
        if node.deleting_dependents:
            self.queue.add("delete:" + uid)
            if old is None or not old.deleting_dependents:
                for dep in self._dependents.get(uid, ()):
                    self.queue.add("delete:" + dep)

    def _forget(self, uid: str, old: _Node | None) -> None:
        """An object is gone: its dependents lose an owner, its waiting owners may be done."""
        self._graph.pop(uid, None)
        self._remember_absent(uid)
        for dep in self._dependents.get(uid, ()):
            self.queue.add("delete:" + dep)
        if old is not None:
            owners = {ref["uid"] for ref in old.owners}
            for owner in owners:
                self._unlink(owner, uid)
            self._wake_waiting_owners(owners)

    def _needs_attention(self, ref: Obj) -> bool:
        """The owner is not (yet) seen, is gone, or waits for its dependents."""
        owner = self._graph.get(ref["uid"])
        return owner is None or owner.deleting_dependents

    def _wake_waiting_owners(self, owners: set[str]) -> None:
        for owner in owners:
            node = self._graph.get(owner)
            if node is not None and node.deleting_dependents:
                self.queue.add("delete:" + owner)

    def _unlink(self, owner: str, dependent: str) -> None:
        dependents = self._dependents.get(owner)
        if dependents is not None:
            dependents.discard(dependent)
            if not dependents:
                del self._dependents[owner]

    def _remember_absent(self, uid: str) -> None:
        self._absent[uid] = None
        self._absent.move_to_end(uid)
        if len(self._absent) > ABSENT_CACHE_SIZE:
            self._absent.popitem(last=False)


async def deletable_resources(client: ApiClient) -> list[tuple[Resource, str]]:
    """Every served resource the collector can list, watch and delete, with its kind.

    Discovery as `served_resources` reports it carries no kinds; a collection's list kind names its kind.
    """
    out = []
    for resource, verbs in await served_resources(client):
        if (resource.group, resource.plural) in IGNORED_RESOURCES or not REQUIRED_VERBS.issubset(verbs):
            continue
        listing = await client.list(resource, limit="1")
        out.append((resource, listing["kind"].removesuffix("List")))
    return out
