"""apps/v1 StatefulSets: defaults, validation with kube's messages, and the Table printer.

Follows `pkg/apis/apps/v1/defaults.go` (SetDefaults_StatefulSet), `pkg/registry/apps/statefulset/strategy.go`
(status reset on create, generation bumps, the fields an update may change) and `pkg/apis/apps/validation`
(ValidateStatefulSetSpec, ValidateStatefulSetUpdate) and `printStatefulSet` in
`pkg/printers/internalversion/printers.go`.
"""

from __future__ import annotations

from typing import Any

from shim.apiserver.kinds.apps import default_pod_template, default_update_strategy
from shim.apiserver.kinds.causes import Cause, forbidden, go_string_map, invalid, required, unsupported
from shim.apiserver.kinds.meta import validate_label_selector
from shim.apiserver.kinds.pod_validation import nonnegative, validate_pod_template
from shim.apiserver.printers import (
    AGE_COLUMN,
    EMPTY,
    NAME_COLUMN,
    TEMPLATE_COLUMNS,
    Cells,
    Column,
    age,
    column,
    container_cells,
    object_name,
)
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import SCALE, STATUS, Strategy
from shim.machinery.selectors import SelectorError, label_selector_from_object

Obj = dict[str, Any]

_POLICIES = ("OrderedReady", "Parallel")
_STRATEGIES = ("OnDelete", "RollingUpdate")
_RETENTION = ("Delete", "Retain")
_STATUS_COUNTERS = (
    "replicas",
    "readyReplicas",
    "currentReplicas",
    "updatedReplicas",
    "availableReplicas",
    "observedGeneration",
    "collisionCount",
)
# the spec fields ValidateStatefulSetUpdate lets an update change
_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)
_UPDATE_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)

STATEFULSET_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Ready", "Number of the pod with ready state"),
    AGE_COLUMN,
    *TEMPLATE_COLUMNS,
]


def statefulset_cells(sts: Printed, now_us: int) -> Cells:
    """printStatefulSet: ready replicas over desired replicas, age, containers and images."""
    spec = sts.get("spec") or EMPTY
    status = sts.get("status") or EMPTY
    names, images = container_cells(spec)
    ready = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}"
    return [object_name(sts), ready, age(sts, now_us), names, images]


