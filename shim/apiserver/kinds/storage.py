"""v1 PersistentVolume, v1 PersistentVolumeClaim and storage.k8s.io/v1 StorageClass: defaults, validation with
kube's messages, the protection finalizers and DefaultStorageClass admission, and the Table printers.

Follows `pkg/apis/core/v1/defaults.go` (SetDefaults_PersistentVolume/Claim), `pkg/apis/storage/v1/defaults.go`,
`pkg/registry/core/persistentvolume{,claim}/strategy.go` and `pkg/registry/storage/storageclass/strategy.go`
(status reset on create, phase Pending, lastPhaseTransitionTime), `pkg/apis/core/validation/validation.go`
(ValidatePersistentVolume/Claim and their updates), `pkg/apis/storage/validation/validation.go`, the
StorageObjectInUseProtection and DefaultStorageClass admission plugins, and `printPersistentVolume`,
`printPersistentVolumeClaim`, `printStorageClass` in `pkg/printers/internalversion/printers.go`. None of the
three registers field label conversions: field selectors take metadata.name and metadata.namespace only.
"""

from __future__ import annotations

import copy
import posixpath
from typing import Any

from shim.apiserver.kinds.causes import (
    Cause,
    GoValue,
    forbidden,
    invalid,
    required,
    too_long,
    undecodable,
    unsupported,
)
from shim.apiserver.kinds.meta import FIELD_IMMUTABLE, is_dns1123_subdomain, is_qualified_name, validate_label_selector
from shim.apiserver.printers import AGE_COLUMN, EMPTY, NAME_COLUMN, Cells, Column, age, column, object_meta
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import STATUS, StoredObjects, Strategy
from shim.machinery.quantity import QuantityError, canonical, parse_quantity
from shim.machinery.storage import (
    BETA_STORAGE_CLASS,
    PV_PROTECTION,
    PVC_PROTECTION,
    access_modes_text,
    claim_class,
    default_class,
    is_default_class,
    volume_class,
)
from shim.machinery.timefmt import now_rfc3339

Obj = dict[str, Any]

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")  # sets.List order
PV_RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
CLASS_RECLAIM_POLICIES = ("Delete", "Retain")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
VOLUME_MODES = ("Block", "Filesystem")
HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket")
_MAX_PARAMETERS = 512
_MAX_PARAMETERS_SIZE = 256 * 1024
# PersistentVolumeSpec's volume sources (its inline PersistentVolumeSource): exactly one may be set
_PV_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
)
_PV_IMMUTABLE_MESSAGE = "spec.persistentvolumesource is immutable after creation"
_PVC_IMMUTABLE_MESSAGE = (
    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
)

# -- Table printers -------------------------------------------------------------------------------------------

_VOLUME_MODE_PV = (
    "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw "
    "block state. Value of Filesystem is implied when not included in spec."
)
PV_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Capacity",
        "capacity is the description of the persistent volume's resources and capacity. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity",
    ),
    column(
        "Access Modes",
        "accessModes contains all ways the volume can be mounted. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes",
    ),
    column(
        "Reclaim Policy",
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its "
        "claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for "
        "dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the "
        "volume plugin underlying this PersistentVolume. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming",
    ),
    column(
        "Status",
        "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase",
    ),
    column(
        "Claim",
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. "
        "Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More "
        "info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding",
    ),
    column("StorageClass", "StorageClass of the pv"),
    column("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
    column(
        "Reason",
        "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and "
        "tidy display in the CLI.",
    ),
    AGE_COLUMN,
    column("VolumeMode", _VOLUME_MODE_PV, 1),
]

PVC_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Status", "phase represents the current phase of PersistentVolumeClaim."),
    column("Volume", "volumeName is the binding reference to the PersistentVolume backing this claim."),
    column("Capacity", "capacity represents the actual resources of the underlying volume."),
    column(
        "Access Modes",
        "accessModes contains the actual access modes the volume backing the PVC has. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
    ),
    column("StorageClass", "StorageClass of the pvc"),
    column("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
    AGE_COLUMN,
    column(
        "VolumeMode",
        "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when "
        "not included in claim spec.",
        1,
    ),
]

STORAGE_CLASS_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Provisioner", "provisioner indicates the type of the provisioner."),
    column(
        "ReclaimPolicy",
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage "
        "class. Defaults to Delete.",
    ),
    column(
        "VolumeBindingMode",
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, "
        "VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling "
        "feature.",
    ),
    column("AllowVolumeExpansion", "allowVolumeExpansion shows whether the storage class allow volume expand."),
    AGE_COLUMN,
]


