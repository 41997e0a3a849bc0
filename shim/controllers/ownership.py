"""Controller references: who controls an object, and claiming (adopting/releasing) objects by selector.

Follows `pkg/controller/controller_ref_manager.go`: an owner adopts orphans its selector matches and releases
objects it controls that its selector no longer matches, with the same strategic-merge patches (the object's
uid in the patch guards against a recreated object of the same name).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from shim.client import ApiClient, ApiException, Resource, SharedInformer
from shim.machinery.selectors import LabelSelector, SelectorError, label_selector_from_object

Obj = dict[str, Any]
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
CONTROLLER_UID_INDEX = "controller-uid"  # objects by the uid of their controller (shared by the controllers)


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference with `controller: true`, if any."""
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def index_by_controller(informer: SharedInformer) -> None:
    """Index the informer's objects by their controller's uid (once: several controllers ask for it)."""
    if not informer.store.has_indexer(CONTROLLER_UID_INDEX):
        informer.add_indexer(CONTROLLER_UID_INDEX, _controller_uid)


def controlled_by(informer: SharedInformer, uid: str) -> list[Obj]:
    """The cached objects whose controller has `uid` (the informer must be `index_by_controller`ed)."""
    return informer.by_index(CONTROLLER_UID_INDEX, uid)


def resolve_controller(owners: SharedInformer, obj: Obj, ref: Obj, kind: str) -> Obj | None:
    """kube's resolveControllerRef: the cached owner `ref` points at, if it is a `kind` in obj's namespace and
    still the same object (same uid)."""
    if ref.get("kind") != kind:
        return None
    owner = owners.get(f"{obj['metadata'].get('namespace', '')}/{ref.get('name', '')}")
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return None
    return owner


def spec_selector(owner: Obj) -> Obj | None:
    """An owner's `spec.selector`, a metav1.LabelSelector (every apps/v1 and batch/v1 workload)."""
    selector: Obj | None = owner["spec"].get("selector")
    return selector


def owners_selecting(
    owners: SharedInformer, obj: Obj, selector_of: Callable[[Obj], Obj | None] = spec_selector
) -> list[Obj]:
    """The cached owners in obj's namespace whose selector (`selector_of`, as a metav1.LabelSelector) matches its
    labels: who might adopt an orphan (owners with an invalid selector select nothing)."""
    labels = obj["metadata"].get("labels") or {}
    found = []
    for owner in owners.in_namespace(obj["metadata"].get("namespace", "")):
        try:
            if label_selector_from_object(selector_of(owner)).matches(labels):
                found.append(owner)
        except SelectorError:
            continue
    return found


def _controller_uid(obj: Obj) -> list[str]:
    ref = controller_of(obj)
    return [ref["uid"]] if ref is not None and ref.get("uid") else []


def controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    """`metav1.NewControllerRef`: points at `owner`, controller and blockOwnerDeletion set."""
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class ControllerRefManager:
    """Claims objects of one resource for one owner (kube's ClaimPods / ClaimReplicaSets).

    `recheck_owner` runs once, before the first adoption, and raises OwnerChanged if the owner is gone or
    being deleted (kube's RecheckDeletionTimestamp: a quorum read, so a deleted owner never adopts from a
    stale cache).
    """

    def __init__(
        self,
        client: ApiClient,
        resource: Resource,
        owner: Obj,
        owner_ref: Obj,
        selector: LabelSelector,
        recheck_owner: Callable[[], Awaitable[None]],
        finalizers: tuple[str, ...] = (),
    ) -> None:
        self.client = client
        self.resource = resource
        self.owner = owner
        self.owner_ref = owner_ref
        self.selector = selector
        self.finalizers = finalizers  # added to what it adopts (a Job's pods get the job-tracking finalizer)
        self._recheck_owner = recheck_owner
        self._rechecked = False

    async def claim(self, objects: Iterable[Obj]) -> list[Obj]:
        """The objects the owner controls after adopting matching orphans and releasing non-matching ones.

        Objects that fail to adopt or release are left out; the first such error is raised after the others
        were tried (the caller requeues), as kube aggregates them.
        """
        claimed: list[Obj] = []
        errors: list[Exception] = []
        uid = self.owner["metadata"]["uid"]
        owner_deleting = bool(self.owner["metadata"].get("deletionTimestamp"))
        for obj in objects:
            ref = controller_of(obj)
            matches = self.selector.matches(obj["metadata"].get("labels"))
            try:
                if ref is not None:
                    if ref.get("uid") != uid:
                        continue  # someone else's
                    if matches:
                        claimed.append(obj)
                    elif not owner_deleting:
                        await self._release(obj)
                elif matches and not owner_deleting and not obj["metadata"].get("deletionTimestamp"):
                    adopted = await self._adopt(obj)
                    if adopted is not None:
                        claimed.append(adopted)
            except ApiException as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return claimed

    async def _adopt(self, obj: Obj) -> Obj | None:
        if not self._rechecked:
            await self._recheck_owner()
            self._rechecked = True
        meta = obj["metadata"]
        patch: Obj = {"metadata": {"ownerReferences": [self.owner_ref], "uid": meta["uid"]}}
        if self.finalizers:
            patch["metadata"]["finalizers"] = list(self.finalizers)  # merged into the object's own list
        try:
            return await self.client.patch(
                self.resource, meta["name"], patch, meta.get("namespace"), content_type=STRATEGIC_MERGE
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def _release(self, obj: Obj) -> None:
        meta = obj["metadata"]
        patch = {
            "metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": self.owner["metadata"]["uid"]}],
                "uid": meta["uid"],
            }
        }
        try:
            await self.client.patch(
                self.resource, meta["name"], patch, meta.get("namespace"), content_type=STRATEGIC_MERGE
            )
        except ApiException as exc:
            if exc.status not in (404, 422):  # gone, or recreated with another uid: nothing to release
                raise


class OwnerChanged(Exception):
    """The owner was deleted (or replaced) after the cache was read: adopting now would be wrong."""


def recheck_deletion(client: ApiClient, resource: Resource, owner: Obj) -> Callable[[], Awaitable[None]]:
    """kube's RecheckDeletionTimestamp for `owner`: a fresh GET that must show the same uid, not deleting."""
    meta = owner["metadata"]
    where = f"{meta.get('namespace')}/{meta['name']}"

    async def recheck() -> None:
        fresh = (await client.get(resource, meta["name"], meta.get("namespace")))["metadata"]
        if fresh.get("uid") != meta["uid"]:
            raise OwnerChanged(f"original {where} is gone: got uid {fresh.get('uid')}, wanted {meta['uid']}")
        if fresh.get("deletionTimestamp"):
            raise OwnerChanged(f"{where} has just been deleted at {fresh['deletionTimestamp']}")

    return recheck


async def claim_in_namespace(
    client: ApiClient,
    resource: Resource,
    cache: SharedInformer,
    owner: Obj,
    owner_resource: Resource,
    kind: str,
    selector: LabelSelector,
) -> list[Obj]:
    """The objects of `resource` in `owner`'s namespace (read from `cache`) that `owner`, a `kind` served as
    `owner_resource`, controls after adopting the orphans `selector` matches and releasing the rest."""
    api_version = f"{owner_resource.group}/{owner_resource.version}" if owner_resource.group else owner_resource.version
    claimer = ControllerRefManager(
        client,
        resource,
        owner,
        controller_ref(owner, api_version, kind),
        selector,
        recheck_deletion(client, owner_resource, owner),
    )
    return await claimer.claim(cache.in_namespace(owner["metadata"]["namespace"]))
