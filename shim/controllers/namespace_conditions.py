"""The status conditions the namespace controller writes while it empties a terminating namespace.

Kube's `pkg/controller/namespace/deletion/status_condition_utils.go`: five condition types, each either
failing (status True, with what went wrong) or its fixed "ok" variant (status False); a condition's
lastTransitionTime moves only when its status flips.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GROUP_VERSION_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"

# type -> (reason, message) of the "nothing wrong" variant, in kube's conditionTypes order
_OK = {
    DISCOVERY_FAILURE: ("ResourcesDiscovered", "All resources successfully discovered"),
    GROUP_VERSION_PARSING_FAILURE: ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    CONTENT_FAILURE: ("ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    CONTENT_REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS_REMAINING: ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}


@dataclass
class ContentReport:
    """What one pass over a terminating namespace's content found."""

    discovery_error: str | None = None
    #: why deleting some resource type failed (kube's err.Error() of each)
    content_errors: list[str] = field(default_factory=list)
    #: `<plural>.<group>` -> objects still there
    remaining: dict[str, int] = field(default_factory=dict)
    #: finalizer -> objects still carrying it
    finalizers: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> bool:
        """Nothing failed and nothing is left: the namespace may be finalized."""
        return self.discovery_error is None and not self.content_errors and not self.remaining

    def failing(self) -> dict[str, tuple[str, str]]:
        """type -> (reason, message) of each condition this pass sets to True."""
        out: dict[str, tuple[str, str]] = {}
        if self.discovery_error is not None:
            out[DISCOVERY_FAILURE] = ("DiscoveryFailed", self.discovery_error)
        if self.content_errors:
            errors = sorted(self.content_errors)
            message = f"Failed to delete all resource types, {len(errors)} remaining: {', '.join(errors)}"
            out[CONTENT_FAILURE] = ("ContentDeletionFailed", message)
        if self.remaining:
            counts = sorted(f"{resource} has {n} resource instances" for resource, n in self.remaining.items() if n)
            out[CONTENT_REMAINING] = ("SomeResourcesRemain", f"Some resources are remaining: {', '.join(counts)}")
        if self.finalizers:
            held = sorted(f"{finalizer} in {n} resource instances" for finalizer, n in self.finalizers.items() if n)
            message = f"Some content in the namespace has finalizers remaining: {', '.join(held)}"
            out[FINALIZERS_REMAINING] = ("SomeFinalizersRemain", message)
        return out


def update_conditions(status: Obj, report: ContentReport, now: str) -> bool:
    """Set the five conditions in `status` from `report` (kube's updateConditions); True when any changed."""
    failing = report.failing()
    conditions: list[Obj] = list(status.get("conditions") or [])
    changed = False
    for kind, ok in _OK.items():
        wanted, (reason, message) = ("True", failing[kind]) if kind in failing else ("False", ok)
        old = next((c for c in conditions if c.get("type") == kind), None)
        if old is None:
            conditions.append(
                {"type": kind, "status": wanted, "lastTransitionTime": now, "reason": reason, "message": message}
            )
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != (wanted, reason, message):
            if old.get("status") != wanted:
                old["lastTransitionTime"] = now
            old.update(status=wanted, reason=reason, message=message)
            changed = True
    status["conditions"] = conditions
    return changed