def pv_cells(pv: Printed, now_us: int) -> Cells:
    """printPersistentVolume: capacity, modes, policy, phase (Terminating once deleted), `ns/claim`, class."""
    spec = pv.get("spec") or EMPTY
    status = pv.get("status") or EMPTY
    ref = spec.get("claimRef")
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    phase = "Terminating" if object_meta(pv).get("deletionTimestamp") else status.get("phase", "")
    return [
        object_meta(pv).get("name", ""),
        _quantity_text((spec.get("capacity") or EMPTY).get("storage")),
        access_modes_text(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        phase,
        claim,
        volume_class(pv),
        spec.get("volumeAttributesClassName") or "<unset>",
        status.get("reason", ""),
        age(pv, now_us),
        spec.get("volumeMode") or "<unset>",
    ]


def pvc_cells(pvc: Printed, now_us: int) -> Cells:
    """printPersistentVolumeClaim: capacity and modes are the bound volume's (empty until bound)."""
    spec = pvc.get("spec") or EMPTY
    status = pvc.get("status") or EMPTY
    phase = "Terminating" if object_meta(pvc).get("deletionTimestamp") else status.get("phase", "")
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = access_modes_text(status.get("accessModes"))
        capacity = _quantity_text((status.get("capacity") or EMPTY).get("storage"))
    return [
        object_meta(pvc).get("name", ""),
        phase,
        spec.get("volumeName", ""),
        capacity,
        modes,
        claim_class(pvc),
        spec.get("volumeAttributesClassName") or "<unset>",
        age(pvc, now_us),
        spec.get("volumeMode") or "<unset>",
    ]


def storage_class_cells(sc: Printed, now_us: int) -> Cells:
    """printStorageClass: `(default)` after the default class's name; unset fields print kube's defaults."""
    name = object_meta(sc).get("name", "")
    if is_default_class(sc):
        name += " (default)"
    return [
        name,
        sc.get("provisioner", ""),
        sc.get("reclaimPolicy") or "Delete",
        sc.get("volumeBindingMode") or "Immediate",
        bool(sc.get("allowVolumeExpansion")),
        age(sc, now_us),
    ]


def _quantity_text(raw: Any) -> str:
    """Quantity.String() of a stored quantity; a missing one prints as Go's zero Quantity, `0`."""
    if raw is None:
        return "0"
    try:
        return canonical(parse_quantity(raw))
    except QuantityError:
        return str(raw)


# -- PersistentVolume -----------------------------------------------------------------------------------------


class PersistentVolumeStrategy(Strategy):
    """Cluster-scoped pieces of storage; status (phase) is the binder's, through the status subresource."""

    short_names = ("pv",)
    subresources = (STATUS,)
    table_columns = PV_COLUMNS
    printer = staticmethod(pv_cells)
    returns_deleted_object = True

    def default(self, obj: Obj) -> None:
        """SetDefaults_PersistentVolume: Retain, Filesystem; quantities in canonical form."""
        spec = obj.setdefault("spec", {})
        if not spec.get("persistentVolumeReclaimPolicy"):
            spec["persistentVolumeReclaimPolicy"] = "Retain"
        if spec.get("volumeMode") is None:
            spec["volumeMode"] = "Filesystem"
        _canonical_quantities(spec.get("capacity"), "PersistentVolume")
        if isinstance(spec.get("hostPath"), dict):
            spec["hostPath"].setdefault("type", "")

    def prepare_for_create(self, obj: Obj) -> None:
        """Status starts Pending with its transition time; the pv-protection finalizer is added (admission)."""
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()}
        _add_finalizer(obj, PV_PROTECTION)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """A phase change records when it happened (unless the writer said)."""
        super().prepare_for_status_update(new, old)
        status = new.get("status") or {}
        old_status = old.get("status") or {}
        if status.get("phase") != old_status.get("phase") and status.get("lastPhaseTransitionTime") in (
            None,
            old_status.get("lastPhaseTransitionTime"),
        ):
            new.setdefault("status", {})["lastPhaseTransitionTime"] = now_rfc3339()

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_pv_spec(obj.get("spec") or {})

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """The volume source, volume mode and a set node affinity are fixed once created."""
        causes = self.validate(new)
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        if {k: spec.get(k) for k in _PV_SOURCES} != {k: old_spec.get(k) for k in _PV_SOURCES}:
            causes.append(forbidden("spec.persistentvolumesource", _PV_IMMUTABLE_MESSAGE))
        if spec.get("volumeMode") != old_spec.get("volumeMode"):
            causes.append(invalid("volumeMode", spec.get("volumeMode"), FIELD_IMMUTABLE))
        if old_spec.get("nodeAffinity") is not None and spec.get("nodeAffinity") != old_spec.get("nodeAffinity"):
            causes.append(invalid("nodeAffinity", _GO_NODE_AFFINITY, FIELD_IMMUTABLE))
        return causes


