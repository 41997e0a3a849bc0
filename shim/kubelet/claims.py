"""A pod's `persistentVolumeClaim` volume on the node: the claim, the volume bound to it, and the host path
that volume stands for (kubelet's volume manager, for the volume types a single machine has).

The claim must exist, not be going away, and be bound (both halves: its volumeName and the volume's claimRef);
until then the pod waits with a FailedMount event, as kubelet's does. Only `hostPath` and `local` volumes
can be mounted here. Their paths are the host's: the node mounts only paths under its own local-path storage
directory (the volumes the local-path provisioner made for it) or under its `--allowed-host-path` list, so a
PersistentVolume can never hand a pod more of the host than a hostPath volume could have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shim.kubelet.refs import ReferencedObjects
from shim.machinery.storage import is_bound_to

Obj = dict[str, Any]

LOCAL_PATH_DIR = "storage"  # under the node's data dir, as k3s keeps /var/lib/rancher/k3s/storage


class ClaimNotReady(Exception):
    """The claim or its volume cannot be used yet; the message says why, in kubelet's words."""


def local_path_root(data_dir: Path) -> Path:
    """Where the local-path provisioner keeps this node's volumes."""
    return data_dir / LOCAL_PATH_DIR


async def bound_volume(claim_name: str, namespace: str, refs: ReferencedObjects) -> Obj:
    """The PersistentVolume bound to the claim; ClaimNotReady when the claim is missing, deleted, unbound or
    its volume is missing or bound elsewhere."""
    where = f"error processing PVC {namespace}/{claim_name}"
    claim = await refs.claim(claim_name)
    if claim is None:
        raise ClaimNotReady(
            f'{where}: failed to fetch PVC from API server: persistentvolumeclaims "{claim_name}" not found'
        )
    if claim["metadata"].get("deletionTimestamp"):
        raise ClaimNotReady(f"{where}: PVC is being deleted")
    volume_name = claim["spec"].get("volumeName")
    if not volume_name or (claim.get("status") or {}).get("phase") != "Bound":
        raise ClaimNotReady(f"{where}: PVC is not bound")
    volume = await refs.persistent_volume(volume_name)
    if volume is None:
        raise ClaimNotReady(
            f'{where}: failed to fetch PV "{volume_name}" from API server: persistentvolumes "{volume_name}" not found'
        )
    if not is_bound_to(volume, claim) or not (volume["spec"].get("claimRef") or {}).get("uid"):
        raise ClaimNotReady(f'{where}: PV "{volume_name}" is not bound to this claim')
    return volume


def host_path_source(volume: Obj) -> Obj:
    """The volume as a hostPath source (a `local` volume is a directory that must exist); ClaimNotReady for
    any other volume type."""
    spec = volume["spec"]
    if spec.get("hostPath"):
        return spec["hostPath"]
    if spec.get("local"):
        return {"path": spec["local"].get("path", ""), "type": "Directory"}
    name = volume["metadata"]["name"]
    raise ClaimNotReady(f'PV "{name}": its volume type is not supported by this node (hostPath and local are)')
