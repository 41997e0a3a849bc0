"""Validation of a PodSpec, for pods and pod templates (`ValidatePodSpec` in core/validation/validation.go).

Covers what users hit: containers (names, images, ports, env, mounts, probes, resources, security
context), policies, tolerations, DNS config and the scheduling fields, with kube's messages and field
paths; volumes are in `pod_volumes`. Rarely used corners (affinity terms, topology spread, Windows
options, sysctls) are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from shim.apiserver.kinds.addresses import (
    PROTOCOLS,
    is_valid_port_name,
    validate_ip,
    validate_port_num_or_name,
    validate_port_number,
)
from shim.apiserver.kinds.causes import (
    Cause,
    GoValue,
    duplicate,
    forbidden,
    go_string_slice,
    invalid,
    not_found,
    required,
    unsupported,
)
from shim.apiserver.kinds.meta import (
    NEGATIVE,
    is_config_map_key,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
    max_len_error,
    regex_error,
    validate_annotations,
    validate_labels,
)
from shim.apiserver.kinds.pod_volumes import (
    local_descending_path,
    validate_field_ref,
    validate_resource_field_ref,
    validate_volumes,
)
from shim.machinery.quantity import QuantityError, parse_quantity

Obj = Mapping[str, Any]

MAX_INT32 = 2**31 - 1
MAX_UID = 2**32 - 1
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_STANDARD_RESOURCES = _CONTAINER_RESOURCES | {
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
}
_SEARCH_DOMAIN_FMT = "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*"
_SEARCH_DOMAIN = re.compile(_SEARCH_DOMAIN_FMT).fullmatch
_SEARCH_DOMAIN_MSG = regex_error(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', "
    "and must start and end with an alphanumeric character",
    _SEARCH_DOMAIN_FMT,
    "example.com",
)
_RELAXED_ENV_NAME = "a valid environment variable name must consist only of printable ASCII characters other than '='"


def validate_pod_spec(spec: Obj, path: str, is_pod: bool) -> list[Cause]:
    """ValidatePodSpec; `is_pod` adds the checks kube applies to pods and not to templates."""
    causes: list[Cause] = []
    if spec.get("terminationGracePeriodSeconds") is None:
        causes.append(required(path + ".terminationGracePeriodSeconds"))
    volumes = validate_volumes(spec.get("volumes") or (), path + ".volumes", causes)
    containers = spec.get("containers") or []
    init_containers = spec.get("initContainers") or []
    _validate_containers(containers, volumes, path + ".containers", is_pod, causes)
    _validate_init_containers(init_containers, containers, volumes, path + ".initContainers", is_pod, causes)
    if spec.get("hostNetwork"):
        for i, container in enumerate(containers):
            for j, port in enumerate(container.get("ports") or ()):
                host, cont = port.get("hostPort", 0), port.get("containerPort", 0)
                if (is_pod or host) and host != cont:
                    causes.append(
                        invalid(
                            f"{path}.containers[{i}].ports[{j}].hostPort",
                            host,
                            "must match `containerPort` when `hostNetwork` is true",
                        )
                    )
    causes.extend(_enum(spec.get("restartPolicy", ""), path + ".restartPolicy", _RESTART_POLICIES))
    causes.extend(_enum(spec.get("dnsPolicy", ""), path + ".dnsPolicy", _DNS_POLICIES))
    if spec.get("nodeSelector"):
        causes.extend(validate_labels(spec["nodeSelector"], path + ".nodeSelector"))
    causes.extend(_validate_pod_security_context(spec, path + ".securityContext"))
    causes.extend(_validate_dns_config(spec, path + ".dnsConfig"))
    for i, gate in enumerate(spec.get("readinessGates") or ()):
        condition = gate.get("conditionType", "")
        causes.extend(
            invalid(f"{path}.readinessGates[{i}].conditionType", condition, m) for m in is_qualified_name(condition)
        )
    seen_gates: set[str] = set()
    for i, gate in enumerate(spec.get("schedulingGates") or ()):
        name = gate.get("name", "")
        causes.extend(invalid(f"{path}.schedulingGates[{i}]", name, m) for m in is_qualified_name(name))
        if name in seen_gates:
            causes.append(duplicate(f"{path}.schedulingGates[{i}]", name))
        seen_gates.add(name)
    for key, check in (("serviceAccountName", is_dns1123_subdomain), ("nodeName", is_dns1123_subdomain)):
        if spec.get(key):
            causes.extend(invalid(f"{path}.{key}", spec[key], m) for m in check(spec[key]))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        causes.append(
            invalid(path + ".activeDeadlineSeconds", deadline, f"must be between 1 and {MAX_INT32}, inclusive")
        )
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            causes.extend(invalid(f"{path}.{key}", spec[key], m) for m in is_dns1123_label(spec[key]))
    if spec.get("tolerations"):
        causes.extend(validate_tolerations(spec["tolerations"], path + ".tolerations"))
    for i, alias in enumerate(spec.get("hostAliases") or ()):
        causes.extend(validate_ip(alias.get("ip", ""), f"{path}.hostAliases[{i}].ip"))
        for j, hostname in enumerate(alias.get("hostnames") or ()):
            causes.extend(
                invalid(f"{path}.hostAliases[{i}].hostnames[{j}]", hostname, m) for m in is_dns1123_subdomain(hostname)
            )
    for key in ("priorityClassName", "runtimeClassName"):
        if spec.get(key):
            causes.extend(invalid(f"{path}.{key}", spec[key], m) for m in is_dns1123_subdomain(spec[key]))
    if spec.get("preemptionPolicy") is not None:
        causes.extend(_enum(spec["preemptionPolicy"], path + ".preemptionPolicy", ("PreemptLowerPriority", "Never")))
    if spec.get("overhead"):
        causes.extend(_validate_resource_list(spec["overhead"], path + ".overhead.limits"))
    os_name = (spec.get("os") or {}).get("name")
    if spec.get("os") is not None and os_name not in ("linux", "windows"):
        causes.append(unsupported(path + ".os.name", os_name or "", ("linux", "windows")))
    return causes


# kube's allowedEphemeralContainerFields: what a debugging container may not have (it serves nothing, is never
# probed or restarted, and reserves nothing)
_EPHEMERAL_FORBIDDEN = (
    "ports",
    "resources",
    "resizePolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "restartPolicy",
)


def validate_ephemeral_containers(spec: Obj, path: str) -> list[Cause]:
    """validateEphemeralContainers: each as a pod's container, named uniquely across the pod, targeting one of
    its (non-ephemeral) containers, without the fields a debugging container may not have, and no subPath."""
    causes: list[Cause] = []
    volumes = validate_volumes(spec.get("volumes") or (), "spec.volumes", [])  # their own errors are not ours
    others = {c.get("name", "") for key in ("containers", "initContainers") for c in spec.get(key) or ()}
    names = set(others)
    for i, container in enumerate(spec.get("ephemeralContainers") or ()):
        item = f"{path}[{i}]"
        _validate_container_common(container, volumes, item, True, causes)
        _check_unique_name(container, item, names, causes)
        target = container.get("targetContainerName") or ""
        if target and target not in others:
            causes.append(not_found(item + ".targetContainerName", target))
        causes.extend(
            forbidden(f"{item}.{key}", "cannot be set for an Ephemeral Container")
            for key in _EPHEMERAL_FORBIDDEN
            if container.get(key)
        )
        for j, mount in enumerate(container.get("volumeMounts") or ()):
            for key in ("subPath", "subPathExpr"):
                if mount.get(key):
                    causes.append(
                        forbidden(f"{item}.volumeMounts[{j}].{key}", "cannot be set for an Ephemeral Container")
                    )
    return causes


def validate_pod_template(template: Obj, path: str) -> list[Cause]:
    """ValidatePodTemplateSpec: the template's labels and annotations, then its spec."""
    meta = template.get("metadata") or {}
    causes = validate_labels(meta.get("labels") or {}, path + ".labels")
    causes.extend(validate_annotations(meta.get("annotations") or {}, path + ".annotations"))
    spec = template.get("spec") or {}
    causes.extend(validate_pod_spec(spec, path + ".spec", is_pod=False))
    if spec.get("ephemeralContainers"):
        causes.append(forbidden(path + ".spec.ephemeralContainers", "ephemeral containers not allowed in pod template"))
    return causes


