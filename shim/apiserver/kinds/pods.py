"""Pods: defaulting, the admission plugins that shape every pod, create/update rules and the QoS class.

Follows `pkg/registry/core/pod/strategy.go`, `ValidatePodCreate`/`ValidatePodUpdate`/`ValidatePodStatusUpdate`
and the ServiceAccount, DefaultTolerationSeconds and Priority admission plugins.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from fractions import Fraction
from typing import Any

import orjson

from shim.apiserver import errors
from shim.apiserver.errors import ApiError
from shim.apiserver.kinds.addresses import validate_ip
from shim.apiserver.kinds.causes import Cause, forbidden, go_string_map, invalid, required, undecodable
from shim.apiserver.kinds.meta import FIELD_IMMUTABLE, is_dns1123_subdomain, is_qualified_name
from shim.apiserver.kinds.pod_defaults import default_pod_only_fields, default_pod_spec
from shim.apiserver.kinds.pod_printer import POD_COLUMNS, pod_cells, pod_row_conditions
from shim.apiserver.kinds.pod_validation import MAX_INT32, validate_ephemeral_containers, validate_pod_spec
from shim.apiserver.registry import STATUS, StoredObjects, Strategy, Subresource
from shim.apiserver.selectable_fields import NAMESPACED, Getter, absent, bool_field, path_field, selectable
from shim.machinery.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_TOLERATION_SECONDS = 300
_DEFAULT_ACCOUNT_LOOKUPS = 10
_NODE_NOT_READY = "node.kubernetes.io/not-ready"
_NODE_UNREACHABLE = "node.kubernetes.io/unreachable"
_UPDATABLE_FIELDS = ",".join(
    (
        "`spec.containers[*].image`",
        "`spec.initContainers[*].image`",
        "`spec.activeDeadlineSeconds`",
        "`spec.tolerations` (only additions to existing tolerations)",
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    )
)
_SYSTEM_CONDITIONS = frozenset({"PodScheduled", "Ready", "Initialized"})

# a pod's subresources besides status (kube's pod REST storage): the node-served ones answer with streams
BINDING = Subresource("binding", ("create",), ("", "v1", "Binding"))
EVICTION = Subresource("eviction", ("create",), ("policy", "v1", "Eviction"))
EPHEMERAL_CONTAINERS = Subresource("ephemeralcontainers", ("get", "patch", "update"))
LOG = Subresource("log", ("get",), ("", "v1", "Pod"))
EXEC = Subresource("exec", ("create", "get"), ("", "v1", "PodExecOptions"))
ATTACH = Subresource("attach", ("create", "get"), ("", "v1", "PodAttachOptions"))
PORTFORWARD = Subresource("portforward", ("create", "get"), ("", "v1", "PodPortForwardOptions"))


def _pod_ip(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    ips = status.get("podIPs")
    return (ips[0].get("ip") if ips else status.get("podIP")) or ""


_POD_FIELDS: dict[str, Getter] = {
    **NAMESPACED,
    "spec.nodeName": path_field("spec", "nodeName"),
    "spec.restartPolicy": path_field("spec", "restartPolicy"),
    "spec.schedulerName": path_field("spec", "schedulerName"),
    "spec.serviceAccountName": path_field("spec", "serviceAccountName"),
    "spec.hostNetwork": bool_field("spec", "hostNetwork"),
    "status.phase": path_field("status", "phase"),
    "status.podIP": _pod_ip,
    "status.nominatedNodeName": path_field("status", "nominatedNodeName"),
    "status.podIPs": absent,
}


class PodStrategy(Strategy):
    """Pods (core/v1)."""

    short_names = ("po",)
    categories = ("all",)
    subresources = (STATUS, BINDING, EVICTION, EPHEMERAL_CONTAINERS, LOG, EXEC, ATTACH, PORTFORWARD)
    table_columns = POD_COLUMNS
    printer = staticmethod(pod_cells)
    row_conditions = staticmethod(pod_row_conditions)
    selectable_fields = selectable(_POD_FIELDS, {"spec.host": "spec.nodeName"})  # spec.host: old v1 clients
    tracks_generation = True
    returns_deleted_object = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        try:
            default_pod_spec(spec)
            default_pod_only_fields(spec)
        except QuantityError as exc:
            raise undecodable("Pod", "v1", exc) from None
        if obj.get("status"):
            _sync_status_ips(obj["status"])

    async def admit_create(self, obj: Obj, stored: StoredObjects) -> None:
        """ServiceAccount admission (the pod's account must exist), then Priority admission: the pod's
        PriorityClass (named, or the global default) sets its priority (kube's plugin order)."""
        await require_service_account(
            obj, lambda namespace, name: stored.get_object("", "v1", "serviceaccounts", namespace, name)
        )
        name = obj.get("spec", {}).get("priorityClassName")
        chosen = None
        if name:
            try:
                chosen = await stored.get_object("scheduling.k8s.io", "v1", "priorityclasses", None, name)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        else:
            classes = await stored.list_all("scheduling.k8s.io", "v1", "priorityclasses")
            chosen = next((pc for pc in classes if pc.get("globalDefault")), None)
        admit_pod_priority(obj, chosen)

    def graceful_deletion(self, obj: Obj, requested: int | None) -> int:
        """A pod bound to a node and still running stops there first: the grace period asked for, else its
        spec's terminationGracePeriodSeconds; any other pod goes at once."""
        spec = obj.get("spec", {})
        if not spec.get("nodeName") or obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(requested, 0)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if MIRROR_POD_ANNOTATION not in ((obj.get("metadata") or {}).get("annotations") or {}):
            admit_service_account(spec)
        add_default_tolerations(spec)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        # DefaultTolerationSeconds admits updates too; the tolerations a PUT drops come back
        add_default_tolerations(new.setdefault("spec", {}))

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        status = new.setdefault("status", {})
        if not status.get("qosClass") and (old.get("status") or {}).get("qosClass"):
            status["qosClass"] = old["status"]["qosClass"]
        _sync_status_ips(status)

    def prepare_for_ephemeral_containers_update(self, new: Obj, old: Obj) -> None:
        """EphemeralContainersStrategy.PrepareForUpdate: the stored pod with the body's ephemeral containers."""
        wanted = (new.get("spec") or {}).get("ephemeralContainers")
        new.clear()
        new.update(orjson.loads(orjson.dumps(old)))
        if wanted:
            new["spec"]["ephemeralContainers"] = wanted
        else:
            new["spec"].pop("ephemeralContainers", None)
        self.default(new)  # the added containers get the defaults of any container (pull policy, message path)

    def validate_ephemeral_containers_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidatePodEphemeralContainersUpdate: the new ones valid, the existing ones neither removed nor changed."""
        if MIRROR_POD_ANNOTATION in ((old.get("metadata") or {}).get("annotations") or {}):
            return [forbidden("", "static pods do not support ephemeral containers")]
        spec = new.get("spec") or {}
        causes = validate_ephemeral_containers(spec, "spec.ephemeralContainers")
        wanted = {c.get("name"): c for c in spec.get("ephemeralContainers") or ()}
        for existing in (old.get("spec") or {}).get("ephemeralContainers") or ():
            name = existing.get("name", "")
            if name not in wanted:
                why = f'existing ephemeral containers "{name}" may not be removed\n'
                causes.append(forbidden("spec.ephemeralContainers", why))
            elif _semantic(wanted[name]) != _semantic(existing):
                diff = _spec_diff(_semantic(existing), _semantic(wanted[name])).replace(
                    "core.PodSpec", "core.EphemeralContainer"
                )
                why = f'existing ephemeral containers "{name}" may not be changed\n{diff}'
                causes.append(forbidden("spec.ephemeralContainers", why))
        return causes

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = validate_pod_spec(spec, "spec", is_pod=True)
        if spec.get("ephemeralContainers"):
            causes.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
        if spec.get("nodeName") and spec.get("schedulingGates"):
            causes.append(forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidatePodUpdate, plus ValidatePodStatusUpdate's checks (a no-op when status is unchanged)."""
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        causes = validate_pod_spec(spec, "spec", is_pod=True)
        causes.extend(_validate_spec_update(spec, old_spec))
        causes.extend(_validate_status_update(new, old))
        return causes


def admit_service_account(spec: Obj) -> None:
    """ServiceAccount admission: a pod that names no service account runs as `default`.

    The `kube-api-access-*` token volume kube also mounts is not added: nothing here issues tokens yet.
    """
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = "default"
        spec["serviceAccount"] = "default"


async def require_service_account(pod: Obj, get_account: Callable[[str, str], Awaitable[Any]]) -> None:
    """ServiceAccount admission: a pod may only run as a service account that exists (403 otherwise).

    `get_account(namespace, name)` reads it (ApiError 404 when missing). `default` is looked up ten times
    100-200 ms apart, as kube's plugin does: the serviceaccount controller creates it just after its namespace.
    The name in the message is the pod's generateName when it has no name yet (kube admits before naming)."""
    meta = pod.get("metadata") or {}
    if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
        return
    namespace = meta.get("namespace") or ""
    account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    attempts = _DEFAULT_ACCOUNT_LOOKUPS if account == "default" else 1
    interval = random.uniform(0.1, 0.2)
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(interval)
        try:
            await get_account(namespace, account)
            return
        except ApiError as exc:
            if exc.code != 404:
                raise
    why = f'error looking up service account {namespace}/{account}: serviceaccount "{account}" not found'
    raise errors.forbidden("", "pods", meta.get("name") or meta.get("generateName") or "", why)


def add_default_tolerations(spec: Obj) -> None:
    """DefaultTolerationSeconds admission: tolerate not-ready and unreachable nodes for 300s by default."""
    tolerations = spec.get("tolerations") or []
    not_ready = unreachable = False
    for toleration in tolerations:
        key, effect = toleration.get("key", ""), toleration.get("effect", "")
        if effect in ("", "NoExecute"):
            not_ready = not_ready or key in ("", _NODE_NOT_READY)
            unreachable = unreachable or key in ("", _NODE_UNREACHABLE)
    if not_ready and unreachable:
        return
    tolerations = list(tolerations)
    for present, key in ((not_ready, _NODE_NOT_READY), (unreachable, _NODE_UNREACHABLE)):
        if not present:
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )
    spec["tolerations"] = tolerations


def admit_pod_priority(pod: Obj, priority_class: Obj | None) -> None:
    """Priority admission, on pod create: spec.priority and preemptionPolicy from the PriorityClass.

    `priority_class` is the class the pod names (spec.priorityClassName), or when it names none the class
    marked globalDefault, or None. Raises 403 Forbidden as kube does when the named class does not exist
    or the pod states a priority that differs from the class's.
    """
    spec = pod.setdefault("spec", {})
    name = spec.get("priorityClassName") or ""
    if priority_class is None:
        if name:
            raise _forbidden(pod, f"no PriorityClass with name {name} was found")
        priority, policy = 0, "PreemptLowerPriority"
    else:
        spec["priorityClassName"] = priority_class["metadata"]["name"]
        priority = priority_class.get("value", 0)
        policy = priority_class.get("preemptionPolicy") or "PreemptLowerPriority"
    stated = spec.get("priority")
    if stated is not None and stated != priority:
        raise _forbidden(
            pod,
            f"the integer value of priority ({stated}) must not be provided in pod spec; "
            f"priority admission controller computed {priority} from the given PriorityClass name",
        )
    spec["priority"] = priority
    stated_policy = spec.get("preemptionPolicy")
    if stated_policy is not None and stated_policy != policy:
        raise _forbidden(
            pod,
            f"the string value of PreemptionPolicy ({stated_policy}) must not be provided in pod "
            f"spec; priority admission controller computed {policy} from the given PriorityClass name",
        )
    spec["preemptionPolicy"] = policy


def qos_class(spec: Obj) -> str:
    """qos.ComputePodQOS: BestEffort, Burstable or Guaranteed, from the containers' cpu/memory.

    Requests a container leaves out count as its limits, as SetDefaults_Pod makes them.
    """
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        resources = container.get("resources") or {}
        container_limits = resources.get("limits") or {}
        effective_requests = {**container_limits, **(resources.get("requests") or {})}
        found = 0
        for name in ("cpu", "memory"):
            request = _positive(effective_requests.get(name))
            if request:
                requests[name] = requests.get(name, Fraction(0)) + request
            limit = _positive(container_limits.get(name))
            if limit:
                limits[name] = limits.get(name, Fraction(0)) + limit
                found += 1
        guaranteed = guaranteed and found == 2
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and len(requests) == len(limits) and all(limits.get(n) == v for n, v in requests.items()):
        return "Guaranteed"
    return "Burstable"


def _positive(raw: Any) -> Fraction | None:
    if raw is None:
        return None
    try:
        value = parse_quantity(raw).value
    except QuantityError as exc:
        raise undecodable("Pod", "v1", exc) from None
    return value if value > 0 else None


def _forbidden(pod: Obj, why: str) -> ApiError:
    name = (pod.get("metadata") or {}).get("name", "")
    return ApiError(403, "Forbidden", f'pods "{name}" is forbidden: {why}', {"name": name, "kind": "pods"})


def _sync_status_ips(status: Obj) -> None:
    """The v1 conversion between podIP/podIPs and hostIP/hostIPs: the singular wins, the plural leads."""
    for single, plural in (("podIP", "podIPs"), ("hostIP", "hostIPs")):
        ip, ips = status.get(single), status.get(plural)
        if ip and (not ips or ips[0].get("ip") != ip):
            status[plural] = [{"ip": ip}]
        elif ips and not ip:
            status[single] = ips[0].get("ip", "")


# -- updates -----------------------------------------------------------------------------------------------


def _validate_spec_update(spec: Obj, old_spec: Obj) -> list[Cause]:
    """The fields a pod update may change: images, activeDeadlineSeconds, added tolerations, removed gates."""
    causes: list[Cause] = []
    for key in ("containers", "initContainers"):
        new_list, old_list = spec.get(key) or [], old_spec.get(key) or []
        if len(new_list) != len(old_list):
            return [*causes, forbidden(f"spec.{key}", "pod updates may not add or remove containers")]
        for i, container in enumerate(new_list):
            image = container.get("image") or ""
            if not image:
                causes.append(required(f"spec.{key}[{i}].image"))
            elif image != image.strip():
                causes.append(invalid(f"spec.{key}[{i}].image", image, "must not have leading or trailing whitespace"))
    deadline, old_deadline = spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    if deadline is not None:
        if not 0 <= deadline <= MAX_INT32:
            return [
                *causes,
                invalid("spec.activeDeadlineSeconds", deadline, f"must be between 0 and {MAX_INT32}, inclusive"),
            ]
        if old_deadline is not None and old_deadline < deadline:
            return [
                *causes,
                invalid("spec.activeDeadlineSeconds", deadline, "must be less than or equal to previous value"),
            ]
    elif old_deadline is not None:
        causes.append(
            invalid("spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value")
        )
    causes.extend(_only_added_tolerations(spec.get("tolerations") or [], old_spec.get("tolerations") or []))
    old_gates = {g.get("name") for g in old_spec.get("schedulingGates") or ()}
    for i, gate in enumerate(spec.get("schedulingGates") or ()):
        if gate.get("name") not in old_gates:
            causes.append(
                forbidden(
                    f"spec.schedulingGates[{i}].name",
                    f"only deletion is allowed, but found new scheduling gate '{gate.get('name')}'",
                )
            )
    if spec == old_spec:
        return causes
    munged = _munge_updatable(spec, old_spec)
    if old_spec.get("schedulingGates"):
        selector, old_selector = munged.get("nodeSelector") or {}, old_spec.get("nodeSelector") or {}
        if any(selector.get(k) != v for k, v in old_selector.items()):
            causes.append(
                invalid(
                    "spec.nodeSelector",
                    go_string_map(selector),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                )
            )
        munged["nodeSelector"] = old_spec.get("nodeSelector")
    before, after = _semantic(old_spec), _semantic(munged)
    if before != after:
        causes.append(
            forbidden(
                "spec",
                f"pod updates may not change fields other than {_UPDATABLE_FIELDS}\n" + _spec_diff(before, after),
            )
        )
    return causes


def _munge_updatable(spec: Obj, old_spec: Obj) -> Obj:
    """A shallow copy of the new spec with every field a pod update may change taken from the old one."""
    munged = dict(spec)
    for key in ("containers", "initContainers"):
        if key in spec:
            munged[key] = [
                _with_image(c, o.get("image")) for c, o in zip(spec[key], old_spec.get(key) or [], strict=True)
            ]
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        if key in old_spec:
            munged[key] = old_spec[key]
        else:
            munged.pop(key, None)
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if old_grace is not None and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    return munged


def _with_image(container: Obj, image: Any) -> Obj:
    copy = dict(container)
    copy["image"] = image
    return copy


def _only_added_tolerations(new: list[Obj], old: list[Obj]) -> list[Cause]:
    for toleration in old:
        wanted = {k: v for k, v in toleration.items() if k != "tolerationSeconds"}
        if not any({k: v for k, v in t.items() if k != "tolerationSeconds"} == wanted for t in new):
            return [
                forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds")
            ]
    return []


def _semantic(value: Any) -> Any:
    """apiequality.Semantic's view of JSON: absent, null, empty and zero values are all the same."""
    if isinstance(value, dict):
        return {k: s for k, v in value.items() if (s := _semantic(v)) not in (None, "", 0, False, [], {})}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def _spec_diff(before: Obj, after: Obj) -> str:
    """A diff of the changed top-level fields, in the spirit of the go-cmp diff kube appends."""
    lines = ["  core.PodSpec{"]
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            if key in before:
                lines.append(f"- \t{key}: {orjson.dumps(before[key]).decode()},")
            if key in after:
                lines.append(f"+ \t{key}: {orjson.dumps(after[key]).decode()},")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def _validate_status_update(new: Obj, old: Obj) -> list[Cause]:
    """ValidatePodStatusUpdate's checks that concern status itself."""
    status, old_status = new.get("status") or {}, old.get("status") or {}
    causes: list[Cause] = []
    for i, condition in enumerate(status.get("conditions") or ()):
        kind = condition.get("type", "")
        if kind not in _SYSTEM_CONDITIONS:
            causes.extend(invalid(f"metadata.conditions[{i}].Type", kind, m) for m in is_qualified_name(kind))
    nominated = status.get("nominatedNodeName")
    if nominated and nominated != old_status.get("nominatedNodeName"):
        causes.extend(invalid("status.nominatedNodeName", nominated, m) for m in is_dns1123_subdomain(nominated))
    if status.get("qosClass", "") != old_status.get("qosClass", ""):
        causes.append(invalid("status.qosClass", status.get("qosClass", ""), FIELD_IMMUTABLE))
    restart_policy = (old.get("spec") or {}).get("restartPolicy")
    if restart_policy != "Always":
        causes.extend(
            _state_transitions(
                status.get("containerStatuses") or [],
                old_status.get("containerStatuses") or [],
                restart_policy,
            )
        )
    for key in ("podIPs", "hostIPs"):
        for i, entry in enumerate(status.get(key) or ()):
            causes.extend(validate_ip(entry.get("ip", ""), f"status.{key}[{i}]"))
    host_ips = status.get("hostIPs")
    if host_ips and status.get("hostIP") != host_ips[0].get("ip"):
        causes.append(invalid("status.hostIPs[0].ip", host_ips[0].get("ip", ""), "must be equal to `hostIP`"))
    return causes


def _state_transitions(statuses: list[Obj], old_statuses: list[Obj], restart_policy: str | None) -> list[Cause]:
    """A terminated container of a pod that does not restart it may not come back."""
    causes = []
    running_again = {s.get("name") for s in statuses if not (s.get("state") or {}).get("terminated")}
    for i, old in enumerate(old_statuses):
        terminated = (old.get("state") or {}).get("terminated")
        if not terminated or (terminated.get("exitCode", 0) != 0 and restart_policy == "OnFailure"):
            continue
        if old.get("name") in running_again:
            causes.append(
                forbidden(f"status.containerStatuses[{i}].state", "may not be transitioned to non-terminated state")
            )
    return causes
