"""The other core/v1 kinds: Namespace, ConfigMap, Secret, ServiceAccount, Endpoints, Node and Event.

(Pods are in `pods.py`, Services in `service.py`.) Each follows its `pkg/registry/core/<kind>/strategy.go`
and the matching `Validate<Kind>` in core/validation/validation.go.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import string
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from shim.apiserver import errors
from shim.apiserver.kinds.addresses import (
    non_special_ip,
    validate_cidr,
    validate_ip,
    validate_port_number,
    validate_protocols,
)
from shim.apiserver.kinds.causes import (
    Cause,
    GoValue,
    duplicate,
    forbidden,
    go_quote,
    go_string_slice,
    invalid,
    required,
    too_long,
    undecodable,
    unsupported,
)
from shim.apiserver.kinds.meta import (
    FIELD_IMMUTABLE,
    NameRule,
    is_config_map_key,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
    validate_kube_finalizer_name,
)
from shim.apiserver.printers import (
    AGE_COLUMN,
    EMPTY,
    NAME_COLUMN,
    Cells,
    Column,
    age,
    column,
    object_meta,
    object_name,
    since,
)
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import STATUS, Strategy, Subresource
from shim.apiserver.selectable_fields import NAME, NAMESPACED, Getter, bool_field, path_field, selectable
from shim.machinery.quantity import QuantityError, canonicalize_resource_list, parse_quantity

# -- field selectors shared by both Event APIs ---------------------------------------------------------------

REFERENCE_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def event_fields(reference_key: str, source_key: str) -> dict[str, Getter]:
    """An Event's GetAttrs under core/v1 labels, for either shape (core/v1; events.k8s.io's `regarding`)."""
    return {f"involvedObject.{f}": path_field(reference_key, f) for f in REFERENCE_FIELDS} | {
        "reason": path_field("reason"),
        "reportingComponent": path_field("reportingController"),  # core/v1 calls reportingController so
        "source": _component_or_controller(source_key),
        "type": path_field("type"),
    }


def _component_or_controller(source_key: str) -> Getter:
    """An event's `source`: its source component, else its reporting controller."""

    def get(event: Mapping[str, Any]) -> str:
        return ((event.get(source_key) or {}).get("component") or event.get("reportingController")) or ""

    return get


# -- Table printer (kube's pkg/printers/internalversion/printers.go) ------------------------------


NAMESPACE_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Status", "The status of the namespace"),
    AGE_COLUMN,
]


ENDPOINTS_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Endpoints",
        (
            "The set of all endpoints is the union of all subsets. Addresses are placed into subsets "
            "according to the IPs they share. A single address with multiple ports, some of which "
            "are ready and some of which are not (because they come from different containers) will "
            "result in the address being displayed in different subsets for the different ports. No "
            "address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of "
            "addresses and ports that comprise a service."
        ),
    ),
    AGE_COLUMN,
]


CONFIGMAP_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Data",
        (
            "Data contains the configuration data. Each key must consist of alphanumeric characters, "
            "'-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. "
            "The keys stored in Data must not overlap with the keys in the BinaryData field, this is "
            "enforced during validation process."
        ),
    ),
    AGE_COLUMN,
]


SECRET_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Type",
        (
            "Used to facilitate programmatic handling of secret data. More info: "
            "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"
        ),
    ),
    column(
        "Data",
        (
            "Data contains the secret data. Each key must consist of alphanumeric characters, '-', "
            "'_' or '.'. The serialized form of the secret data is a base64 encoded string, "
            "representing the arbitrary (possibly non-string) data value here. Described in "
            "https://tools.ietf.org/html/rfc4648#section-4"
        ),
    ),
    AGE_COLUMN,
]


