"""apps/v1 Deployments and ReplicaSets, and their `scale` subresource (autoscaling/v1 Scale).

Follows `pkg/apis/apps/v1/defaults.go`, `pkg/registry/apps/{deployment,replicaset}/strategy.go` and
`pkg/apis/apps/validation`. Pod templates are defaulted and validated like pods, minus what only a Pod
gets (admission, SetDefaults_Pod).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shim.apiserver.kinds.causes import (
    Cause,
    GoValue,
    forbidden,
    go_int_or_string,
    go_label_selector,
    go_string_map,
    invalid,
    required,
    undecodable,
    unsupported,
)
from shim.apiserver.kinds.meta import FIELD_IMMUTABLE, regex_error, validate_label_selector
from shim.apiserver.kinds.pod_defaults import default_pod_spec
from shim.apiserver.kinds.pod_validation import nonnegative, validate_pod_template
from shim.apiserver.printers import (
    AGE_COLUMN,
    EMPTY,
    NAME_COLUMN,
    TEMPLATE_COLUMNS,
    Cells,
    Column,
    Printer,
    age,
    column,
    container_cells,
    format_label_selector,
    object_name,
)
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import SCALE, STATUS, ResourceType, Strategy
from shim.apiserver.selectable_fields import NAMESPACED, selectable
from shim.machinery.quantity import QuantityError
from shim.machinery.selectors import SelectorError, label_selector_from_object

# -- Table printer (kube's pkg/printers/internalversion/printers.go) ------------------------------


DEPLOYMENT_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Ready", "Number of the pod with ready state"),
    column(
        "Up-to-date",
        ("Total number of non-terminating pods targeted by this deployment that have the desired template spec."),
    ),
    column(
        "Available",
        (
            "Total number of available non-terminating pods (ready for at least minReadySeconds) "
            "targeted by this deployment."
        ),
    ),
    AGE_COLUMN,
    *TEMPLATE_COLUMNS,
    column(
        "Selector",
        (
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be "
            "the ones affected by this deployment. It must match the pod template's labels."
        ),
        1,
    ),
]


REPLICASET_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Desired",
        (
            "Replicas is the number of desired pods. This is a pointer to distinguish between "
            "explicit zero and unspecified. Defaults to 1. More info: "
            "https://kubernetes.io/docs/concepts/workloads/controllers/replicaset"
        ),
        type="integer",
    ),
    column(
        "Current",
        (
            "Replicas is the most recently observed number of non-terminating pods. More info: "
            "https://kubernetes.io/docs/concepts/workloads/controllers/replicaset"
        ),
        type="integer",
    ),
    column(
        "Ready",
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
        type="integer",
    ),
    AGE_COLUMN,
    *TEMPLATE_COLUMNS,
    column(
        "Selector",
        (
            "Selector is a label query over pods that should match the replica count. Label keys and "
            "values that must match in order to be controlled by this replica set. It must match the "
            "pod template's labels. More info: "
            "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
        ),
        1,
    ),
]


def deployment_cells(deploy: Printed, now_us: int) -> Cells:
    spec = deploy.get("spec") or EMPTY
    status = deploy.get("status") or EMPTY
    names, images = container_cells(spec)
    try:
        selector = str(label_selector_from_object(spec.get("selector")))
    except SelectorError:
        selector = "<invalid>"
    return [
        object_name(deploy),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(deploy, now_us),
        names,
        images,
        selector,
    ]


def replicaset_cells(rs: Printed, now_us: int) -> Cells:
    spec = rs.get("spec") or EMPTY
    status = rs.get("status") or EMPTY
    names, images = container_cells(spec)
    return [
        object_name(rs),
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age(rs, now_us),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


Obj = dict[str, Any]

_PERCENT_FMT = "[0-9]+%"
_PERCENT = re.compile(_PERCENT_FMT).fullmatch
_PERCENT_MSG = regex_error(
    "a valid percent string must be a numeric string followed by an ending '%'", _PERCENT_FMT, "1%", "93%"
)
_GREATER_THAN_REPLICAS = "cannot be greater than status.replicas"


def default_update_strategy(spec: Obj, field: str, rolling: Mapping[str, Any]) -> None:
    """kube's defaulting of a workload's update strategy (`spec.<field>`: `strategy` for Deployments,
    `updateStrategy` for DaemonSets and StatefulSets): type RollingUpdate unless set, and then each of the
    `rolling` fields of `rollingUpdate` that is unset."""
    strategy = spec.get(field)
    if strategy is None:
        strategy = spec[field] = {}
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        current: Obj | None = strategy.get("rollingUpdate")
        if current is None:
            current = strategy["rollingUpdate"] = {}
        for key, value in rolling.items():
            if current.get(key) is None:
                current[key] = value


class DeploymentStrategy(Strategy):
    """Deployments: RollingUpdate 25%/25%, 10 revisions, 600s progress deadline; selector fixed once set."""

    short_names = ("deploy",)
    categories = ("all",)
    subresources = (STATUS, SCALE)
    table_columns = DEPLOYMENT_COLUMNS
    printer = staticmethod(deployment_cells)

    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        default_update_strategy(spec, "strategy", {"maxUnavailable": "25%", "maxSurge": "25%"})
        if spec.get("revisionHistoryLimit") is None:
            spec["revisionHistoryLimit"] = 10
        if spec.get("progressDeadlineSeconds") is None:
            spec["progressDeadlineSeconds"] = 600
        default_pod_template(spec, "Deployment")

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        # annotations are copied to the replica sets, so changing them is a new generation too
        meta, old_meta = new.setdefault("metadata", {}), old.get("metadata") or {}
        if (meta.get("annotations") or {}) != (old_meta.get("annotations") or {}):
            meta["generation"] = old_meta.get("generation", 0) + 1

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """kube's deploymentStatusStrategy: spec and labels stay, other metadata changes are kept (the
        controller records the revision annotation this way; `kubectl rollout undo` then replaces it)."""
        meta = {key: value for key, value in new["metadata"].items() if key != "labels"}
        super().prepare_for_status_update(new, old)
        if labels := old["metadata"].get("labels"):
            meta["labels"] = labels
        new["metadata"] = meta

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = _validate_replica_set_spec(spec)
        causes.extend(_validate_strategy(spec.get("strategy") or {}))
        causes.extend(nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit"))
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None:
            causes.extend(nonnegative(deadline, "spec.progressDeadlineSeconds"))
            if deadline <= spec.get("minReadySeconds", 0):
                causes.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateDeploymentUpdate + selector immutability, and the status rules (no-ops when unchanged)."""
        causes = self.validate(new)
        causes.extend(selector_unchanged(new, old))
        status, old_status = new.get("status") or {}, old.get("status") or {}
        causes.extend(
            validate_replica_status(
                status,
                (
                    "observedGeneration",
                    "replicas",
                    "updatedReplicas",
                    "readyReplicas",
                    "availableReplicas",
                    "unavailableReplicas",
                    "collisionCount",
                ),
                ("updatedReplicas", "readyReplicas", "availableReplicas"),
            )
        )
        if status.get("collisionCount", 0) < old_status.get("collisionCount", 0):
            causes.append(invalid("status.collisionCount", status.get("collisionCount", 0), "cannot be decremented"))
        return causes


