"""coordination.k8s.io/v1 Leases: node heartbeats and leader election (`pkg/registry/coordination/lease`)."""

from __future__ import annotations

from typing import Any

from shim.apiserver.kinds.causes import Cause, forbidden, invalid, unsupported
from shim.apiserver.kinds.meta import NEGATIVE, is_qualified_name
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
from shim.apiserver.registry import Strategy

Obj = dict[str, Any]


# -- Table printer (kube's pkg/printers/internalversion/printers.go) ------------------------------


LEASE_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Holder",
        (
            "holderIdentity contains the identity of the holder of a current lease. If Coordinated "
            "Leader Election is used, the holder identity must be equal to the elected "
            "LeaseCandidate.metadata.name field."
        ),
    ),
    AGE_COLUMN,
]


def lease_cells(lease: Printed, now_us: int) -> Cells:
    return [object_name(lease), (lease.get("spec") or EMPTY).get("holderIdentity") or "", age(lease, now_us)]


class LeaseStrategy(Strategy):
    """coordination.k8s.io/v1 Leases (node heartbeats, leader election)."""

    table_columns = LEASE_COLUMNS
    printer = staticmethod(lease_cells)

    allow_create_on_update = True

    def default(self, obj: Obj) -> None:
        if obj.get("spec") is None:
            obj["spec"] = {}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and duration <= 0:
            causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if transitions is not None and transitions < 0:
            causes.append(invalid("spec.leaseTransitions", transitions, NEGATIVE))
        strategy = spec.get("strategy")
        if strategy is not None:
            if "/" not in strategy:
                if strategy != "OldestEmulationVersion":
                    causes.append(unsupported("spec.strategy.strategy", strategy, ("OldestEmulationVersion",)))
            else:
                causes.extend(invalid("spec.strategy.strategy", strategy, m) for m in is_qualified_name(strategy))
        if spec.get("preferredHolder") and not strategy:
            causes.append(forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
        return causes
