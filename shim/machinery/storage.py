"""Persistent storage facts every component reads the same way: the annotations and finalizers kube's volume
controllers write, a pod's claims, a volume's or claim's class, and how a volume matches a claim.

The API server (printers, DefaultStorageClass admission), the binder, the scheduler, the provisioner and the
node agent all import this; none of them imports another for it (kube keeps these in
`pkg/api/v1/persistentvolume`, `component-helpers/storage/volume` and `pkg/controller/volume/persistentvolume/util`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any, TypeVar

from shim.machinery.quantity import QuantityError, parse_quantity
from shim.machinery.selectors import SelectorError, label_selector_from_object

Obj = Mapping[str, Any]
V = TypeVar("V", bound=Mapping[str, Any])  # a volume, as the caller holds it

BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
NO_PROVISIONER = "kubernetes.io/no-provisioner"  # a class of pre-made local volumes: nothing provisions
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
HOSTNAME_LABEL = "kubernetes.io/hostname"

# helper.GetAccessModesAsString: each mode once, in this order
_MODE_ABBREVIATIONS = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def claim_names(pod: Obj) -> list[str]:
    """The PersistentVolumeClaims a pod's volumes name, in volume order."""
    spec = pod.get("spec") or {}
    names = []
    for volume in spec.get("volumes") or ():
        claim = volume.get("persistentVolumeClaim")
        if claim and claim.get("claimName"):
            names.append(claim["claimName"])
    return names


def access_modes_text(modes: Iterable[str] | None) -> str:
    """`RWO,ROX`: the access modes kubectl's columns show."""
    present = set(modes or ())
    return ",".join(short for mode, short in _MODE_ABBREVIATIONS if mode in present)


def volume_class(pv: Obj) -> str:
    """GetPersistentVolumeClass: the beta annotation wins over spec.storageClassName."""
    annotations = (pv.get("metadata") or {}).get("annotations") or {}
    if BETA_STORAGE_CLASS in annotations:
        return str(annotations[BETA_STORAGE_CLASS])
    return str((pv.get("spec") or {}).get("storageClassName") or "")


def claim_class(pvc: Obj) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation wins over spec.storageClassName."""
    return volume_class(pvc)


def is_default_class(storage_class: Obj) -> bool:
    """IsDefaultAnnotation: the class says it is the default (GA or beta annotation)."""
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DEFAULT_CLASS) == "true" or annotations.get(BETA_DEFAULT_CLASS) == "true"


def default_class(classes: Iterable[Obj]) -> Obj | None:
    """GetDefaultClass: of the classes marked default, the newest (by creation time, then name)."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    return max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"]))


def storage_size(resources: Obj | None) -> Fraction | None:
    """The `storage` quantity of a capacity or requests map; None when absent or malformed."""
    raw = (resources or {}).get("storage")
    if raw is None:
        return None
    try:
        return parse_quantity(raw).value
    except QuantityError:
        return None


def claim_request(pvc: Obj) -> Fraction:
    """What a claim asks for (spec.resources.requests.storage; 0 when unreadable)."""
    return storage_size(((pvc.get("spec") or {}).get("resources") or {}).get("requests")) or Fraction(0)


def volume_capacity(pv: Obj) -> Fraction:
    """What a volume holds (spec.capacity.storage; 0 when unreadable)."""
    return storage_size((pv.get("spec") or {}).get("capacity")) or Fraction(0)


def is_bound_to(pv: Obj, pvc: Obj) -> bool:
    """The volume's claimRef names this claim (and, when it carries a uid, this very claim)."""
    ref = (pv.get("spec") or {}).get("claimRef")
    meta = pvc.get("metadata") or {}
    if not ref or ref.get("name") != meta.get("name") or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def volume_matches_claim(pv: Obj, pvc: Obj) -> bool:
    """checkVolumeSatisfyClaim plus the selector: class, volume mode, access modes, size, labels; the volume is
    free or pre-bound to this claim, and not being deleted."""
    spec, claim_spec = pv.get("spec") or {}, pvc.get("spec") or {}
    if (pv.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if spec.get("claimRef") and not is_bound_to(pv, pvc):
        return False
    if volume_class(pv) != claim_class(pvc):
        return False
    if (spec.get("volumeMode") or "Filesystem") != (claim_spec.get("volumeMode") or "Filesystem"):
        return False
    if not set(claim_spec.get("accessModes") or ()) <= set(spec.get("accessModes") or ()):
        return False
    if volume_capacity(pv) < claim_request(pvc):
        return False
    selector = claim_spec.get("selector")
    if selector is None:
        return True
    try:
        return label_selector_from_object(selector).matches((pv.get("metadata") or {}).get("labels") or {})
    except SelectorError:
        return False


def best_volume(volumes: Iterable[V], pvc: Obj, fits_node: Callable[[V], bool] | None = None) -> V | None:
    """findBestMatchForClaim: a volume pre-bound to the claim, else the smallest that matches; `fits_node`
    (a predicate over volumes) narrows the choice to one node's (WaitForFirstConsumer)."""
    best: V | None = None
    for pv in volumes:
        if not volume_matches_claim(pv, pvc) or (fits_node is not None and not fits_node(pv)):
            continue
        if (pv.get("spec") or {}).get("claimRef"):
            return pv  # pre-bound to this claim
        if best is None or volume_capacity(pv) < volume_capacity(best):
            best = pv
    return best