def validate_tolerations(tolerations: Iterable[Obj], path: str) -> list[Cause]:
    """ValidateTolerations."""
    causes: list[Cause] = []
    for i, toleration in enumerate(tolerations):
        item = f"{path}[{i}]"
        key, operator = toleration.get("key", ""), toleration.get("operator", "")
        value, effect = toleration.get("value", ""), toleration.get("effect", "")
        if key:
            causes.extend(invalid(item + ".key", key, m) for m in is_qualified_name(key))
        if not key and operator != "Exists":
            causes.append(
                invalid(
                    item + ".operator",
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values and all keys"',
                )
            )
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            causes.append(
                invalid(item + ".effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set")
            )
        if operator in ("Equal", ""):
            problems = is_label_value(value)
            if problems:
                causes.append(invalid(item + ".operator", value, ";".join(problems)))
        elif operator == "Exists":
            if value:
                causes.append(invalid(item + ".operator", value, "value must be empty when `operator` is 'Exists'"))
        else:
            causes.append(unsupported(item + ".operator", operator, ("Equal", "Exists")))
        if effect and effect not in _TAINT_EFFECTS:
            causes.append(unsupported(item + ".effect", effect, _TAINT_EFFECTS))
    return causes


def nonnegative(value: Any, path: str) -> list[Cause]:
    """ValidateNonnegativeField."""
    return [invalid(path, value, NEGATIVE)] if isinstance(value, int) and value < 0 else []