class ReplicaSetStrategy(Strategy):
    """ReplicaSets: one replica by default; selector fixed once set."""

    short_names = ("rs",)
    categories = ("all",)
    subresources = (STATUS, SCALE)
    table_columns = REPLICASET_COLUMNS
    printer: Printer = staticmethod(replicaset_cells)  # typed as the base's: RCs print with their own
    # pkg/registry/apps/replicaset ReplicaSetToSelectableFields (kube's field selector docs list it)
    selectable_fields = selectable(
        {**NAMESPACED, "status.replicas": lambda rs: str((rs.get("status") or {}).get("replicas") or 0)}
    )

    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        default_pod_template(spec, "ReplicaSet")
        if obj.get("status") is not None:
            obj["status"].setdefault("replicas", 0)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0}

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        new.setdefault("status", {}).setdefault("replicas", 0)

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_replica_set_spec(obj.get("spec") or {})

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateReplicaSetUpdate + selector immutability, and the status rules (no-ops when unchanged)."""
        causes = self.validate(new)
        causes.extend(selector_unchanged(new, old))
        causes.extend(self.validate_status(new))
        return causes

    def validate_status(self, obj: Obj) -> list[Cause]:
        """ValidateReplicaSetStatus (ReplicationControllers' status has the same fields and rules)."""
        return validate_replica_status(
            obj.get("status") or {},
            ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"),
            ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"),
        )


def scale_from(obj: Obj, rt: ResourceType) -> Obj:
    """The autoscaling/v1 Scale of a deployment, replica set or replication controller (`rt`)."""
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    replicas = spec.get("replicas", 0)
    scale_status: Obj = {"replicas": status.get("replicas", 0)}
    wanted = spec.get("selector")
    if rt.kind == "ReplicationController" and wanted is not None:
        wanted = {"matchLabels": wanted}  # a v1 RC selects by a plain label map
    selector = _selector_string(wanted)
    if selector:
        scale_status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": replicas} if replicas else {},
        "status": scale_status,
    }


