"""policy/v1 PodDisruptionBudgets: how many of a set of pods voluntary disruptions (evictions) must leave
running (`pkg/registry/policy/poddisruptionbudget`, `pkg/apis/policy/validation`)."""

from __future__ import annotations

from typing import Any

from shim.apiserver.kinds.apps import int_or_percent_value, validate_int_or_percent
from shim.apiserver.kinds.causes import Cause, GoValue, go_int_or_string, invalid, unsupported
from shim.apiserver.kinds.meta import validate_label_selector
from shim.apiserver.printers import (
    AGE_COLUMN,
    EMPTY,
    NAME_COLUMN,
    Cells,
    Column,
    age,
    column,
    object_name,
)
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import STATUS, Strategy

Obj = dict[str, Any]

UNHEALTHY_POD_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")


# -- Table printer (kube's pkg/printers/internalversion/printers.go) ------------------------------


PDB_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Min Available", "The minimum number of pods that must be available."),
    column("Max Unavailable", "The maximum number of pods that may be unavailable."),
    column("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time.", type="integer"),
    AGE_COLUMN,
]


def pdb_cells(pdb: Printed, now_us: int) -> Cells:
    spec = pdb.get("spec") or EMPTY
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    return [
        object_name(pdb),
        "N/A" if min_available is None else str(min_available),
        "N/A" if max_unavailable is None else str(max_unavailable),
        (pdb.get("status") or EMPTY).get("disruptionsAllowed", 0),
        age(pdb, now_us),
    ]


class PodDisruptionBudgetStrategy(Strategy):
    """PodDisruptionBudgets: a status the disruption controller keeps and the eviction subresource spends."""

    short_names = ("pdb",)
    subresources = (STATUS,)
    table_columns = PDB_COLUMNS
    printer = staticmethod(pdb_cells)
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        """kube always writes the spec struct, empty or not (the controller reads it)."""
        if not isinstance(obj.get("spec"), dict):
            obj["spec"] = {}

    def prepare_for_create(self, obj: Obj) -> None:
        """A new budget allows nothing until the controller has counted its pods (the v1 status counters
        are not omitempty, so they show as 0)."""
        obj["status"] = empty_status()

    def validate(self, obj: Obj) -> list[Cause]:
        """ValidatePodDisruptionBudgetSpec."""
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
        if min_available is not None and max_unavailable is not None:
            causes.append(invalid("spec", _go_spec(spec), "minAvailable and maxUnavailable cannot be both set"))
        for field, value in (("minAvailable", min_available), ("maxUnavailable", max_unavailable)):
            if value is None:
                continue
            path = "spec." + field
            causes.extend(validate_int_or_percent(value, path))
            if isinstance(value, str) and int_or_percent_value(value) > 100:
                causes.append(invalid(path, go_int_or_string(value), "must not be greater than 100%"))
        causes.extend(validate_label_selector(spec.get("selector"), "spec.selector"))
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
            causes.append(unsupported("spec.unhealthyPodEvictionPolicy", policy, UNHEALTHY_POD_EVICTION_POLICIES))
        return causes


def empty_status() -> Obj:
    """The status of a budget no controller has looked at yet."""
    return {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}


def _go_spec(spec: Obj) -> GoValue:
    """The spec as kube's %#v prints it: its fields are pointers, shown by address (a fixed stand-in here,
    an allocation's address in kube)."""

    def pointer(go_type: str, value: Any) -> str:
        return f"(*{go_type})({'nil' if value is None else '0xc000000000'})"

    fields = (
        ("MinAvailable", "intstr.IntOrString", spec.get("minAvailable")),
        ("MaxUnavailable", "intstr.IntOrString", spec.get("maxUnavailable")),
        ("Selector", "v1.LabelSelector", spec.get("selector")),
        ("UnhealthyPodEvictionPolicy", "policy.UnhealthyPodEvictionPolicyType", spec.get("unhealthyPodEvictionPolicy")),
    )
    return GoValue("policy.PodDisruptionBudgetSpec{" + ", ".join(f"{n}:{pointer(t, v)}" for n, t, v in fields) + "}")