def _enum(value: str, path: str, allowed: tuple[str, ...]) -> list[Cause]:
    if value in allowed:
        return []
    if not value:
        return [required(path)]
    return [unsupported(path, value, allowed)]


# -- containers ------------------------------------------------------------------------------------


def _validate_containers(
    containers: list[Obj], volumes: Mapping[str, Obj], path: str, is_pod: bool, causes: list[Cause]
) -> None:
    if not containers:
        causes.append(required(path))
        return
    names: set[str] = set()
    for i, container in enumerate(containers):
        item = f"{path}[{i}]"
        _validate_container_common(container, volumes, item, is_pod, causes)
        _check_unique_name(container, item, names, causes)
        _validate_lifecycle_and_probes(container, item, causes)
        if container.get("restartPolicy") is not None:
            causes.append(forbidden(item + ".restartPolicy", "may not be set for non-init containers"))
    causes.extend(_host_port_conflicts(containers, path))


def _check_unique_name(container: Obj, path: str, names: set[str], causes: list[Cause]) -> None:
    """The container's name must not be one of `names` (the pod's names so far, to which it is added)."""
    name = container.get("name", "")
    if name in names:
        causes.append(duplicate(path + ".name", name))
    names.add(name)


def _validate_init_containers(
    init_containers: list[Obj],
    containers: list[Obj],
    volumes: Mapping[str, Obj],
    path: str,
    is_pod: bool,
    causes: list[Cause],
) -> None:
    names = {c.get("name", "") for c in containers}
    for i, container in enumerate(init_containers):
        item = f"{path}[{i}]"
        _validate_container_common(container, volumes, item, is_pod, causes)
        restart_policy = container.get("restartPolicy")
        if restart_policy is not None and restart_policy != "Always":
            causes.append(unsupported(item + ".restartPolicy", restart_policy, ("Always",)))
        name = container.get("name", "")
        if name in names:
            causes.append(duplicate(item + ".name", name))
        elif name:
            names.add(name)
        causes.extend(_host_port_conflicts([container], path))
        if restart_policy == "Always":
            _validate_lifecycle_and_probes(container, item, causes)
            continue
        for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if container.get(key) is not None:
                causes.append(
                    forbidden(f"{item}.{key}", "may not be set for init containers without restartPolicy=Always")
                )