def apply_scale(obj: Obj, scale: Obj) -> None:
    """Write a Scale's spec.replicas into its deployment or replica set (an omitted count means 0)."""
    obj.setdefault("spec", {})["replicas"] = (scale.get("spec") or {}).get("replicas", 0)


def _selector_string(selector: Obj | None) -> str:
    try:
        return str(label_selector_from_object(selector)) if selector is not None else ""
    except SelectorError:
        return ""


def default_pod_template(spec: Obj, kind: str) -> None:
    """Default a workload spec's pod template in place, as kube's SetDefaults_PodSpec does for templates; a bad
    quantity in it is refused as kube's decoder refuses `kind`."""
    template = spec.get("template")
    if template is None:
        template = spec["template"] = {}
    meta: Obj | None = template.get("metadata")
    if meta is None:
        meta = template["metadata"] = {}
    # a template's zero creationTimestamp is written as null, as kube (through 1.33) does
    meta.setdefault("creationTimestamp", None)
    try:
        default_pod_spec(template.setdefault("spec", {}))
    except QuantityError as exc:
        raise undecodable(kind, "v1", exc) from None


def _validate_replica_set_spec(spec: Obj) -> list[Cause]:
    """ValidateReplicaSetSpec (its checks are a subset of ValidateDeploymentSpec)."""
    causes = nonnegative(spec.get("replicas", 0), "spec.replicas")
    causes.extend(nonnegative(spec.get("minReadySeconds", 0), "spec.minReadySeconds"))
    selector = spec.get("selector")
    template = spec.get("template") or {}
    if selector is None:
        causes.append(required("spec.selector"))
        parsed = None
    else:
        causes.extend(validate_label_selector(selector, "spec.selector"))
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(
                invalid("spec.selector", go_label_selector(selector), "empty selector is invalid for deployment")
            )
        try:
            parsed = label_selector_from_object(selector)
        except SelectorError:
            causes.append(invalid("spec.selector", go_label_selector(selector), "invalid label selector"))
            return causes
    labels = (template.get("metadata") or {}).get("labels")
    if parsed is not None and not parsed.empty and not parsed.matches(labels or {}):
        causes.append(
            invalid(
                "spec.template.metadata.labels", go_string_map(labels), "`selector` does not match template `labels`"
            )
        )
    causes.extend(validate_pod_template(template, "spec.template"))
    causes.extend(validate_replica_template_spec(template.get("spec") or {}, "ReplicaSet"))
    return causes


