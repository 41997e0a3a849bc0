"""The policy/v1 Eviction a `pods/<name>/eviction` request carries, and the PodDisruptionBudget it must respect
(`pkg/registry/core/pod/storage/eviction.go`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from shim.apiserver import errors
from shim.apiserver.kinds.causes import Cause, invalid, unsupported
from shim.apiserver.objects import DeleteOptions, ObjectStore, check_preconditions
from shim.apiserver.registry import ResourceType
from shim.controllers.podutil import is_pod_ready
from shim.machinery import timefmt
from shim.machinery.disruption import DISRUPTION_BUDGET_CAUSE, MAX_DISRUPTED_PODS, set_disruption_allowed_condition
from shim.machinery.selectors import SelectorError, label_selector_from_object

Obj = dict[str, Any]


_PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")


def validate_eviction(eviction: Obj, pod_name: str) -> None:
    """A `pods/<name>/eviction` body: its name must be the pod's, its deleteOptions valid.

    Raises 400 (name mismatch) or 422 (bad deleteOptions) as kube does.
    """
    name = (eviction.get("metadata") or {}).get("name")
    if name and name != pod_name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = eviction.get("deleteOptions") or {}
    causes: list[Cause] = []
    if options.get("orphanDependents") is not None and options.get("propagationPolicy") is not None:
        causes.append(
            invalid(
                "propagationPolicy",
                options["propagationPolicy"],
                "orphanDependents and deletionPropagation cannot be both set",
            )
        )
    policy = options.get("propagationPolicy")
    if policy is not None and policy not in _PROPAGATION_POLICIES:
        causes.append(unsupported("propagationPolicy", policy, _PROPAGATION_POLICIES))
    for i, value in enumerate(options.get("dryRun") or ()):
        if value != "All":
            causes.append(unsupported(f"dryRun[{i}]", value, ("All",)))
    if causes:
        raise errors.invalid("policy", "Eviction", pod_name, causes)


# -- the disruption budget an eviction must respect ---------------------------------------------------------

_VIOLATES = "Cannot evict pod as it would violate the pod's disruption budget."
#: the Status kube answers (with HTTP 500, no reason) when two budgets select the pod
MORE_THAN_ONE_BUDGET = (
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
)


async def spend_budget(objects: ObjectStore, pod: Obj, dry_run: bool) -> Obj | None:
    """The eviction's check of the pod's PodDisruptionBudget (kube's EvictionREST.Create): one allowed
    disruption is taken in the budget's status (the store retries conflicts) or ApiError 429 refuses.
    Returns kube's 500 Status when more than one budget selects the pod, else None: the pod may go."""
    budgets_rt = objects.registry.lookup("policy", "v1", "poddisruptionbudgets")
    if budgets_rt is None or can_ignore_budgets(pod):
        return None
    namespace = pod["metadata"].get("namespace")
    budgets = budgets_selecting(pod, (await objects.list(budgets_rt, namespace)).items)
    if len(budgets) > 1:
        # kube answers a Status object (not an error): no reason, code 500
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        return {**status, "message": MORE_THAN_ONE_BUDGET, "code": 500}
    if not budgets or unhealthy_pod_may_go(pod, budgets[0]):
        return None
    name = pod["metadata"]["name"]
    mutate = functools.partial(spend_disruption, pod_name=name)
    await objects.update(budgets_rt, namespace, budgets[0]["metadata"]["name"], mutate, "status", dry_run)
    return None


def mark_evicting(pod: Obj, rt: ResourceType, options: DeleteOptions) -> Obj:
    """addConditionAndDeletePod's status update: the latest pod, if the eviction's preconditions still hold,
    with the `DisruptionTarget` condition saying the Eviction API takes it (UpdatePodCondition: the
    transition time stays while the status does)."""
    check_preconditions(rt, pod, options)
    now = timefmt.now_rfc3339()
    condition = {
        "type": "DisruptionTarget",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": now,
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
    }
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    for i, current in enumerate(conditions):
        if current.get("type") == "DisruptionTarget":
            if current.get("status") == "True":
                condition["lastProbeTime"] = current.get("lastProbeTime")
                condition["lastTransitionTime"] = current.get("lastTransitionTime")
            conditions[i] = condition
            return pod
    conditions.append(condition)
    return pod


def can_ignore_budgets(pod: Obj) -> bool:
    """canIgnorePDB: a finished, pending or already deleted pod disrupts nothing more by going."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def budgets_selecting(pod: Obj, budgets: Iterable[Obj]) -> list[Obj]:
    """getPodDisruptionBudgets: the pod's namespace's budgets whose selector matches its labels; a budget with
    no or an empty selector, or one kube cannot parse, guards nothing here."""
    labels = pod["metadata"].get("labels") or {}
    chosen = []
    for pdb in budgets:
        try:
            selector = label_selector_from_object((pdb.get("spec") or {}).get("selector"))
        except SelectorError:
            continue
        if selector.empty or selector.matches_nothing or not selector.matches(labels):
            continue
        chosen.append(pdb)
    return chosen


def unhealthy_pod_may_go(pod: Obj, pdb: Obj) -> bool:
    """An unready pod is deleted without spending the budget when its policy is AlwaysAllow, or (the default,
    IfHealthyBudget) when the application is healthy enough without it."""
    if is_pod_ready(pod):
        return False
    if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
        return True
    status = pdb.get("status") or {}
    desired = status.get("desiredHealthy", 0)
    return status.get("currentHealthy", 0) >= desired and desired > 0


def spend_disruption(pdb: Obj, pod_name: str) -> Obj:
    """checkAndDecrement: take one allowed disruption from `pdb` and record the pod in `disruptedPods` (the
    controller stops counting it as healthy); raises kube's 429 (or 403) when the budget does not allow it."""
    name = pdb["metadata"]["name"]
    status = pdb.setdefault("status", {})
    if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 0):
        raise _too_many_requests(f"The disruption budget {name} is still being processed by the server.", 10)
    allowed = status.get("disruptionsAllowed", 0)
    if allowed < 0:
        raise errors.forbidden("policy", "poddisruptionbudget", name, "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise errors.forbidden(
            "policy",
            "poddisruptionbudget",
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        )
    if allowed == 0:
        healthy = f"needs {status.get('desiredHealthy', 0)} healthy pods and has {status.get('currentHealthy', 0)}"
        raise _too_many_requests(f"The disruption budget {name} {healthy} currently", 0)
    status["disruptionsAllowed"] = allowed - 1
    if status["disruptionsAllowed"] == 0:
        set_disruption_allowed_condition(status)
    disrupted = status.get("disruptedPods") or {}
    disrupted[pod_name] = timefmt.now_rfc3339()
    status["disruptedPods"] = disrupted
    return pdb


def _too_many_requests(cause: str, retry_after: int) -> errors.ApiError:
    """NewTooManyRequests with kube's DisruptionBudget cause (`retryAfterSeconds` is omitted when 0)."""
    details: dict[str, Any] = {"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return errors.ApiError(429, "TooManyRequests", _VIOLATES, details)