def _validate_pv_spec(spec: Obj) -> list[Cause]:
    """ValidatePersistentVolumeSpec for the sources kube-shim mounts (hostPath, local) and the common fields."""
    causes = _validate_access_modes(spec.get("accessModes"), "spec.accessModes", "")
    capacity = spec.get("capacity") or {}
    if not capacity:
        causes.append(required("spec.capacity"))
    if "storage" not in capacity or len(capacity) > 1:
        causes.append(unsupported("spec.capacity", _go_resource_map(capacity), ("storage",)))
    for name, raw in capacity.items():
        causes.extend(_positive_quantity(raw, f"spec.capacity[{name}]"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in PV_RECLAIM_POLICIES:
        causes.append(unsupported("spec.persistentVolumeReclaimPolicy", policy, PV_RECLAIM_POLICIES))
    affinity_set = False
    if spec.get("nodeAffinity") is not None:
        affinity_set, affinity_causes = _validate_volume_node_affinity(spec["nodeAffinity"], "spec.nodeAffinity")
        causes.extend(affinity_causes)
    sources = [key for key in _PV_SOURCES if spec.get(key) is not None]
    if not sources:
        causes.append(required("spec", "must specify a volume type"))
    causes.extend(forbidden(f"spec.{key}", "may not specify more than 1 volume type") for key in sources[1:])
    if sources and sources[0] == "hostPath":
        causes.extend(_validate_host_path(spec["hostPath"], "spec.hostPath"))
    if sources and sources[0] == "local":
        causes.extend(_validate_local(spec["local"], "spec.local"))
        if not affinity_set:
            causes.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    host_path = (spec.get("hostPath") or {}).get("path")
    if host_path and posixpath.normpath(host_path) == "/" and policy == "Recycle":
        causes.append(
            forbidden("spec.persistentVolumeReclaimPolicy", "may not be 'recycle' for a hostPath mount of '/'")
        )
    if spec.get("storageClassName"):
        causes.extend(_class_name(spec["storageClassName"], "spec.storageClassName"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        causes.append(unsupported("spec.volumeMode", mode, VOLUME_MODES))
    return causes


def _validate_host_path(source: Obj, path: str) -> list[Cause]:
    """validateHostPathVolumeSource: a path without `..`, a known type."""
    causes: list[Cause] = []
    target = source.get("path", "")
    if not target:
        causes.append(required(path + ".path"))
    elif ".." in target.split("/"):
        causes.append(invalid(path + ".path", target, "must not contain '..'"))
    kind = source.get("type") or ""
    if kind not in HOST_PATH_TYPES:
        causes.append(unsupported(path + ".type", kind, HOST_PATH_TYPES[1:]))
    return causes


def _validate_local(source: Obj, path: str) -> list[Cause]:
    """validateLocalVolumeSource: a path without `..`."""
    target = source.get("path", "")
    if not target:
        return [required(path + ".path")]
    if ".." in target.split("/"):
        return [invalid(path + ".path", target, "must not contain '..'")]
    return []


def _validate_volume_node_affinity(affinity: Obj, path: str) -> tuple[bool, list[Cause]]:
    """validateVolumeNodeAffinity: required node constraints with at least one term."""
    required_terms = affinity.get("required")
    if required_terms is None:
        return False, [required(path + ".required", "must specify required node constraints")]
    if not required_terms.get("nodeSelectorTerms"):
        return True, [required(path + ".required.nodeSelectorTerms", "must have at least one node selector term")]
    return True, []


# -- PersistentVolumeClaim ------------------------------------------------------------------------------------


class PersistentVolumeClaimStrategy(Strategy):
    """A namespace's request for storage; bound by the binder (spec.volumeName once, status Bound)."""

    short_names = ("pvc",)
    subresources = (STATUS,)
    table_columns = PVC_COLUMNS
    printer = staticmethod(pvc_cells)
    returns_deleted_object = True

    def default(self, obj: Obj) -> None:
        """SetDefaults_PersistentVolumeClaim: Filesystem; quantities in canonical form."""
        spec = obj.setdefault("spec", {})
        if spec.get("volumeMode") is None:
            spec["volumeMode"] = "Filesystem"
        resources = spec.get("resources")
        if isinstance(resources, dict):
            for key in ("requests", "limits"):
                _canonical_quantities(resources.get(key), "PersistentVolumeClaim")

    async def admit_create(self, obj: Obj, stored: StoredObjects) -> None:
        """DefaultStorageClass admission: a claim that names no class (nil, not "") gets the default one."""
        spec = obj["spec"]
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if spec.get("storageClassName") is not None or BETA_STORAGE_CLASS in annotations:
            return
        chosen = default_class(await stored.list_all("storage.k8s.io", "v1", "storageclasses"))
        if chosen is not None:
            spec["storageClassName"] = chosen["metadata"]["name"]

    def prepare_for_create(self, obj: Obj) -> None:
        """Status starts Pending; the pvc-protection finalizer is added (StorageObjectInUseProtection)."""
        obj["status"] = {"phase": "Pending"}
        _add_finalizer(obj, PVC_PROTECTION)

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_pvc_spec(obj.get("spec") or {})

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidatePersistentVolumeClaimUpdate: volumeName may be set once; a bound claim may grow."""
        causes = self.validate(new)
        spec, old_spec = copy.deepcopy(new.get("spec") or {}), copy.deepcopy(old.get("spec") or {})
        if not old_spec.get("volumeName"):
            old_spec["volumeName"] = spec.get("volumeName")
            if spec.get("volumeName") is None:
                old_spec.pop("volumeName", None)
        if old_spec.get("storageClassName") is None:  # a class may be set once on a claim that had none
            old_spec["storageClassName"] = spec.get("storageClassName")
            if spec.get("storageClassName") is None:
                old_spec.pop("storageClassName", None)
        new_size = _request(spec)
        if (new.get("status") or {}).get("phase") == "Bound":
            requests = (spec.get("resources") or {}).get("requests")
            if requests is not None:
                requests["storage"] = ((old_spec.get("resources") or {}).get("requests") or {}).get("storage")
        spec.pop("volumeAttributesClassName", None)
        old_spec.pop("volumeAttributesClassName", None)
        if spec != old_spec:
            causes.append(forbidden("spec", _PVC_IMMUTABLE_MESSAGE))
        old_size = _request(old.get("spec") or {})
        if new_size is not None and old_size is not None and new_size < old_size:
            causes.append(forbidden("spec.resources.requests.storage", "field can not be less than previous value"))
        return causes


def _validate_pvc_spec(spec: Obj) -> list[Cause]:
    """ValidatePersistentVolumeClaimSpec."""
    causes: list[Cause] = []
    if not spec.get("accessModes"):
        causes.append(required("spec.accessModes", "at least 1 access mode is required"))
    causes.extend(validate_label_selector(spec.get("selector"), "spec.selector"))
    causes.extend(_validate_access_modes(spec.get("accessModes") or [], "spec.accessModes", "skip-empty"))
    requests = (spec.get("resources") or {}).get("requests") or {}
    if "storage" not in requests:
        causes.append(required("spec.resources[storage]"))
    else:
        causes.extend(_positive_quantity(requests["storage"], "spec.resources[storage]"))
    if spec.get("storageClassName"):
        causes.extend(_class_name(spec["storageClassName"], "spec.storageClassName"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        causes.append(unsupported("spec.volumeMode", mode, VOLUME_MODES))
    for key in ("dataSource", "dataSourceRef"):
        source = spec.get(key)
        if source is None:
            continue
        if not source.get("name"):
            causes.append(required(f"spec.{key}.name"))
        if not source.get("kind"):
            causes.append(required(f"spec.{key}.kind"))
        if not source.get("apiGroup") and source.get("kind") != "PersistentVolumeClaim":
            causes.append(
                invalid(
                    f"spec.{key}",
                    source.get("kind", ""),
                    "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
                )
            )
    return causes


def _request(spec: Obj) -> Any:
    raw = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    try:
        return None if raw is None else parse_quantity(raw).value
    except QuantityError:
        return None


# -- StorageClass ---------------------------------------------------------------------------------------------


class StorageClassStrategy(Strategy):
    """storage.k8s.io/v1 StorageClasses: cluster-scoped; provisioner, parameters, reclaim policy and binding
    mode fixed once created."""

    short_names = ("sc",)
    table_columns = STORAGE_CLASS_COLUMNS
    printer = staticmethod(storage_class_cells)
    returns_deleted_object = True

    def default(self, obj: Obj) -> None:
        """SetDefaults_StorageClass: Delete and Immediate."""
        if not obj.get("reclaimPolicy"):
            obj["reclaimPolicy"] = "Delete"
        if not obj.get("volumeBindingMode"):
            obj["volumeBindingMode"] = "Immediate"

    def validate(self, obj: Obj) -> list[Cause]:
        """ValidateStorageClass: provisioner, parameters, reclaim policy, binding mode."""
        causes: list[Cause] = []
        provisioner = obj.get("provisioner") or ""
        if not provisioner:
            causes.append(required("provisioner"))
        else:
            causes.extend(invalid("provisioner", provisioner, m) for m in is_qualified_name(provisioner.lower()))
        parameters = obj.get("parameters") or {}
        if len(parameters) > _MAX_PARAMETERS:
            causes.append(too_long("parameters", _MAX_PARAMETERS))
        else:
            causes.extend(invalid("parameters", k, "field can not be empty.") for k in parameters if not k)
            if sum(len(k) + len(str(v)) for k, v in parameters.items()) > _MAX_PARAMETERS_SIZE:
                causes.append(too_long("parameters", _MAX_PARAMETERS_SIZE))
        policy = obj.get("reclaimPolicy")
        if policy and policy not in CLASS_RECLAIM_POLICIES:
            causes.append(unsupported("reclaimPolicy", policy, CLASS_RECLAIM_POLICIES))
        mode = obj.get("volumeBindingMode")
        if not mode:
            causes.append(required("volumeBindingMode"))
        elif mode not in BINDING_MODES:
            causes.append(unsupported("volumeBindingMode", mode, BINDING_MODES))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateStorageClassUpdate."""
        causes = self.validate(new)
        if (new.get("parameters") or {}) != (old.get("parameters") or {}):
            causes.append(forbidden("parameters", "updates to parameters are forbidden."))
        if new.get("provisioner") != old.get("provisioner"):
            causes.append(forbidden("provisioner", "updates to provisioner are forbidden."))
        if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
            causes.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
        if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
            causes.append(invalid("volumeBindingMode", new.get("volumeBindingMode"), FIELD_IMMUTABLE))
        return causes


# -- shared helpers -------------------------------------------------------------------------------------------

# kube prints the new NodeAffinity as Go source (%#v); its gist is enough here
_GO_NODE_AFFINITY = GoValue("core.VolumeNodeAffinity{...}")


def _validate_access_modes(modes: Any, path: str, empty: str) -> list[Cause]:
    """Each mode known, and ReadWriteOncePod alone; `empty` == "" reports a missing list as Required."""
    causes: list[Cause] = []
    if not modes and not empty:
        causes.append(required(path))
    known = [mode for mode in modes or () if mode in ACCESS_MODES]
    causes.extend(unsupported(path, mode, ACCESS_MODES) for mode in modes or () if mode not in ACCESS_MODES)
    if "ReadWriteOncePod" in known and any(mode != "ReadWriteOncePod" for mode in known):
        causes.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return causes


def _positive_quantity(raw: Any, path: str) -> list[Cause]:
    """ValidatePositiveQuantityValue (and a quantity that parses)."""
    try:
        quantity = parse_quantity(raw)
    except QuantityError as exc:
        return [invalid(path, str(raw), str(exc))]
    if quantity.value <= 0:
        return [invalid(path, str(quantity), "must be greater than zero")]
    return []


def _class_name(name: str, path: str) -> list[Cause]:
    """ValidateClassName: a DNS subdomain."""
    return [invalid(path, name, message) for message in is_dns1123_subdomain(name)]


def _go_resource_map(resources: Obj) -> GoValue:
    """`%v` of a core.ResourceList: `map[cpu:1 storage:1Gi]`."""
    items = " ".join(f"{k}:{resources[k]}" for k in sorted(resources))
    return GoValue(f"map[{items}]")


def _canonical_quantities(resources: Any, kind: str) -> None:
    """Quantities are stored in canonical form; one that does not parse fails decoding (400), as in kube."""
    if not isinstance(resources, dict):
        return
    for name, raw in resources.items():
        try:
            resources[name] = canonical(parse_quantity(raw))
        except QuantityError as exc:
            raise undecodable(kind, "v1", exc) from None


def _add_finalizer(obj: Obj, finalizer: str) -> None:
    meta = obj.setdefault("metadata", {})
    finalizers = meta.get("finalizers") or []
    if finalizer not in finalizers:
        meta["finalizers"] = [*finalizers, finalizer]