def _validate_container_common(
    container: Obj, volumes: Mapping[str, Obj], path: str, is_pod: bool, causes: list[Cause]
) -> None:
    name = container.get("name", "")
    if not name:
        causes.append(required(path + ".name"))
    else:
        causes.extend(invalid(path + ".name", name, m) for m in is_dns1123_label(name))
    image = container.get("image") or ""
    if not image:
        causes.append(required(path + ".image"))
    causes.extend(
        _enum(
            container.get("terminationMessagePolicy", ""),
            path + ".terminationMessagePolicy",
            _MESSAGE_POLICIES,
        )
    )
    if container.get("ports"):
        causes.extend(_validate_container_ports(container["ports"], path + ".ports"))
    if container.get("env"):
        causes.extend(_validate_env(container["env"], path + ".env"))
    if container.get("envFrom"):
        causes.extend(_validate_env_from(container["envFrom"], path + ".envFrom"))
    if container.get("volumeMounts"):
        causes.extend(_validate_volume_mounts(container["volumeMounts"], volumes, path + ".volumeMounts"))
    causes.extend(_enum(container.get("imagePullPolicy", ""), path + ".imagePullPolicy", _PULL_POLICIES))
    resources = container.get("resources")
    if resources:
        causes.extend(_validate_resources(resources, path + ".resources"))
    if container.get("securityContext"):
        causes.extend(_validate_security_context(container["securityContext"], path + ".securityContext"))
    if is_pod and image != image.strip():
        causes.append(invalid(path + ".image", image, "must not have leading or trailing whitespace"))