class StatefulSetStrategy(Strategy):
    """StatefulSets: one replica, OrderedReady, RollingUpdate with partition 0, 10 revisions, claims retained."""

    short_names = ("sts",)
    categories = ("all",)
    subresources = (STATUS, SCALE)
    table_columns = STATEFULSET_COLUMNS
    printer = staticmethod(statefulset_cells)
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        """SetDefaults_StatefulSet, the claim templates' defaults, then the pod template's."""
        spec = obj.setdefault("spec", {})
        if not spec.get("podManagementPolicy"):
            spec["podManagementPolicy"] = "OrderedReady"
        default_update_strategy(spec, "updateStrategy", {"partition": 0})
        retention = spec.get("persistentVolumeClaimRetentionPolicy")
        if retention is None:
            retention = spec["persistentVolumeClaimRetentionPolicy"] = {}
        for key in ("whenDeleted", "whenScaled"):
            if not retention.get(key):
                retention[key] = "Retain"
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        if spec.get("revisionHistoryLimit") is None:
            spec["revisionHistoryLimit"] = 10
        for claim in spec.get("volumeClaimTemplates") or ():
            if isinstance(claim, dict):
                claim_spec = claim.setdefault("spec", {})
                if isinstance(claim_spec, dict) and not claim_spec.get("volumeMode"):
                    claim_spec["volumeMode"] = "Filesystem"
                claim_status = claim.setdefault("status", {})
                if isinstance(claim_status, dict) and not claim_status.get("phase"):
                    claim_status["phase"] = "Pending"
        default_pod_template(spec, "StatefulSet")

    def prepare_for_create(self, obj: Obj) -> None:
        """Status starts empty (its replicas and availableReplicas have no omitempty)."""
        obj["status"] = {"replicas": 0, "availableReplicas": 0}

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        status = new.setdefault("status", {})
        status.setdefault("replicas", 0)
        status.setdefault("availableReplicas", 0)

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_spec(obj.get("spec") or {})

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateStatefulSetUpdate: only some spec fields may change; the status rules."""
        causes = self.validate(new)
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        # the selector is among the rest: kube has no separate immutability check for it here
        rest = {k: v for k, v in spec.items() if k not in _MUTABLE}
        old_rest = {k: v for k, v in old_spec.items() if k not in _MUTABLE}
        if rest != old_rest:
            causes.append(forbidden("spec", _UPDATE_FORBIDDEN))
        status, old_status = new.get("status") or {}, old.get("status") or {}
        for key in _STATUS_COUNTERS:
            causes.extend(nonnegative(status.get(key, 0), f"status.{key}"))
        if status.get("collisionCount", 0) < old_status.get("collisionCount", 0):
            causes.append(invalid("status.collisionCount", status.get("collisionCount", 0), "cannot be decremented"))
        return causes


def _validate_spec(spec: Obj) -> list[Cause]:
    """ValidateStatefulSetSpec."""
    causes: list[Cause] = []
    policy = spec.get("podManagementPolicy", "")
    if policy not in _POLICIES:
        causes.append(unsupported("spec.podManagementPolicy", policy, _POLICIES))
    causes.extend(_validate_update_strategy(spec.get("updateStrategy") or {}))
    retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    for key in ("whenDeleted", "whenScaled"):
        value = retention.get(key, "")
        if value not in _RETENTION:
            causes.append(unsupported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", value, _RETENTION))
    causes.extend(nonnegative(spec.get("replicas", 0), "spec.replicas"))
    causes.extend(nonnegative(spec.get("minReadySeconds", 0), "spec.minReadySeconds"))
    causes.extend(nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit"))
    ordinals = spec.get("ordinals") or {}
    causes.extend(nonnegative(ordinals.get("start", 0), "spec.ordinals.start"))
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels")
    selector = spec.get("selector")
    if selector is None:
        causes.append(required("spec.selector"))
    else:
        causes.extend(validate_label_selector(selector, "spec.selector"))
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(invalid("spec.selector", "", "empty selector is invalid for statefulset"))
        try:
            parsed = label_selector_from_object(selector)
        except SelectorError:
            parsed = None
        if parsed is not None and not parsed.matches(labels or {}):
            causes.append(
                invalid(
                    "spec.template.metadata.labels",
                    go_string_map(labels),
                    "`selector` does not match template `labels`",
                )
            )
    causes.extend(validate_pod_template(_with_claim_volumes(template, spec), "spec.template"))
    pod_spec = template.get("spec") or {}
    restart_policy = pod_spec.get("restartPolicy", "")
    if restart_policy != "Always":
        causes.append(unsupported("spec.template.spec.restartPolicy", restart_policy, ("Always",)))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        deadline = pod_spec["activeDeadlineSeconds"]
        causes.append(
            invalid(
                "spec.template.spec.activeDeadlineSeconds",
                deadline,
                "activeDeadlineSeconds in StatefulSet is not Supported",
            )
        )
    for index, claim in enumerate(spec.get("volumeClaimTemplates") or ()):
        name = ((claim or {}).get("metadata") or {}).get("name") if isinstance(claim, dict) else None
        if not name:
            causes.append(required(f"spec.volumeClaimTemplates[{index}].metadata.name"))
    return causes


def _with_claim_volumes(template: Obj, spec: Obj) -> Obj:
    """The template with a claim volume per claim template (kube leaves the pod spec unvalidated for want of
    this union; validating it catches what every pod would fail on)."""
    names = [
        (claim.get("metadata") or {}).get("name")
        for claim in spec.get("volumeClaimTemplates") or ()
        if isinstance(claim, dict)
    ]
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict) or not any(names):
        return template
    volumes = [v for v in pod_spec.get("volumes") or () if not isinstance(v, dict) or v.get("name") not in names]
    volumes.extend({"name": n, "persistentVolumeClaim": {"claimName": f"{n}-0"}} for n in names if n)
    return {**template, "spec": {**pod_spec, "volumes": volumes}}


def _validate_update_strategy(strategy: Obj) -> list[Cause]:
    """The updateStrategy part of ValidateStatefulSetSpec."""
    kind = strategy.get("type", "")
    path = "spec.updateStrategy"
    if kind == "OnDelete":
        if strategy.get("rollingUpdate") is not None:
            return [invalid(path + ".rollingUpdate", "", "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if kind != "RollingUpdate":
        return [unsupported(path + ".type", kind, _STRATEGIES)]
    rolling = strategy.get("rollingUpdate") or {}
    causes = nonnegative(rolling.get("partition", 0), path + ".rollingUpdate.partition")
    unavailable = rolling.get("maxUnavailable")
    if isinstance(unavailable, int) and unavailable < 1:
        causes.append(invalid(path + ".rollingUpdate.maxUnavailable", unavailable, "must be greater than 0"))
    return causes
