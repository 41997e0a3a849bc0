"""The fields each kind exposes to field selectors, and the labels a client may use for them.

They follow the registries' `GetAttrs` and the schemes' field-label conversion functions; parsing and
matching the selectors themselves is shared API machinery (`shim.machinery.selectors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shim.machinery.gofmt import go_quote
from shim.machinery.selectors import FieldRequirement, FieldSelector, SelectorError, all_of

Obj = Mapping[str, Any]

# -- the fields each kind exposes ----------------------------------------------------------------------------

Getter = Callable[[Obj], str]


@dataclass(frozen=True)
class _FieldKind:
    """What one kind lets clients select on: labels accepted, their canonical names, and how to read each."""

    getters: Mapping[str, Getter]  # canonical label -> value in the object
    aliases: Mapping[str, str]  # label a client may send -> canonical label
    unsupported: Callable[[str], str]  # the error message for any other label


def selectable_fields(group: str, resource: str, obj: Obj) -> dict[str, str]:
    """The fields kube exposes for this object (its GetAttrs field set), keyed by canonical label."""
    return {label: get(obj) for label, get in _field_kind(group, resource).getters.items()}


def supported_fields(group: str, resource: str) -> frozenset[str]:
    """Every label a client may use in a fieldSelector for this resource (kube's field label conversion)."""
    return frozenset(_field_kind(group, resource).aliases)


def convert_field_selector(group: str, resource: str, selector: FieldSelector) -> FieldSelector:
    """Rewrite client labels to canonical ones (`spec.host`, `regarding.name`).

    An unsupported label raises SelectorError with kube's message: `field label not supported: x`, or, for
    kinds without a conversion function, `"x" is not a known field selector: only "metadata.name", ...`.
    """
    kind = _field_kind(group, resource)
    converted = []
    for r in selector.requirements:
        canonical = kind.aliases.get(r.field)
        if canonical is None:
            raise SelectorError(kind.unsupported(r.field))
        converted.append(FieldRequirement(canonical, r.operator, r.value))
    return FieldSelector(converted)


def field_matcher(group: str, resource: str, selector: FieldSelector) -> Callable[[Obj], bool]:
    """A predicate over whole objects reading only the fields the converted selector names: the fast path."""
    getters = _field_kind(group, resource).getters
    return all_of([_field_check(getters.get(r.field, _absent), r) for r in selector.requirements])


def _field_check(get: Getter, r: FieldRequirement) -> Callable[[Obj], bool]:
    value = r.value
    if r.operator == "=":
        return lambda obj: get(obj) == value
    return lambda obj: get(obj) != value


def _field_kind(group: str, resource: str) -> _FieldKind:
    return _FIELD_KINDS.get((group, resource), _DEFAULT_KIND)


def _absent(obj: Obj) -> str:
    """A label conversion accepts but GetAttrs never sets (`status.podIPs`): it always reads as ""."""
    return ""


def _path(key: str, child: str | None = None) -> Getter:
    """A string field, top-level or one level down; missing reads as ""."""
    if child is None:
        return lambda obj: obj.get(key) or ""
    return lambda obj: (obj.get(key) or _NO_FIELDS).get(child) or ""


def _bool_path(key: str, child: str) -> Getter:
    """A boolean field rendered as Go's strconv.FormatBool."""
    return lambda obj: "true" if (obj.get(key) or _NO_FIELDS).get(child) is True else "false"


_NO_FIELDS: Obj = {}


def _pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    ips = status.get("podIPs")
    return (ips[0].get("ip") if ips else status.get("podIP")) or ""


def _component_or_controller(source_key: str) -> Getter:
    """An event's `source`: its source component, else its reporting controller."""

    def get(event: Obj) -> str:
        return ((event.get(source_key) or {}).get("component") or event.get("reportingController")) or ""

    return get


_REFERENCE_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def _event_getters(reference_key: str, source_key: str) -> dict[str, Getter]:
    """An Event's GetAttrs under core/v1 labels, for either shape (core/v1; events.k8s.io's `regarding`)."""
    return {f"involvedObject.{f}": _path(reference_key, f) for f in _REFERENCE_FIELDS} | {
        "reason": _path("reason"),
        "reportingComponent": _path("reportingController"),  # core/v1 calls reportingController so
        "source": _component_or_controller(source_key),
        "type": _path("type"),
    }


def _not_supported(label: str) -> str:
    return f"field label not supported: {label}"


def _not_known(label: str) -> str:
    return f'{go_quote(label)} is not a known field selector: only "metadata.name", "metadata.namespace"'


def _kind(
    getters: dict[str, Getter],
    aliases: Mapping[str, str] | None = None,
    unsupported: Callable[[str], str] = _not_supported,
) -> _FieldKind:
    """A kind whose labels are its canonical field names, plus any aliases."""
    return _FieldKind(getters, {label: label for label in getters} | dict(aliases or {}), unsupported)


_NAME = {"metadata.name": _path("metadata", "name")}
_NAMESPACED = _NAME | {"metadata.namespace": _path("metadata", "namespace")}

_FIELD_KINDS: dict[tuple[str, str], _FieldKind] = {
    ("", "pods"): _kind(
        _NAMESPACED
        | {
            "spec.nodeName": _path("spec", "nodeName"),
            "spec.restartPolicy": _path("spec", "restartPolicy"),
            "spec.schedulerName": _path("spec", "schedulerName"),
            "spec.serviceAccountName": _path("spec", "serviceAccountName"),
            "spec.hostNetwork": _bool_path("spec", "hostNetwork"),
            "status.phase": _path("status", "phase"),
            "status.podIP": _pod_ip,
            "status.nominatedNodeName": _path("status", "nominatedNodeName"),
            "status.podIPs": _absent,
        },
        {"spec.host": "spec.nodeName"},  # old v1 clients
    ),
    ("", "nodes"): _kind(_NAME | {"spec.unschedulable": _bool_path("spec", "unschedulable")}),
    ("", "namespaces"): _kind(_NAME | {"status.phase": _path("status", "phase")}),
    ("", "secrets"): _kind(_NAMESPACED | {"type": _path("type")}),
    ("", "services"): _kind(
        _NAMESPACED | {"spec.clusterIP": _path("spec", "clusterIP"), "spec.type": _path("spec", "type")}
    ),
    ("", "events"): _kind(_NAMESPACED | _event_getters("involvedObject", "source")),
    ("events.k8s.io", "events"): _FieldKind(
        _NAMESPACED | _event_getters("regarding", "deprecatedSource"),
        {label: label for label in ("metadata.name", "metadata.namespace", "reason", "type")}
        | {"reportingController": "reportingComponent"}
        | {f"regarding.{f}": f"involvedObject.{f}" for f in _REFERENCE_FIELDS},
        _not_supported,
    ),
    # pkg/registry/apps/replicaset ReplicaSetToSelectableFields (kube's field selector docs list it)
    ("apps", "replicasets"): _kind(
        _NAMESPACED | {"status.replicas": lambda rs: str((rs.get("status") or {}).get("replicas") or 0)}
    ),
    ("batch", "jobs"): _kind(
        _NAMESPACED | {"status.successful": lambda job: str((job.get("status") or {}).get("succeeded") or 0)},
        unsupported=lambda label: f"field label {go_quote(label)} not supported for batchv1.Job",
    ),
}
# kinds without a conversion function accept only metadata.name and metadata.namespace
_DEFAULT_KIND = _kind(_NAMESPACED, unsupported=_not_known)
