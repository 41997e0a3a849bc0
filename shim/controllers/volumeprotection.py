"""Storage object in-use protection, like kube's `pkg/controller/volume/pvcprotection` and `pvprotection`.

A deleted claim keeps its `kubernetes.io/pvc-protection` finalizer while a scheduled pod that has not finished
uses it; a deleted volume keeps `kubernetes.io/pv-protection` while it is Bound. Then the finalizer goes and
the API server removes the object. (The API server adds both finalizers on create.)
"""

from __future__ import annotations

from typing import Any

from shim.client import ApiClient, ApiException, Resource, SharedInformerFactory, object_key
from shim.controllers.ownership import STRATEGIC_MERGE
from shim.controllers.reconciler import Reconciler
from shim.machinery.resources import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS
from shim.machinery.storage import PV_PROTECTION, PVC_PROTECTION, claim_names

Obj = dict[str, Any]

CLAIMS_BY_POD_INDEX = "pvc-protection:claims"  # pod informer index: `namespace/claim` -> pods naming it
_FINISHED = ("Succeeded", "Failed")


def _claim_keys(pod: Obj) -> tuple[str, ...]:
    namespace = pod["metadata"].get("namespace", "")
    return tuple(f"{namespace}/{name}" for name in claim_names(pod))


class PVCProtectionController(Reconciler):
    """Removes the pvc-protection finalizer of a deleted claim once no running pod uses it."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "pvc-protection-controller", informers)
        self.claims = self.watch(PERSISTENT_VOLUME_CLAIMS, self._on_claim)
        self.pods = self.watch(PODS, self._on_pod)
        if not self.pods.store.has_indexer(CLAIMS_BY_POD_INDEX):
            self.pods.add_indexer(CLAIMS_BY_POD_INDEX, _claim_keys)

    async def sync(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None or not claim["metadata"].get("deletionTimestamp"):
            return
        if PVC_PROTECTION not in (claim["metadata"].get("finalizers") or ()):
            return
        if any(_uses(pod) for pod in self.pods.by_index(CLAIMS_BY_POD_INDEX, key)):
            return  # a pod event brings the next look
        await remove_finalizer(self.client, PERSISTENT_VOLUME_CLAIMS, claim, PVC_PROTECTION)

    async def _on_claim(self, event: str, claim: Obj, old: Obj | None) -> None:
        if event != "DELETED" and claim["metadata"].get("deletionTimestamp"):
            self.queue.add(object_key(claim))

    async def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        if event == "DELETED" or not _uses(pod):
            for key in _claim_keys(pod):
                self.queue.add(key)


class PVProtectionController(Reconciler):
    """Removes the pv-protection finalizer of a deleted volume once it is no longer Bound."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "pv-protection-controller", informers)
        self.volumes = self.watch(PERSISTENT_VOLUMES, self._on_volume)

    async def sync(self, key: str) -> None:
        volume = self.volumes.get(key)
        if volume is None or not volume["metadata"].get("deletionTimestamp"):
            return
        if PV_PROTECTION not in (volume["metadata"].get("finalizers") or ()):
            return
        if (volume.get("status") or {}).get("phase") == "Bound":
            return
        await remove_finalizer(self.client, PERSISTENT_VOLUMES, volume, PV_PROTECTION)

    async def _on_volume(self, event: str, volume: Obj, old: Obj | None) -> None:
        if event != "DELETED" and volume["metadata"].get("deletionTimestamp"):
            self.queue.add(volume["metadata"]["name"])


async def remove_finalizer(client: ApiClient, resource: Resource, obj: Obj, finalizer: str) -> None:
    """Drop one finalizer (a 404 is fine: the object is gone already)."""
    meta = obj["metadata"]
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [finalizer]}}
    try:
        await client.patch(resource, meta["name"], patch, meta.get("namespace"), content_type=STRATEGIC_MERGE)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _uses(pod: Obj) -> bool:
    """A pod holds its claims from being scheduled until it finishes (kube's podUsesPVC: unscheduled pods
    never reached a node, finished ones left it)."""
    return bool((pod.get("spec") or {}).get("nodeName")) and (pod.get("status") or {}).get("phase") not in _FINISHED