def validate_replica_template_spec(pod_spec: Obj, kind: str) -> list[Cause]:
    """What a replicated pod template may not do (kube's ValidatePodTemplateSpecFor{ReplicaSet,RC}): restart
    other than Always, or set activeDeadlineSeconds; `kind` names the workload in the message."""
    causes: list[Cause] = []
    restart_policy = pod_spec.get("restartPolicy", "")
    if restart_policy != "Always":
        causes.append(unsupported("spec.template.spec.restartPolicy", restart_policy, ("Always",)))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        causes.append(
            forbidden("spec.template.spec.activeDeadlineSeconds", f"activeDeadlineSeconds in {kind} is not Supported")
        )
    return causes


def _validate_strategy(strategy: Obj) -> list[Cause]:
    kind = strategy.get("type", "")
    rolling = strategy.get("rollingUpdate")
    path = "spec.strategy"
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden(path + ".rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind != "RollingUpdate":
        shown = GoValue(f'apps.DeploymentStrategy{{Type:"{kind}", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}')
        return [unsupported(path, shown, ("Recreate", "RollingUpdate"))]
    if rolling is None:
        return [required(path + ".rollingUpdate", "this should be defaulted and never be nil")]
    path += ".rollingUpdate"
    max_unavailable, max_surge = rolling.get("maxUnavailable", 0), rolling.get("maxSurge", 0)
    causes = validate_int_or_percent(max_unavailable, path + ".maxUnavailable")
    causes.extend(validate_int_or_percent(max_surge, path + ".maxSurge"))
    if int_or_percent_value(max_unavailable) == 0 and int_or_percent_value(max_surge) == 0:
        causes.append(
            invalid(path + ".maxUnavailable", go_int_or_string(max_unavailable), "may not be 0 when `maxSurge` is 0")
        )
    if isinstance(max_unavailable, str) and _PERCENT(max_unavailable) and int(max_unavailable[:-1]) > 100:
        causes.append(
            invalid(path + ".maxUnavailable", go_int_or_string(max_unavailable), "must not be greater than 100%")
        )
    return causes


def validate_int_or_percent(value: int | str, path: str) -> list[Cause]:
    """ValidatePositiveIntOrPercent."""
    if isinstance(value, str):
        return [] if _PERCENT(value) else [invalid(path, go_int_or_string(value), _PERCENT_MSG)]
    return nonnegative(value, path)


def int_or_percent_value(value: int | str) -> int:
    """The number in an int-or-percent (`25%` is 25); 0 for a malformed string (validation reports it)."""
    if isinstance(value, int):
        return value
    digits = value[:-1] if _PERCENT(value) else value
    return int(digits) if digits.isdigit() else 0


def selector_unchanged(new: Obj, old: Obj) -> list[Cause]:
    """apps/v1's immutable `spec.selector` (kube's ValidateImmutableField in the strategies' ValidateUpdate)."""
    selector = (new.get("spec") or {}).get("selector")
    old_selector = (old.get("spec") or {}).get("selector")
    if _semantic_selector(selector) == _semantic_selector(old_selector):
        return []
    return [invalid("spec.selector", go_label_selector(selector or {}), FIELD_IMMUTABLE)]


def _semantic_selector(selector: Obj | None) -> tuple[Any, Any] | None:
    if selector is None:
        return None
    return (selector.get("matchLabels") or {}, selector.get("matchExpressions") or [])


def validate_replica_status(status: Obj, counters: tuple[str, ...], at_most_replicas: tuple[str, ...]) -> list[Cause]:
    """A replicated workload's status rules: `counters` non-negative, `at_most_replicas` at most status.replicas,
    available at most ready."""
    causes: list[Cause] = []
    for key in counters:
        causes.extend(nonnegative(status.get(key, 0), f"status.{key}"))
    replicas = status.get("replicas", 0)
    for key in at_most_replicas:
        if status.get(key, 0) > replicas:
            causes.append(invalid(f"status.{key}", status.get(key, 0), _GREATER_THAN_REPLICAS))
    if status.get("availableReplicas", 0) > status.get("readyReplicas", 0):
        causes.append(
            invalid("status.availableReplicas", status["availableReplicas"], "cannot be greater than readyReplicas")
        )
    return causes
