"""v1 ReplicationControllers, and their `scale` subresource (autoscaling/v1 Scale, shared with apps/v1).

Follows `pkg/apis/core/v1/defaults.go` SetDefaults_ReplicationController, `pkg/registry/core/replicationcontroller/
strategy.go` and `pkg/apis/core/validation` ValidateReplicationController{,Update,Status}. Unlike a ReplicaSet, an
RC selects by a plain label map, which defaults to the template's labels and may change; its template may be
absent (then it is required).
"""

from __future__ import annotations

from typing import Any

from shim.apiserver.kinds.apps import ReplicaSetStrategy, default_pod_template, validate_replica_template_spec
from shim.apiserver.kinds.causes import Cause, go_string_map, invalid, required
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
    format_labels,
    object_name,
)
from shim.apiserver.printers import Obj as Printed

Obj = dict[str, Any]

_RC_DOC = (
    "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"
)

# kube's pkg/printers/internalversion/printers.go replicationControllerColumnDefinitions
REPLICATION_CONTROLLER_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Desired",
        (
            "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero "
            f"and unspecified. Defaults to 1. More info: {_RC_DOC}"
        ),
        type="integer",
    ),
    column(
        "Current", f"Replicas is the most recently observed number of replicas. More info: {_RC_DOC}", type="integer"
    ),
    column("Ready", "The number of ready replicas for this replication controller.", type="integer"),
    AGE_COLUMN,
    *TEMPLATE_COLUMNS,
    column(
        "Selector",
        (
            "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it "
            "is defaulted to the labels present on the Pod template. Label keys and values that must match in "
            "order to be controlled by this replication controller, if empty defaulted to labels on Pod "
            "template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels#label-selectors"
        ),
        1,
    ),
]


def replication_controller_cells(rc: Printed, now_us: int) -> Cells:
    """kube's printReplicationController: desired, current and ready counts; wide adds the template and selector."""
    spec = rc.get("spec") or EMPTY
    status = rc.get("status") or EMPTY
    names, images = container_cells(spec)
    return [
        object_name(rc),
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age(rc, now_us),
        names,
        images,
        format_labels(spec.get("selector")),
    ]


class ReplicationControllerStrategy(ReplicaSetStrategy):
    """ReplicationControllers: a ReplicaSet's status, scale and field selectors, but a label-map selector that
    defaults (with the RC's labels) to the template's labels and may change."""

    short_names = ("rc",)
    table_columns = REPLICATION_CONTROLLER_COLUMNS
    printer: Printer = staticmethod(replication_controller_cells)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        template = spec.get("template")
        labels = ((template or {}).get("metadata") or {}).get("labels")
        if labels is not None:  # SetDefaults_ReplicationController: only a template's non-nil labels
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = obj.setdefault("metadata", {})
            if not meta.get("labels"):
                meta["labels"] = dict(labels)
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        if template is not None:  # a missing template stays missing: validation requires it
            default_pod_template(spec, "ReplicationController")
        if obj.get("status") is not None:
            obj["status"].setdefault("replicas", 0)

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_spec(obj.get("spec") or {})

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateReplicationControllerUpdate (nothing is immutable) and the status rules."""
        return self.validate(new) + self.validate_status(new)


def _validate_spec(spec: Obj) -> list[Cause]:
    """ValidateReplicationControllerSpec with ValidateNonEmptySelector and ValidatePodTemplateSpecForRC."""
    causes = nonnegative(spec.get("minReadySeconds", 0), "spec.minReadySeconds")
    selector = spec.get("selector") or {}
    if not selector:
        causes.append(required("spec.selector"))
    causes.extend(nonnegative(spec.get("replicas", 0), "spec.replicas"))
    template = spec.get("template")
    if template is None:
        causes.append(required("spec.template"))
        return causes
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and any(labels.get(key) != value for key, value in selector.items()):
        causes.append(
            invalid(
                "spec.template.metadata.labels", go_string_map(labels), "`selector` does not match template `labels`"
            )
        )
    causes.extend(validate_pod_template(template, "spec.template"))
    causes.extend(validate_replica_template_spec(template.get("spec") or {}, "ReplicationController"))
    return causes
