"""scheduling.k8s.io/v1 PriorityClasses, with the two system classes every cluster has
(`pkg/registry/scheduling/priorityclass`).
"""

from __future__ import annotations

from typing import Any

from shim.apiserver.kinds.causes import Cause, forbidden, invalid, required, unsupported
from shim.apiserver.kinds.meta import FIELD_IMMUTABLE
from shim.apiserver.printers import (
    AGE_COLUMN,
    NAME_COLUMN,
    Cells,
    Column,
    age,
    column,
    object_name,
)
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import Strategy

Obj = dict[str, Any]


# -- Table printer (kube's pkg/printers/internalversion/printers.go) ------------------------------


PRIORITYCLASS_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Value",
        (
            "value represents the integer value of this priority class. This is the actual priority "
            "that pods receive when they have the name of this class in their pod spec."
        ),
        type="integer",
    ),
    column(
        "Global-Default",
        (
            "globalDefault specifies whether this PriorityClass should be considered as the default "
            "priority for pods that do not have any priority class. Only one PriorityClass can be "
            "marked as `globalDefault`. However, if more than one PriorityClasses exists with their "
            "`globalDefault` field set to true, the smallest value of such global default "
            "PriorityClasses will be used as the default priority."
        ),
        type="boolean",
    ),
    AGE_COLUMN,
    column(
        "PreemptionPolicy",
        (
            "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, "
            "PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."
        ),
    ),
]


def priorityclass_cells(pc: Printed, now_us: int) -> Cells:
    return [
        object_name(pc),
        pc.get("value", 0),
        bool(pc.get("globalDefault")),
        age(pc, now_us),
        pc.get("preemptionPolicy", ""),
    ]


HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES: tuple[Obj, ...] = (
    {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "system-node-critical"},
        "value": 2_000_001_000,
        "description": "Used for system critical pods that must not be moved from their current node.",
        "preemptionPolicy": "PreemptLowerPriority",
    },
    {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "system-cluster-critical"},
        "value": 2_000_000_000,
        "description": "Used for system critical pods that must run in the cluster, but can be moved to another "
        "node if necessary.",
        "preemptionPolicy": "PreemptLowerPriority",
    },
)
_PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")


class PriorityClassStrategy(Strategy):
    """scheduling.k8s.io/v1 PriorityClasses: cluster-scoped; value and preemptionPolicy fixed once set."""

    short_names = ("pc",)
    table_columns = PRIORITYCLASS_COLUMNS
    printer = staticmethod(priorityclass_cells)

    def default(self, obj: Obj) -> None:
        # value is not omitempty in Go, so an absent one reads back as 0
        obj.setdefault("value", 0)
        if not obj.get("preemptionPolicy"):
            obj["preemptionPolicy"] = "PreemptLowerPriority"

    def validate(self, obj: Obj) -> list[Cause]:
        name = (obj.get("metadata") or {}).get("name", "")
        value = obj.get("value", 0)
        causes: list[Cause] = []
        if name.startswith("system-"):
            problem = _system_class_problem(name, value, bool(obj.get("globalDefault")))
            if problem:
                causes.append(
                    forbidden(
                        "metadata.name",
                        "priority class names with 'system-' prefix are reserved "
                        f"for system use only. error: {problem}",
                    )
                )
        elif value > HIGHEST_USER_PRIORITY:
            causes.append(
                forbidden("value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}")
            )
        policy = obj.get("preemptionPolicy")
        if policy is not None and policy not in _PREEMPTION_POLICIES:
            causes.append(
                required("preemptionPolicy")
                if not policy
                else unsupported("preemptionPolicy", policy, _PREEMPTION_POLICIES)
            )
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if new.get("value", 0) != old.get("value", 0):
            causes.append(forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            causes.append(invalid("preemptionPolicy", new.get("preemptionPolicy"), FIELD_IMMUTABLE))
        return causes


def _system_class_problem(name: str, value: int, global_default: bool) -> str:
    for known in SYSTEM_PRIORITY_CLASSES:
        if known["metadata"]["name"] == name:
            if known["value"] != value:
                return f"value of {name} PriorityClass must be {known['value']}"
            if global_default:
                return f"globalDefault of {name} PriorityClass must be false"
            return ""
    return f"{name} is not a known system priority class"