SERVICEACCOUNT_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Secrets",
        (
            "Secrets is a list of the secrets in the same namespace that pods running using this "
            "ServiceAccount are allowed to use. Pods are only limited to this list if this service "
            'account has a "kubernetes.io/enforce-mountable-secrets" annotation set to "true". The '
            '"kubernetes.io/enforce-mountable-secrets" annotation is deprecated since v1.32. Prefer '
            "separate namespaces to isolate access to mounted secrets. This field should not be used "
            "to find auto-generated service account token secrets for use outside of pods. Instead, "
            "tokens can be requested directly using the TokenRequest API, or service account token "
            "secrets can be manually created. More info: "
            "https://kubernetes.io/docs/concepts/configuration/secret"
        ),
    ),
    AGE_COLUMN,
]


# kube's description of Node.status.addresses, which both address columns carry
_NODE_ADDRESSES_DOC = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. "
    "More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This "
    "field is declared as mergeable, but the merge key is not sufficiently unique, which can "
    "cause data corruption when it is merged. Callers should instead use a full-replacement "
    "patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that "
    "addresses can change during the lifetime of a Node. However, there are some exceptions "
    "where this may not be possible, such as Pods that inherit a Node's address in its own "
    "status or consumers of the downward API (status.hostIP)."
)

