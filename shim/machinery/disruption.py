"""PodDisruptionBudget facts the eviction subresource and the disruption controller share
(`pkg/apis/policy`, `pkg/util/pod` and `pkg/controller/disruption`'s UpdateDisruptionAllowedCondition)."""

from __future__ import annotations

from typing import Any

from shim.machinery import timefmt

Obj = dict[str, Any]

DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
#: the `causes[].reason` of an eviction a budget refused (policyv1.DisruptionBudgetCause)
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
#: how many evictions the controller may not yet have seen before the API refuses more (MaxDisruptedPodSize)
MAX_DISRUPTED_PODS = 2000


def set_disruption_allowed_condition(status: Obj) -> None:
    """kube's UpdateDisruptionAllowedCondition: `DisruptionAllowed` True/SufficientPods while
    disruptionsAllowed > 0, else False/InsufficientPods (apimeta.SetStatusCondition: the transition time
    moves only when the status does)."""
    allowed = status.get("disruptionsAllowed", 0) > 0
    condition = {
        "type": DISRUPTION_ALLOWED,
        "status": "True" if allowed else "False",
        "observedGeneration": status.get("observedGeneration", 0),
        "lastTransitionTime": timefmt.now_rfc3339(),
        "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS,
        "message": "",
    }
    conditions = status.setdefault("conditions", [])
    for i, current in enumerate(conditions):
        if current.get("type") == DISRUPTION_ALLOWED:
            if current.get("status") == condition["status"]:
                condition["lastTransitionTime"] = current.get("lastTransitionTime")
            conditions[i] = condition
            return
    conditions.append(condition)
