"""The local-path provisioner of one node, with k3s' local-path-provisioner semantics.

The default StorageClass `local-path` (provisioner `rancher.io/local-path`, WaitForFirstConsumer, reclaim
Delete) is created at start when missing. A claim of a class this provisioner serves, handed to it by the
binder (`volume.kubernetes.io/storage-provisioner`) and placed on this node by the scheduler
(`volume.kubernetes.io/selected-node`), gets a directory under the node's data dir
(`storage/pvc-<uid>_<namespace>_<name>`) and a PersistentVolume for it: a hostPath of that directory, node
affinity to this node, pre-bound to the claim (the binder completes the bind). A volume it made that is
Released under the Delete policy loses its directory, then its PersistentVolume (which external-provisioner's
finalizer holds until then, however it was deleted).

It runs with the node agent (it makes directories on the node's disk), one per node; only the node the claim
was placed on acts on it. Queue keys: `class`, `claim:namespace/name`, `volume:name`.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from shim.client import ApiClient, ApiException, SharedInformerFactory, object_key
from shim.controllers.reconciler import Reconciler
from shim.controllers.volumeprotection import remove_finalizer
from shim.kubelet.claims import local_path_root
from shim.machinery.resources import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, STORAGE_CLASSES
from shim.machinery.storage import (
    DEFAULT_CLASS,
    HOSTNAME_LABEL,
    PROVISIONED_BY,
    SELECTED_NODE,
    STORAGE_PROVISIONER,
    WAIT_FOR_FIRST_CONSUMER,
    claim_class,
)

Obj = dict[str, Any]

PROVISIONER = "rancher.io/local-path"
CLASS_NAME = "local-path"
NODE_ANNOTATION = "local.path.provisioner/selected-node"  # on the volumes it made: whose disk they are on
# external-provisioner's finalizer: a volume it made stays until its directory is gone, whoever deletes it
FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
VOLUME_DIR_MODE = 0o777  # any container user may write its volume (k3s makes them 0777 too)
CLASS = "class"
CLAIM = "claim:"
VOLUME = "volume:"


def default_storage_class() -> Obj:
    """The `local-path` StorageClass, marked the cluster's default."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER,
    }