def _validate_container_ports(ports: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        item = f"{path}[{i}]"
        name = port.get("name")
        if name:
            problems = is_valid_port_name(name)
            if problems:
                causes.extend(invalid(item + ".name", name, m) for m in problems)
            elif name in names:
                causes.append(duplicate(item + ".name", name))
            else:
                names.add(name)
        container_port = port.get("containerPort", 0)
        if not container_port:
            causes.append(required(item + ".containerPort"))
        else:
            causes.extend(validate_port_number(container_port, item + ".containerPort"))
        if port.get("hostPort"):
            causes.extend(validate_port_number(port["hostPort"], item + ".hostPort"))
        protocol = port.get("protocol", "")
        if not protocol:
            causes.append(required(item + ".protocol"))
        elif protocol not in PROTOCOLS:
            causes.append(unsupported(item + ".protocol", protocol, PROTOCOLS))
    return causes


def _host_port_conflicts(containers: list[Obj], path: str) -> list[Cause]:
    seen: set[str] = set()
    causes = []
    for i, container in enumerate(containers):
        for j, port in enumerate(container.get("ports") or ()):
            host_port = port.get("hostPort")
            if not host_port:
                continue
            key = f"{port.get('protocol', '')}/{port.get('hostIP', '')}/{host_port}"
            if key in seen:
                causes.append(duplicate(f"{path}[{i}].ports[{j}].hostPort", key))
            seen.add(key)
    return causes


def _validate_env(env: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(env):
        item = f"{path}[{i}]"
        name = var.get("name", "")
        if not name:
            causes.append(required(item + ".name"))
        elif not _is_relaxed_env_name(name):
            causes.append(invalid(item + ".name", name, _RELAXED_ENV_NAME))
        source = var.get("valueFrom")
        if source is None:
            continue
        source_path = item + ".valueFrom"
        count = 0
        if source.get("fieldRef") is not None:
            count += 1
            causes.extend(validate_field_ref(source["fieldRef"], source_path + ".fieldRef", _ENV_FIELD_PATHS))
        if source.get("resourceFieldRef") is not None:
            count += 1
            causes.extend(
                validate_resource_field_ref(source["resourceFieldRef"], source_path + ".resourceFieldRef", volume=False)
            )
        for key in ("configMapKeyRef", "secretKeyRef"):
            if source.get(key) is not None:
                count += 1
                causes.extend(_validate_key_selector(source[key], f"{source_path}.{key}"))
        if count == 0:
            causes.append(
                invalid(
                    source_path,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                )
            )
        elif var.get("value"):
            causes.append(invalid(source_path, "", "may not be specified when `value` is not empty"))
        elif count > 1:
            causes.append(invalid(source_path, "", "may not have more than one field specified at a time"))
    return causes


def _is_relaxed_env_name(name: str) -> bool:
    return name.isascii() and name.isprintable() and "=" not in name


def _validate_key_selector(selector: Obj, path: str) -> list[Cause]:
    name, key = selector.get("name", ""), selector.get("key", "")
    causes = [invalid(path + ".name", name, m) for m in is_dns1123_subdomain(name)]
    if not key:
        causes.append(required(path + ".key"))
    else:
        causes.extend(invalid(path + ".key", key, m) for m in is_config_map_key(key))
    return causes


def _validate_env_from(sources: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, source in enumerate(sources):
        item = f"{path}[{i}]"
        prefix = source.get("prefix")
        if prefix and not _is_relaxed_env_name(prefix):
            causes.append(invalid(item + ".prefix", prefix, _RELAXED_ENV_NAME))
        count = 0
        for key in ("configMapRef", "secretRef"):
            ref = source.get(key)
            if ref is None:
                continue
            count += 1
            name = ref.get("name", "")
            if not name:
                causes.append(required(f"{item}.{key}.name"))
            else:
                causes.extend(invalid(f"{item}.{key}.name", name, m) for m in is_dns1123_subdomain(_prefix_mask(name)))
        if count == 0:
            causes.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            causes.append(invalid(path, "", "may not have more than one field specified at a time"))
    return causes


def _prefix_mask(name: str) -> str:
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def _validate_volume_mounts(mounts: list[Obj], volumes: Mapping[str, Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    mount_points: set[str] = set()
    for i, mount in enumerate(mounts):
        item = f"{path}[{i}]"
        name, mount_path = mount.get("name", ""), mount.get("mountPath", "")
        if not name:
            causes.append(required(item + ".name"))
        if name not in volumes:
            causes.append(not_found(item + ".name", name))
        if not mount_path:
            causes.append(required(item + ".mountPath"))
        if mount_path in mount_points:
            causes.append(invalid(item + ".mountPath", mount_path, "must be unique"))
        mount_points.add(mount_path)
        sub_path, sub_path_expr = mount.get("subPath"), mount.get("subPathExpr")
        if sub_path:
            causes.extend(local_descending_path(sub_path, path + ".subPath"))
        if sub_path_expr:
            if sub_path:
                causes.append(
                    invalid(item + ".subPathExpr", sub_path_expr, "subPathExpr and subPath are mutually exclusive")
                )
            causes.extend(local_descending_path(sub_path_expr, path + ".subPathExpr"))
    return causes


def _validate_lifecycle_and_probes(container: Obj, path: str, causes: list[Cause]) -> None:
    lifecycle = container.get("lifecycle")
    if lifecycle:
        for hook in ("postStart", "preStop"):
            if lifecycle.get(hook) is not None:
                causes.extend(_validate_handler(lifecycle[hook], f"{path}.lifecycle.{hook}", lifecycle=True))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(key)
        if probe is None:
            continue
        probe_path = f"{path}.{key}"
        causes.extend(_validate_handler(probe, probe_path, lifecycle=False))
        for number in (
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ):
            causes.extend(nonnegative(probe.get(number, 0), f"{probe_path}.{number}"))
        grace = probe.get("terminationGracePeriodSeconds")
        if grace is not None and grace <= 0:
            causes.append(invalid(probe_path + ".terminationGracePeriodSeconds", grace, "must be greater than 0"))
        if key != "readinessProbe" and probe.get("successThreshold", 1) != 1:
            causes.append(invalid(probe_path + ".successThreshold", probe.get("successThreshold"), "must be 1"))
        if key == "readinessProbe" and grace is not None:
            causes.append(
                invalid(
                    probe_path + ".terminationGracePeriodSeconds",
                    grace,
                    "must not be set for readinessProbes",
                )
            )


def _validate_handler(handler: Obj, path: str, lifecycle: bool) -> list[Cause]:
    allowed = ("exec", "httpGet", "tcpSocket", "sleep") if lifecycle else ("exec", "httpGet", "tcpSocket", "grpc")
    causes: list[Cause] = []
    count = 0
    for key in _HANDLERS:
        action = handler.get(key)
        if action is None or key not in allowed:
            continue
        if count:
            causes.append(forbidden(f"{path}.{key}", "may not specify more than 1 handler type"))
            continue
        count += 1
        if key == "exec" and not action.get("command"):
            causes.append(required(path + ".exec.command"))
        elif key == "httpGet":
            if not action.get("path"):
                causes.append(required(path + ".httpGet.path"))
            causes.extend(validate_port_num_or_name(action.get("port"), path + ".httpGet.port"))
            if action.get("scheme") not in ("HTTP", "HTTPS"):
                causes.append(unsupported(path + ".httpGet.scheme", action.get("scheme") or "", ("HTTP", "HTTPS")))
        elif key == "tcpSocket":
            causes.extend(validate_port_num_or_name(action.get("port"), path + ".tcpSocket.port"))
        elif key == "grpc":
            causes.extend(validate_port_number(action.get("port"), path + ".grpc.port"))
    if count == 0:
        causes.append(required(path, "must specify a handler type"))
    return causes


def _validate_resources(resources: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    causes.extend(_validate_resource_list(limits, path + ".limits"))
    causes.extend(_validate_resource_list(requests, path + ".requests"))
    for name, raw in requests.items():
        if name not in limits:
            if not _overcommit_allowed(name):
                causes.append(required(path + ".limits", "Limit must be set for non overcommitable resources"))
            continue
        try:
            request, limit = parse_quantity(raw), parse_quantity(limits[name])
        except QuantityError:
            continue
        if request.value != limit.value and not _overcommit_allowed(name):
            causes.append(invalid(path + ".requests", str(request), f"must be equal to {name} limit of {limit}"))
        elif request.value > limit.value:
            causes.append(
                invalid(path + ".requests", str(request), f"must be less than or equal to {name} limit of {limit}")
            )
    return causes


def _validate_resource_list(resources: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for name, raw in resources.items():
        item = f"{path}[{name}]"
        causes.extend(_validate_container_resource_name(name, item))
        try:
            quantity = parse_quantity(raw)
        except QuantityError as exc:
            causes.append(invalid(item, str(raw), str(exc)))
            continue
        if quantity.value < 0:
            causes.append(invalid(item, str(quantity), NEGATIVE))
        if _integer_resource(name) and quantity.value.denominator != 1:
            causes.append(invalid(item, str(quantity), "must be an integer"))
    return causes


def _validate_container_resource_name(name: str, path: str) -> list[Cause]:
    problems = is_qualified_name(name)
    if problems:
        return [invalid(path, name, m) for m in problems]
    if "/" not in name:
        causes = []
        if name not in _STANDARD_RESOURCES and not name.startswith("hugepages-"):
            causes.append(invalid(path, name, "must be a standard resource type or fully qualified"))
        if name not in _CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            causes.append(invalid(path, name, "must be a standard resource for containers"))
        return causes
    if "kubernetes.io/" not in name and (name.startswith("requests.") or is_qualified_name("requests." + name)):
        return [invalid(path, name, "doesn't follow extended resource name standard")]
    return []


def _overcommit_allowed(name: str) -> bool:
    """Native resources may be requested below their limit; hugepages and extended resources may not."""
    native = "/" not in name or "kubernetes.io/" in name
    return native and not name.startswith("hugepages-")


def _integer_resource(name: str) -> bool:
    return not ("/" not in name or "kubernetes.io/" in name) or name == "pods"


def _validate_security_context(context: Obj, path: str) -> list[Cause]:
    causes = _id_ranges(context, path, ("runAsUser", "runAsGroup"))
    if context.get("allowPrivilegeEscalation") is False and context.get("privileged"):
        causes.append(
            invalid(
                path,
                GoValue("&core.SecurityContext{...}"),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            )
        )
    proc_mount = context.get("procMount")
    if proc_mount is not None and proc_mount not in ("Default", "Unmasked"):
        causes.append(unsupported(path + ".procMount", proc_mount, ("Default", "Unmasked")))
    causes.extend(_validate_seccomp(context.get("seccompProfile"), path + ".seccompProfile"))
    return causes


def _validate_pod_security_context(spec: Obj, path: str) -> list[Cause]:
    context = spec.get("securityContext")
    if not context:
        return []
    causes = _id_ranges(context, path, ("fsGroup", "runAsUser", "runAsGroup"))
    for i, gid in enumerate(context.get("supplementalGroups") or ()):
        if not 0 <= gid <= MAX_UID:
            causes.append(
                invalid(f"{path}.supplementalGroups[{i}]", gid, f"must be between 0 and {MAX_UID}, inclusive")
            )
    if context.get("shareProcessNamespace") and spec.get("hostPID"):
        causes.append(
            invalid(
                path + ".shareProcessNamespace",
                True,
                "ShareProcessNamespace and HostPID cannot both be enabled",
            )
        )
    policy = context.get("fsGroupChangePolicy")
    if policy is not None and policy not in ("Always", "OnRootMismatch"):
        causes.append(unsupported(path + ".fsGroupChangePolicy", policy, ("Always", "OnRootMismatch")))
    causes.extend(_validate_seccomp(context.get("seccompProfile"), path + ".seccompProfile"))
    return causes


def _id_ranges(context: Obj, path: str, keys: tuple[str, ...]) -> list[Cause]:
    return [
        invalid(f"{path}.{key}", context[key], f"must be between 0 and {MAX_UID}, inclusive")
        for key in keys
        if context.get(key) is not None and not 0 <= context[key] <= MAX_UID
    ]


def _validate_seccomp(profile: Obj | None, path: str) -> list[Cause]:
    if profile is None:
        return []
    kind = profile.get("type", "")
    if not kind:
        return [required(path + ".type", "type is required when seccompProfile is set")]
    if kind not in ("Localhost", "RuntimeDefault", "Unconfined"):
        return [unsupported(path + ".type", kind, ("Localhost", "RuntimeDefault", "Unconfined"))]
    return []


def _validate_dns_config(spec: Obj, path: str) -> list[Cause]:
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if config is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.get("nameservers"):
            return [
                required(path + ".nameservers", "must provide at least one DNS nameserver when `dnsPolicy` is None")
            ]
    if config is None:
        return []
    causes: list[Cause] = []
    nameservers = config.get("nameservers") or []
    if len(nameservers) > 3:
        causes.append(
            invalid(path + ".nameservers", go_string_slice(nameservers), "must not have more than 3 nameservers")
        )
    for i, server in enumerate(nameservers):
        causes.extend(validate_ip(server, f"{path}.nameservers[{i}]"))
    searches = config.get("searches") or []
    if len(searches) > 32:
        causes.append(invalid(path + ".searches", go_string_slice(searches), "must not have more than 32 search paths"))
    if len(" ".join(searches)) > 2048:
        causes.append(
            invalid(
                path + ".searches",
                go_string_slice(searches),
                "must not have more than 2048 characters (including spaces) in the search list",
            )
        )
    for i, search in enumerate(searches):
        if search != ".":
            search = search.removesuffix(".")
            causes.extend(invalid(f"{path}.searches[{i}]", search, m) for m in _is_search_domain(search))
    for i, option in enumerate(config.get("options") or ()):
        if not option.get("name"):
            causes.append(required(f"{path}.options[{i}]", "must not be empty"))
    return causes


def _is_search_domain(value: str) -> list[str]:
    """validation.IsDNS1123SubdomainWithUnderscore (RelaxedDNSSearchValidation is on in 1.33)."""
    errs = [max_len_error(253)] if len(value) > 253 else []
    if not _SEARCH_DOMAIN(value):
        errs.append(_SEARCH_DOMAIN_MSG)
    return errs
