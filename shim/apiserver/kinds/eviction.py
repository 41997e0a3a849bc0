"""The policy/v1 Eviction a `pods/<name>/eviction` request carries (`pkg/registry/core/pod/storage/eviction.go`)."""

from __future__ import annotations

from typing import Any

from shim.apiserver import errors
from shim.apiserver.kinds.causes import Cause, invalid, unsupported

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
