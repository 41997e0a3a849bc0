"""The persistent volume binder, like kube-controller-manager's `pkg/controller/volume/persistentvolume`.

It binds each claim to a volume (a pre-bound one, the one it names, or the smallest that matches its class,
access modes, size and selector), writing both halves of the bind (the volume's claimRef, the claim's
volumeName and the `bind-completed`/`bound-by-controller` annotations) and their phases; it waits for the
first consumer under WaitForFirstConsumer classes (until the scheduler writes `selected-node`), hands claims
it cannot bind to their class's provisioner (`storage-provisioner` annotation) or, when they name no class, to
the default class made since (retroactive default StorageClass assignment), and releases a volume whose
claim is gone, then reclaims it by its policy: Retain keeps it, Delete is the provisioner's job for the
volumes it made (and Failed for others, as kube has no deleter for them), Recycle is Failed (no recycler).

Queue keys: `claim:namespace/name` and `volume:name`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from shim.client import ApiClient, ApiException, SharedInformerFactory, object_key
from shim.controllers.reconciler import Reconciler
from shim.machinery.resources import NODES, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, STORAGE_CLASSES
from shim.machinery.storage import (
    BETA_STORAGE_PROVISIONER,
    BIND_COMPLETED,
    BOUND_BY_CONTROLLER,
    NO_PROVISIONER,
    PROVISIONED_BY,
    SELECTED_NODE,
    STORAGE_PROVISIONER,
    WAIT_FOR_FIRST_CONSUMER,
    best_volume,
    claim_class,
    default_class,
    is_bound_to,
    volume_matches_claim,
)
from shim.scheduler.terms import node_selector_term

Obj = dict[str, Any]

CLAIM = "claim:"
VOLUME = "volume:"


class PersistentVolumeController(Reconciler):
    """Binds claims to volumes and keeps both phases right; reclaims released volumes."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "persistentvolume-controller", informers)
        self.claims = self.watch(PERSISTENT_VOLUME_CLAIMS, self._on_claim)
        self.volumes = self.watch(PERSISTENT_VOLUMES, self._on_volume)
        self.classes = self.watch(STORAGE_CLASSES, self._on_class)
        self.nodes = self.watch(NODES, _ignore)  # read for the node a WaitForFirstConsumer claim was placed on

    async def sync(self, key: str) -> None:
        """One claim or one volume."""
        if key.startswith(CLAIM):
            claim = self.claims.get(key.removeprefix(CLAIM))
            if claim is not None:
                await self._sync_claim(copy.deepcopy(claim))
        else:
            volume = self.volumes.get(key.removeprefix(VOLUME))
            if volume is not None:
                await self._sync_volume(copy.deepcopy(volume))

    # -- events ----------------------------------------------------------------------------------------------

    async def _on_claim(self, event: str, claim: Obj, old: Obj | None) -> None:
        if event == "DELETED":
            if volume_name := claim["spec"].get("volumeName"):
                self.queue.add(VOLUME + volume_name)
            return
        self.queue.add(CLAIM + object_key(claim))

    async def _on_volume(self, event: str, volume: Obj, old: Obj | None) -> None:
        ref = volume["spec"].get("claimRef")
        if event != "DELETED":
            self.queue.add(VOLUME + volume["metadata"]["name"])
        if ref and ref.get("name"):
            self.queue.add(f"{CLAIM}{ref.get('namespace', '')}/{ref['name']}")
        elif event != "DELETED":
            self._enqueue_pending_claims()  # a free volume may be what a waiting claim needs

    async def _on_class(self, event: str, storage_class: Obj, old: Obj | None) -> None:
        self._enqueue_pending_claims()

    def _enqueue_pending_claims(self) -> None:
        for claim in self.claims.list():
            if not (claim["metadata"].get("annotations") or {}).get(BIND_COMPLETED):
                self.queue.add(CLAIM + object_key(claim))

    # -- claims ----------------------------------------------------------------------------------------------

    async def _sync_claim(self, claim: Obj) -> None:
        if (claim["metadata"].get("annotations") or {}).get(BIND_COMPLETED):
            await self._sync_bound_claim(claim)
        else:
            await self._sync_unbound_claim(claim)

    async def _sync_unbound_claim(self, claim: Obj) -> None:
        """syncUnboundClaim: find (or wait for) a volume and bind it."""
        volume_name = claim["spec"].get("volumeName")
        if not volume_name:
            await self._find_volume(claim)
            return
        volume = self.volumes.get(volume_name)
        if volume is None:
            await self._claim_phase(claim, "Pending")  # the volume it names may yet be created
            return
        if not volume["spec"].get("claimRef") or is_bound_to(volume, claim):
            if not volume_matches_claim(volume, claim):
                self.events.emit(
                    claim,
                    "Warning",
                    "VolumeMismatch",
                    f'Cannot bind to requested volume "{volume_name}": it does not satisfy the claim',
                )
                await self._claim_phase(claim, "Pending")
                return
            await self._bind(copy.deepcopy(volume), claim)
            return
        self.events.emit(
            claim, "Warning", "FailedBinding", f'volume "{volume_name}" already bound to a different claim.'
        )
        await self._claim_phase(claim, "Pending")

    async def _find_volume(self, claim: Obj) -> None:
        """A matching volume, or the reason to wait (first consumer, provisioner, nothing available)."""
        class_name = claim_class(claim)
        storage_class = self.classes.get(class_name) if class_name else None
        waits = storage_class is not None and storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
        selected = (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE)
        if waits and not selected:
            self.events.emit(
                claim, "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding"
            )
            await self._claim_phase(claim, "Pending")
            return
        fits: Callable[[Obj], bool] | None = None
        if waits and selected:
            node = self.nodes.get(selected)
            if node is None:  # the scheduler's choice is gone: wait for it to choose again
                await self._claim_phase(claim, "Pending")
                return
            fits = functools.partial(_reachable_from, node=node)
        volume = best_volume(self.volumes.list(), claim, fits)
        if volume is not None:
            await self._bind(copy.deepcopy(volume), claim)
            return
        if not class_name and claim["spec"].get("storageClassName") is None:
            default = default_class(self.classes.list())
            if default is not None:  # assignDefaultStorageClass: a default class made after the claim
                claim["spec"]["storageClassName"] = default["metadata"]["name"]
                await self._write(PERSISTENT_VOLUME_CLAIMS, claim)  # its update event brings the next sync
                return
        if storage_class is not None and storage_class.get("provisioner") != NO_PROVISIONER:
            await self._ask_provisioner(claim, storage_class["provisioner"])
            return
        if class_name and storage_class is None:
            message = f'storageclass.storage.k8s.io "{class_name}" not found'
        elif class_name:
            message = "no persistent volumes available for this claim"
        else:
            message = "no persistent volumes available for this claim and no storage class is set"
        self.events.emit(claim, "Normal", "FailedBinding", message)
        await self._claim_phase(claim, "Pending")

    async def _ask_provisioner(self, claim: Obj, provisioner: str) -> None:
        """provisionClaim for an external provisioner: name it on the claim and say so."""
        annotations = claim["metadata"].setdefault("annotations", {})
        if annotations.get(STORAGE_PROVISIONER) != provisioner:
            annotations[STORAGE_PROVISIONER] = provisioner
            annotations[BETA_STORAGE_PROVISIONER] = provisioner
            claim = await self._write(PERSISTENT_VOLUME_CLAIMS, claim)
        self.events.emit(
            claim,
            "Normal",
            "ExternalProvisioning",
            f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by "
            "the system administrator. If volume creation is delayed, please verify that the provisioner is "
            "running and correctly registered.",
        )
        await self._claim_phase(claim, "Pending")

    async def _sync_bound_claim(self, claim: Obj) -> None:
        """syncBoundClaim: the volume is still there and still ours, or the claim is Lost."""
        volume_name = claim["spec"].get("volumeName")
        volume = self.volumes.get(volume_name) if volume_name else None
        if volume is None:
            message = (
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
                if volume_name
                else "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
            )
            if (claim.get("status") or {}).get("phase") != "Lost":
                self.events.emit(claim, "Warning", "ClaimLost", message)
            await self._claim_phase(claim, "Lost")
            return
        if not volume["spec"].get("claimRef") or is_bound_to(volume, claim):
            await self._bind(copy.deepcopy(volume), claim)
            return
        if (claim.get("status") or {}).get("phase") != "Lost":
            message = "Two claims are bound to the same volume, this one is bound incorrectly"
            self.events.emit(claim, "Warning", "ClaimMisbound", message)
        await self._claim_phase(claim, "Lost")

    # -- volumes ---------------------------------------------------------------------------------------------

    async def _sync_volume(self, volume: Obj) -> None:
        """syncVolume: Available, Bound, or Released and reclaimed."""
        ref = volume["spec"].get("claimRef")
        if not ref:
            await self._volume_phase(volume, "Available")
            return
        claim = self.claims.get(f"{ref.get('namespace', '')}/{ref.get('name', '')}")
        if not ref.get("uid"):  # pre-bound by its creator to a claim that may not exist yet
            await self._volume_phase(volume, "Available")
            return
        if claim is not None and claim["metadata"].get("uid") != ref["uid"]:
            claim = None  # a new claim of the same name is not the one this volume served
        if claim is None:
            await self._release(volume)
            return
        bound_to = claim["spec"].get("volumeName")
        if not bound_to:
            self.queue.add(CLAIM + object_key(claim))  # half-bound: the claim's sync finishes it
            return
        if bound_to == volume["metadata"]["name"]:
            await self._volume_phase(volume, "Bound")
            return
        if (volume["metadata"].get("annotations") or {}).get(BOUND_BY_CONTROLLER):
            await self._unbind(volume)  # our half of a bind the claim went elsewhere from
        # bound by its creator to a claim bound elsewhere: leave it, as kube does

    async def _release(self, volume: Obj) -> None:
        """The claim is gone: Released, then the reclaim policy."""
        phase = (volume.get("status") or {}).get("phase")
        if phase == "Failed":
            return
        if phase != "Released":
            volume = await self._volume_phase(volume, "Released")
        policy = volume["spec"].get("persistentVolumeReclaimPolicy", "Retain")
        if policy == "Retain":
            return
        if policy == "Delete":
            if (volume["metadata"].get("annotations") or {}).get(PROVISIONED_BY):
                return  # its provisioner deletes what it made
            message = (
                f'error getting deleter volume plugin for volume "{volume["metadata"]["name"]}": '
                "no deletable volume plugin matched"
            )
            self.events.emit(volume, "Warning", "VolumeFailedDelete", message)
            await self._volume_phase(volume, "Failed", message)
            return
        message = "No recycler plugin found for the volume!"
        self.events.emit(volume, "Warning", "VolumeFailedRecycle", message)
        await self._volume_phase(volume, "Failed", message)

    async def _unbind(self, volume: Obj) -> None:
        volume["spec"].pop("claimRef", None)
        (volume["metadata"].get("annotations") or {}).pop(BOUND_BY_CONTROLLER, None)
        volume = await self._write(PERSISTENT_VOLUMES, volume)
        await self._volume_phase(volume, "Available")

    # -- binding ---------------------------------------------------------------------------------------------

    async def _bind(self, volume: Obj, claim: Obj) -> None:
        """bind(): the volume's claimRef, its phase Bound, then the claim's volumeName, annotations and status,
        each written only when it differs."""
        meta = claim["metadata"]
        ref = volume["spec"].get("claimRef")
        if not ref or ref.get("uid") != meta["uid"]:
            volume["spec"]["claimRef"] = {
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": "v1",
                "resourceVersion": meta["resourceVersion"],
            }
            if not ref:
                volume["metadata"].setdefault("annotations", {})[BOUND_BY_CONTROLLER] = "yes"
            volume = await self._write(PERSISTENT_VOLUMES, volume)
        volume = await self._volume_phase(volume, "Bound")
        annotations = meta.setdefault("annotations", {})
        if claim["spec"].get("volumeName") != volume["metadata"]["name"] or not annotations.get(BIND_COMPLETED):
            if not claim["spec"].get("volumeName"):
                annotations[BOUND_BY_CONTROLLER] = "yes"
            claim["spec"]["volumeName"] = volume["metadata"]["name"]
            annotations[BIND_COMPLETED] = "yes"
            claim = await self._write(PERSISTENT_VOLUME_CLAIMS, claim)
        status = claim.setdefault("status", {})
        wanted = {
            "phase": "Bound",
            "accessModes": volume["spec"].get("accessModes"),
            "capacity": volume["spec"].get("capacity"),
        }
        if any(status.get(k) != v for k, v in wanted.items()):
            status.update(wanted)
            await self._write(PERSISTENT_VOLUME_CLAIMS, claim, "status")

    # -- writes ----------------------------------------------------------------------------------------------

    async def _claim_phase(self, claim: Obj, phase: str) -> Obj:
        if (claim.get("status") or {}).get("phase") == phase:
            return claim
        claim.setdefault("status", {})["phase"] = phase
        return await self._write(PERSISTENT_VOLUME_CLAIMS, claim, "status")

    async def _volume_phase(self, volume: Obj, phase: str, message: str | None = None) -> Obj:
        status = volume.setdefault("status", {})
        if status.get("phase") == phase and status.get("message") == message:
            return volume
        status["phase"] = phase
        status.pop("reason", None)
        if message is None:
            status.pop("message", None)
        else:
            status["message"] = message
        return await self._write(PERSISTENT_VOLUMES, volume, "status")

    async def _write(self, resource: Any, obj: Obj, subresource: str | None = None) -> Obj:
        """PUT the object (409 when the cache was behind: the retry sees the newer one); the cache learns the
        result at once, so the next step of this sync starts from it."""
        namespace = obj["metadata"].get("namespace")
        try:
            written = await self.client.replace(resource, obj, namespace, subresource)
        except ApiException as exc:
            if exc.status == 404:
                return obj  # gone meanwhile: its delete event brings the next sync
            raise
        informer = self.claims if resource == PERSISTENT_VOLUME_CLAIMS else self.volumes
        informer.observe(written)
        return written


def _reachable_from(volume: Obj, node: Obj) -> bool:
    """CheckNodeAffinity: the volume's required node affinity (its terms ORed) admits the node."""
    required = ((volume["spec"].get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
    if not required:
        return True
    labels, name = node["metadata"].get("labels") or {}, node["metadata"]["name"]
    return any(node_selector_term(term)(labels, name) for term in required)


async def _ignore(event: str, obj: Obj, old: Obj | None) -> None:
    """Nodes are only read: a node's change never needs a sync."""