NODE_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Status", "The status of the node"),
    column("Roles", "The roles of the node"),
    AGE_COLUMN,
    column("Version", "Kubelet Version reported by the node."),
    column(
        "Internal-IP",
        _NODE_ADDRESSES_DOC,
        1,
    ),
    column(
        "External-IP",
        _NODE_ADDRESSES_DOC,
        1,
    ),
    column("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
    column("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
    column(
        "Container-Runtime",
        ("ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        1,
    ),
]


EVENT_COLUMNS: list[Column] = [
    column("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    column("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    column(
        "Reason",
        (
            "This should be a short, machine understandable string that gives the reason for the "
            "transition into the object's current status."
        ),
    ),
    column("Object", "The object that this event is about."),
    column(
        "Subobject",
        (
            "If referring to a piece of an object instead of an entire object, this string should "
            "contain a valid JSON/Go field access statement, such as "
            "desiredState.manifest.containers[2]. For example, if the object reference is to a "
            'container within a pod, this would take on a value like: "spec.containers{name}" (where '
            '"name" refers to the name of the container that triggered the event) or if no container '
            'name is specified "spec.containers[2]" (container with index 2 in this pod). This '
            "syntax is chosen only to have some well-defined way of referencing a part of an object."
        ),
        1,
    ),
    column("Source", "The component reporting this event. Should be a short machine understandable string.", 1),
    column("Message", "A human-readable description of the status of this operation."),
    column("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", 1),
    column("Count", "The number of times this event has occurred.", 1),
    {**NAME_COLUMN, "priority": 1},
]


_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_ROLE_LABEL = "kubernetes.io/role"


def namespace_cells(ns: Printed, now_us: int) -> Cells:
    return [object_name(ns), (ns.get("status") or EMPTY).get("phase", ""), age(ns, now_us)]


def endpoints_cells(ep: Printed, now_us: int) -> Cells:
    return [object_name(ep), _format_endpoints(ep.get("subsets") or ()), age(ep, now_us)]


def _format_endpoints(subsets: Sequence[Printed]) -> str:
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = subset.get("addresses") or ()
        ports = subset.get("ports") or ()
        if not ports:  # headless services may have no ports
            count += len(addresses)
            shown.extend(a.get("ip", "") for a in addresses[: max(0, 3 - len(shown))])
            continue
        for port in ports:
            count += len(addresses)
            shown.extend(_host_port(a.get("ip", ""), port.get("port", 0)) for a in addresses[: max(0, 3 - len(shown))])
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if count > 3 else text


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def configmap_cells(cm: Printed, now_us: int) -> Cells:
    return [object_name(cm), len(cm.get("data") or ()) + len(cm.get("binaryData") or ()), age(cm, now_us)]


def secret_cells(secret: Printed, now_us: int) -> Cells:
    return [object_name(secret), secret.get("type", ""), len(secret.get("data") or ()), age(secret, now_us)]


def serviceaccount_cells(sa: Printed, now_us: int) -> Cells:
    return [object_name(sa), len(sa.get("secrets") or ()), age(sa, now_us)]


def node_cells(node: Printed, now_us: int) -> Cells:
    spec = node.get("spec") or EMPTY
    status = node.get("status") or EMPTY
    info = status.get("nodeInfo") or EMPTY
    ready = None
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready":
            ready = condition  # the last one wins, as in kube's map of conditions
    state = ["Unknown"] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    if spec.get("unschedulable"):
        state.append("SchedulingDisabled")
    addresses = status.get("addresses") or ()
    return [
        object_name(node),
        ",".join(state),
        ",".join(_node_roles(object_meta(node).get("labels") or EMPTY)) or "<none>",
        age(node, now_us),
        info.get("kubeletVersion", ""),
        next((a.get("address", "") for a in addresses if a.get("type") == "InternalIP"), "<none>"),
        next((a.get("address", "") for a in addresses if a.get("type") == "ExternalIP"), "<none>"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _node_roles(labels: Mapping[str, str]) -> list[str]:
    roles = set()
    for key, value in labels.items():
        if key.startswith(_NODE_ROLE_PREFIX) and len(key) > len(_NODE_ROLE_PREFIX):
            roles.add(key[len(_NODE_ROLE_PREFIX) :])
        elif key == _NODE_ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def event_cells(event: Printed, now_us: int) -> Cells:
    """LAST-SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST-SEEN COUNT NAME (core/v1 field names)."""
    first = since(event.get("firstTimestamp"), now_us)
    if first == "<unknown>":
        first = since(event.get("eventTime"), now_us)
    last = since(event.get("lastTimestamp"), now_us)
    if last == "<unknown>":
        last = first
    count = event.get("count") or 0
    series = event.get("series")
    if series is not None:
        last = since(series.get("lastObservedTime"), now_us)
        count = series.get("count") or 0
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = event.get("involvedObject") or EMPTY
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = event.get("source") or EMPTY
    component = source.get("component") or event.get("reportingController") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    return [
        last,
        event.get("type", ""),
        event.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {host}" if host else component,
        (event.get("message") or "").strip(),
        first,
        count,
        object_name(event),
    ]


Obj = dict[str, Any]

MAX_SECRET_SIZE = 1024 * 1024
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")
_IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


#: a namespace's `finalize`: a PUT of the namespace whose spec.finalizers alone may change
FINALIZE = Subresource("finalize", ("update",), ("", "v1", "Namespace"))


class NamespaceStrategy(Strategy):
    """Namespaces: born Active with the `kubernetes` finalizer, which only `finalize` may remove."""

    short_names = ("ns",)
    subresources = (STATUS, FINALIZE)
    table_columns = NAMESPACE_COLUMNS
    printer = staticmethod(namespace_cells)
    selectable_fields = selectable({**NAME, "status.phase": path_field("status", "phase")})

    name_rule = NameRule.LABEL

    def default(self, obj: Obj) -> None:
        _label_with_name(obj)
        status = obj.get("status")
        if status is not None and not status.get("phase"):
            status["phase"] = "Active"

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        spec = obj.setdefault("spec", {})
        finalizers = spec.get("finalizers") or []
        if "kubernetes" not in finalizers:
            spec["finalizers"] = [*finalizers, "kubernetes"]
        _label_with_name(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        _copy_field(new.setdefault("spec", {}), old.get("spec") or {}, "finalizers")
        _label_with_name(new)

    def prepare_for_finalize(self, new: Obj, old: Obj) -> None:
        """The `finalize` subresource: only spec.finalizers may change (status and the rest stay)."""
        _copy_field(new, old, "status")
        _label_with_name(new)

    def admit_delete(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if name in IMMORTAL_NAMESPACES:  # kube's NamespaceLifecycle admission
            raise errors.forbidden("", "namespaces", name, "this namespace may not be deleted")

    def deletion_blocked(self, obj: Obj) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def prepare_for_deletion(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for finalizer in (obj.get("spec") or {}).get("finalizers") or ():
            causes.extend(invalid("spec.finalizers", finalizer, m) for m in is_qualified_name(finalizer))
            causes.extend(validate_kube_finalizer_name(finalizer, "spec.finalizers"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateNamespaceUpdate, plus the status rule (a no-op when status is unchanged)."""
        causes = self.validate(new)
        phase = (new.get("status") or {}).get("phase", "")
        if not (new.get("metadata") or {}).get("deletionTimestamp"):
            if phase != "Active":
                causes.append(invalid("status.Phase", phase, "may only be 'Active' if `deletionTimestamp` is empty"))
        elif phase != "Terminating":
            causes.append(
                invalid("status.Phase", phase, "may only be 'Terminating' if `deletionTimestamp` is not empty")
            )
        return causes


class ConfigMapStrategy(Strategy):
    """ConfigMaps: valid keys, at most 1 MiB, frozen once `immutable: true`."""

    short_names = ("cm",)
    table_columns = CONFIGMAP_COLUMNS
    printer = staticmethod(configmap_cells)

    def default(self, obj: Obj) -> None:
        for value in (obj.get("binaryData") or {}).values():
            _check_base64(value, "ConfigMap")

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        total = 0
        for key, value in data.items():
            causes.extend(invalid(f"data[{key}]", key, m) for m in is_config_map_key(key))
            if key in binary:
                causes.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
            value = value or ""
            total += len(value) if value.isascii() else len(value.encode())
        for key, value in binary.items():
            causes.extend(invalid(f"binaryData[{key}]", key, m) for m in is_config_map_key(key))
            total += _decoded_length(value or "")
        if total > MAX_SECRET_SIZE:
            causes.append(too_long("", MAX_SECRET_SIZE))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = _immutable_data(new, old, ("data", "binaryData"))
        causes.extend(self.validate(new))
        return causes


class SecretStrategy(Strategy):
    """Secrets: `stringData` folded into base64 `data`, type Opaque by default and fixed once set."""

    table_columns = SECRET_COLUMNS
    printer = staticmethod(secret_cells)
    selectable_fields = selectable({**NAMESPACED, "type": path_field("type")})

    def default(self, obj: Obj) -> None:
        if not obj.get("type"):
            obj["type"] = "Opaque"
        data = obj.get("data") or {}
        for value in data.values():
            _check_base64(value, "Secret")
        string_data = obj.pop("stringData", None)
        if string_data:
            data = obj["data"] = dict(data)
            for key, value in string_data.items():
                data[key] = base64.b64encode((value or "").encode()).decode()

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        data = obj.get("data") or {}
        total = 0
        for key, value in data.items():
            causes.extend(invalid(f"data[{key}]", key, m) for m in is_config_map_key(key))
            total += _decoded_length(value or "")
        if total > MAX_SECRET_SIZE:
            causes.append(too_long("data", MAX_SECRET_SIZE))
        causes.extend(_validate_secret_type(obj, data))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if new.get("type", "") != old.get("type", ""):
            causes.append(invalid("type", new.get("type", ""), FIELD_IMMUTABLE))
        causes.extend(_immutable_data(new, old, ("data",)))
        causes.extend(self.validate(new))
        return causes


class ServiceAccountStrategy(Strategy):
    """ServiceAccounts: only metadata is validated; a delete answers the deleted account, as kube's store
    has ReturnDeletedObject (pkg/registry/core/serviceaccount/storage/storage.go)."""

    short_names = ("sa",)
    table_columns = SERVICEACCOUNT_COLUMNS
    printer = staticmethod(serviceaccount_cells)

    returns_deleted_object = True


class EndpointsStrategy(Strategy):
    """Endpoints: ports default to TCP; addresses must be real, non-special IPs."""

    short_names = ("ep",)
    table_columns = ENDPOINTS_COLUMNS
    printer = staticmethod(endpoints_cells)

    allow_create_on_update = True

    def default(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or ():
            for port in subset.get("ports") or ():
                if not port.get("protocol"):
                    port["protocol"] = "TCP"

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for i, subset in enumerate(obj.get("subsets") or ()):
            path = f"subsets[{i}]"
            if not subset.get("addresses") and not subset.get("notReadyAddresses"):
                causes.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
            for key in ("addresses", "notReadyAddresses"):
                for j, address in enumerate(subset.get(key) or ()):
                    causes.extend(_validate_endpoint_address(address, f"{path}.{key}[{j}]"))
            ports = subset.get("ports") or []
            for j, port in enumerate(ports):
                causes.extend(_validate_endpoint_port(port, len(ports) > 1, f"{path}.ports[{j}]"))
        return causes


class NodeStrategy(Strategy):
    """Nodes: created with their status (kubelets register that way); podCIDRs fixed once set."""

    short_names = ("no",)
    subresources = (STATUS,)
    table_columns = NODE_COLUMNS
    printer = staticmethod(node_cells)
    selectable_fields = selectable({**NAME, "spec.unschedulable": bool_field("spec", "unschedulable")})

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        cidr, cidrs = spec.get("podCIDR"), spec.get("podCIDRs")
        if cidr and (not cidrs or cidrs[0] != cidr):
            spec["podCIDRs"] = [cidr]
        elif cidrs and not cidr:
            spec["podCIDR"] = cidrs[0]
        status = obj.get("status")
        if status:
            try:
                for key in ("capacity", "allocatable"):
                    if status.get(key):
                        canonicalize_resource_list(status[key])
            except QuantityError as exc:
                raise undecodable("Node", "v1", exc) from None
            if status.get("allocatable") is None and status.get("capacity") is not None:
                status["allocatable"] = dict(status["capacity"])

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = _validate_taints(spec.get("taints") or ())
        causes.extend(_validate_node_resources(obj.get("status") or {}))
        cidrs = spec.get("podCIDRs") or []
        for i, cidr in enumerate(cidrs):
            causes.extend(validate_cidr(cidr, f"spec.podCIDRs[{i}]"))
        if len(cidrs) > 1:
            if len(cidrs) > 2 or len({_cidr_version(c) for c in cidrs}) != len(cidrs):
                causes.append(
                    invalid(
                        "spec.podCIDRs", go_string_slice(cidrs), "may specify no more than one CIDR for each IP family"
                    )
                )
            for i, cidr in enumerate(cidrs):
                if cidr in cidrs[:i]:
                    causes.append(duplicate(f"spec.podCIDRs[{i}]", cidr))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateNodeUpdate: podCIDRs and providerID may only go from unset to set."""
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        causes = self.validate(new)
        old_cidrs = old_spec.get("podCIDRs") or []
        if old_cidrs and old_cidrs != (spec.get("podCIDRs") or []):
            causes.append(forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
        old_provider = old_spec.get("providerID")
        if old_provider and old_provider != spec.get("providerID"):
            causes.append(
                forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid')
            )
        if spec.get("externalID") != old_spec.get("externalID"):
            causes.append(forbidden("spec.externalID", "may not be updated"))
        seen: list[Any] = []
        for i, address in enumerate((new.get("status") or {}).get("addresses") or ()):
            if address in seen:
                causes.append(duplicate(f"status.addresses[{i}]", GoValue(_go_node_address(address))))
            seen.append(address)
        return causes


class EventStrategy(Strategy):
    """core/v1 Events: the legacy validation (no name rule of their own beyond the generic one)."""

    short_names = ("ev",)
    table_columns = EVENT_COLUMNS
    printer = staticmethod(event_cells)
    selectable_fields = selectable({**NAMESPACED, **event_fields("involvedObject", "source")})

    allow_create_on_update = True

    name_rule = NameRule.PATH_SEGMENT

    def default(self, obj: Obj) -> None:
        # zero-valued fields Go's encoder still writes
        for key in ("eventTime", "firstTimestamp", "lastTimestamp"):
            obj.setdefault(key, None)
        for key in ("reportingComponent", "reportingInstance"):
            obj.setdefault(key, "")
        for key in ("involvedObject", "source"):
            if obj.get(key) is None:
                obj[key] = {}

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_legacy_event(
            namespace=(obj.get("metadata") or {}).get("namespace", ""),
            event_time=obj.get("eventTime"),
            involved_namespace=(obj.get("involvedObject") or {}).get("namespace", ""),
            controller=obj.get("reportingComponent") or "",
            instance=obj.get("reportingInstance") or "",
            action=obj.get("action") or "",
            reason=obj.get("reason") or "",
            message=obj.get("message") or "",
        )


def validate_legacy_event(
    namespace: str,
    event_time: Any,
    involved_namespace: str,
    controller: str,
    instance: str,
    action: str,
    reason: str,
    message: str,
) -> list[Cause]:
    """legacyValidateEvent: every event, whichever API wrote it, passes this (paths use core field names)."""
    causes: list[Cause] = []
    mismatch = invalid("involvedObject.namespace", involved_namespace, "does not match event.namespace")
    if not event_time:
        if (not involved_namespace and namespace not in ("", "default")) or (
            involved_namespace and namespace != involved_namespace
        ):
            causes.append(mismatch)
    else:
        if not involved_namespace and namespace not in ("default", "kube-system"):
            causes.append(mismatch)
        if not controller:
            causes.append(required("reportingController"))
        causes.extend(invalid("reportingController", controller, m) for m in is_qualified_name(controller))
        for path, value, limit in (
            ("reportingInstance", instance, 128),
            ("action", action, 128),
            ("reason", reason, 128),
        ):
            if not value:
                causes.append(required(path))
            if len(value) > limit:
                causes.append(invalid(path, "", f"can have at most {limit} characters"))
        if len(message) > 1024:
            causes.append(invalid("message", "", "can have at most 1024 characters"))
    causes.extend(invalid("namespace", namespace, m) for m in is_dns1123_subdomain(namespace))
    return causes


def _label_with_name(namespace: Obj) -> None:
    """Every namespace carries kubernetes.io/metadata.name=<its name>, whatever the client sent."""
    meta = namespace.setdefault("metadata", {})
    name = meta.get("name")
    if name:
        labels = meta.get("labels") or {}
        if labels.get(NAMESPACE_NAME_LABEL) != name:
            meta["labels"] = {**labels, NAMESPACE_NAME_LABEL: name}


def _copy_field(target: Obj, source: Mapping[str, Any], key: str) -> None:
    if key in source:
        target[key] = source[key]
    else:
        target.pop(key, None)


def _immutable_data(new: Obj, old: Obj, keys: tuple[str, ...]) -> list[Cause]:
    """An object created with `immutable: true` keeps its data and stays immutable."""
    if not old.get("immutable"):
        return []
    causes = []
    if not new.get("immutable"):
        causes.append(forbidden("immutable", _IMMUTABLE_WHEN_SET))
    causes.extend(forbidden(key, _IMMUTABLE_WHEN_SET) for key in keys if (new.get(key) or {}) != (old.get(key) or {}))
    return causes


def _check_base64(value: Any, kind: str) -> None:
    """Go's decoder rejects bad base64 in []byte fields before anything else happens."""
    text = value or ""
    bad = next((i for i, c in enumerate(text) if c not in _BASE64), None)
    if bad is None:
        try:
            base64.b64decode(text, validate=True)
            return
        except binascii.Error:
            bad = len(text) - len(text) % 4 if len(text) % 4 else max(text.find("="), 0)
    raise undecodable(kind, "v1", ValueError(f"illegal base64 data at input byte {bad}"))


def _decoded_length(value: str) -> int:
    return len(value) * 3 // 4 - value[-2:].count("=")


def _validate_secret_type(secret: Obj, data: Mapping[str, Any]) -> list[Cause]:
    kind = secret.get("type", "")
    if kind == "kubernetes.io/service-account-token":
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            return [required("metadata.annotations[kubernetes.io/service-account.name]")]
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in data:
            return [required(f"data[{key}]")]
        try:
            orjson.loads(base64.b64decode(data[key] or ""))
        except (orjson.JSONDecodeError, binascii.Error) as exc:
            return [invalid(f"data[{key}]", "<secret contents redacted>", str(exc))]
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
    elif kind == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            return [required("data[ssh-privatekey]")]
    elif kind == "kubernetes.io/tls":
        return [required(f"data[{key}]") for key in ("tls.crt", "tls.key") if key not in data]
    return []


def _validate_endpoint_address(address: Obj, path: str) -> list[Cause]:
    ip = address.get("ip", "")
    problems = validate_ip(ip, path + ".ip")
    causes = list(problems)
    hostname = address.get("hostname")
    if hostname:
        causes.extend(invalid(path + ".hostname", hostname, m) for m in is_dns1123_label(hostname))
    node_name = address.get("nodeName")
    if node_name is not None:
        causes.extend(invalid(path + ".nodeName", node_name, m) for m in is_dns1123_subdomain(node_name))
    if problems:
        causes.append(invalid(path + ".ip", ip, "must be a valid IP address"))
    else:
        causes.extend(non_special_ip(ip, path + ".ip"))
    return causes


def _validate_endpoint_port(port: Obj, require_name: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = port.get("name", "")
    if require_name and not name:
        causes.append(required(path + ".name"))
    elif name:
        causes.extend(invalid(path + ".name", name, m) for m in is_dns1123_label(name))
    causes.extend(validate_port_number(port.get("port", 0), path + ".port"))
    causes.extend(validate_protocols(port, path))
    return causes


def _validate_taints(taints: Any) -> list[Cause]:
    """validateNodeTaints (kube reports them under metadata.taints)."""
    causes: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        path = f"metadata.taints[{i}]"
        key, value, effect = taint.get("key", ""), taint.get("value", ""), taint.get("effect", "")
        causes.extend(invalid(path + ".key", key, m) for m in is_qualified_name(key))
        problems = is_label_value(value)
        if problems:
            causes.append(invalid(path + ".value", value, ";".join(problems)))
        if not effect:
            causes.append(required(path + ".effect"))
        elif effect not in _TAINT_EFFECTS:
            causes.append(unsupported(path + ".effect", effect, _TAINT_EFFECTS))
        if (effect, key) in seen:
            cause = duplicate(
                path,
                GoValue(
                    f"core.Taint{{Key:{go_quote(key)}, Value:{go_quote(value)}, "
                    f"Effect:{go_quote(effect)}, TimeAdded:<nil>}}"
                ),
            )
            cause["message"] += ": taints must be unique by key and effect pair"
            causes.append(cause)
            continue
        seen.add((effect, key))
    return causes


def _validate_node_resources(status: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("capacity", "allocatable"):
        for name, raw in (status.get(key) or {}).items():
            try:
                quantity = parse_quantity(raw)
            except QuantityError:
                continue
            if quantity.value < 0:
                causes.append(invalid(f"status.{key}.{name}", str(quantity), "must be greater than or equal to 0"))
    return causes


def _cidr_version(value: str) -> int:
    try:
        return ipaddress.ip_network(value, strict=False).version
    except ValueError:
        return 0


def _go_node_address(address: Mapping[str, Any]) -> str:
    return (
        f"core.NodeAddress{{Type:{go_quote(address.get('type', ''))}, Address:{go_quote(address.get('address', ''))}}}"
    )