class LocalPathProvisioner(Reconciler):
    """Provisions and deletes host-directory volumes on node `node_name` (its data dir `data_dir`)."""

    workers = 2

    def __init__(
        self, client: ApiClient, node_name: str, data_dir: Path, informers: SharedInformerFactory | None = None
    ) -> None:
        super().__init__(client, "local-path-provisioner", informers)
        self.node_name = node_name
        self.root = local_path_root(data_dir)
        self.claims = self.watch(PERSISTENT_VOLUME_CLAIMS, self._on_claim)
        self.volumes = self.watch(PERSISTENT_VOLUMES, self._on_volume)
        self.classes = self.watch(STORAGE_CLASSES, self._on_class)

    def start(self) -> None:
        super().start()
        self.queue.add(CLASS)

    async def sync(self, key: str) -> None:
        """Ensure the default class, provision one claim, or delete one released volume."""
        if key == CLASS:
            await self._ensure_class()
        elif key.startswith(CLAIM):
            claim = self.claims.get(key.removeprefix(CLAIM))
            if claim is not None and self._ours_to_provision(claim):
                await self._provision(claim)
        else:
            volume = self.volumes.get(key.removeprefix(VOLUME))
            if volume is not None and self._ours_to_delete(volume):
                await self._delete(volume)

    # -- events ----------------------------------------------------------------------------------------------

    async def _on_claim(self, event: str, claim: Obj, old: Obj | None) -> None:
        if event != "DELETED":
            self.queue.add(CLAIM + object_key(claim))

    async def _on_volume(self, event: str, volume: Obj, old: Obj | None) -> None:
        if event != "DELETED":
            self.queue.add(VOLUME + volume["metadata"]["name"])

    async def _on_class(self, event: str, storage_class: Obj, old: Obj | None) -> None:
        if event == "DELETED" and storage_class["metadata"]["name"] == CLASS_NAME:
            return  # an administrator's choice: it comes back when the node agent restarts, as in k3s
        for claim in self.claims.list():  # claims that waited for their class
            self.queue.add(CLAIM + object_key(claim))

    # -- the default class -----------------------------------------------------------------------------------

    async def _ensure_class(self) -> None:
        try:
            await self.client.get(STORAGE_CLASSES, CLASS_NAME)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                await self.client.create(STORAGE_CLASSES, default_storage_class())
            except ApiException as create_exc:
                if create_exc.status != 409:  # another node made it first
                    raise

    # -- provisioning ----------------------------------------------------------------------------------------

    def _ours_to_provision(self, claim: Obj) -> bool:
        """A claim waiting for this provisioner on this node, whose class is ours."""
        meta, spec = claim["metadata"], claim["spec"]
        annotations = meta.get("annotations") or {}
        if meta.get("deletionTimestamp") or spec.get("volumeName"):
            return False
        if annotations.get(STORAGE_PROVISIONER) != PROVISIONER or annotations.get(SELECTED_NODE) != self.node_name:
            return False
        storage_class = self.classes.get(claim_class(claim))
        return storage_class is not None and storage_class.get("provisioner") == PROVISIONER

    async def _provision(self, claim: Obj) -> None:
        meta = claim["metadata"]
        name = f"pvc-{meta['uid']}"
        if self.volumes.get(name) is not None:
            return  # made already; the binder binds it
        claim_key = f"{meta['namespace']}/{meta['name']}"
        self.events.emit(
            claim, "Normal", "Provisioning", f'External provisioner is provisioning volume for claim "{claim_key}"'
        )
        directory = self.root / f"{name}_{meta['namespace']}_{meta['name']}"
        await asyncio.to_thread(_make_directory, directory)
        storage_class = self.classes.get(claim_class(claim)) or {}
        volume = self._volume_for(claim, name, directory, storage_class)
        try:
            created = await self.client.create(PERSISTENT_VOLUMES, volume)
        except ApiException as exc:
            if exc.status == 409:
                return
            self.events.emit(claim, "Warning", "ProvisioningFailed", f"failed to provision volume: {exc}")
            raise
        self.volumes.observe(created)
        self.events.emit(claim, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {name}")

    def _volume_for(self, claim: Obj, name: str, directory: Path, storage_class: Obj) -> Obj:
        meta, spec = claim["metadata"], claim["spec"]
        on_this_node = {"key": HOSTNAME_LABEL, "operator": "In", "values": [self.node_name]}
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {PROVISIONED_BY: PROVISIONER, NODE_ANNOTATION: self.node_name},
                "finalizers": [FINALIZER],
            },
            "spec": {
                "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
                "storageClassName": claim_class(claim),
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [on_this_node]}]}},
                "claimRef": {
                    "kind": "PersistentVolumeClaim",
                    "apiVersion": "v1",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
            },
        }

    # -- deleting --------------------------------------------------------------------------------------------

    def _ours_to_delete(self, volume: Obj) -> bool:
        """A volume this node's provisioner made, released, under the Delete policy (deleted by a user or not)."""
        annotations = volume["metadata"].get("annotations") or {}
        return (
            annotations.get(PROVISIONED_BY) == PROVISIONER
            and annotations.get(NODE_ANNOTATION) == self.node_name
            and (volume.get("status") or {}).get("phase") == "Released"
            and volume["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
        )

    async def _delete(self, volume: Obj) -> None:
        path = Path((volume["spec"].get("hostPath") or {}).get("path", ""))
        if path.parent == self.root:  # only what it made: a directory right under its storage root
            await asyncio.to_thread(shutil.rmtree, path, True)
        else:
            self.log.warning("volume %s: not removing %s: not under %s", volume["metadata"]["name"], path, self.root)
        await remove_finalizer(self.client, PERSISTENT_VOLUMES, volume, FINALIZER)
        try:
            await self.client.delete(
                PERSISTENT_VOLUMES, volume["metadata"]["name"], preconditions={"uid": volume["metadata"]["uid"]}
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or replaced by a new volume of the same name
                raise


def _make_directory(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(VOLUME_DIR_MODE)  # mkdir's mode went through the umask
