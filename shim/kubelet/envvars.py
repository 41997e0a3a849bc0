"""A container's environment as kubelet builds it (makeEnvironmentVariables), and `$(VAR)` expansion.

Order of precedence: envFrom sources in order, then `env` in order (each `value` expanded against what came
before it and the service variables), then the service link variables nobody overrode.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from shim.kubelet.downward import DownwardError, PodAddresses, field_value, resource_value
from shim.kubelet.refs import ReferencedObjects

Obj = dict[str, Any]
Warn = Callable[[str, str], Awaitable[None]]

_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*").fullmatch
MASTER_SERVICE_NAMESPACE = "default"
MASTER_SERVICES = frozenset({"kubernetes"})


class ContainerConfigError(Exception):
    """The container cannot be configured yet (CreateContainerConfigError); the message is kubelet's."""


async def container_env(
    pod: Obj,
    container: Obj,
    refs: ReferencedObjects,
    addresses: PodAddresses,
    allocatable: dict[str, str],
    warn: Warn,
) -> dict[str, str]:
    """Every variable the container starts with. Raises ContainerConfigError for a missing required source."""
    spec = pod["spec"]
    services = await service_env(refs, pod["metadata"]["namespace"], spec.get("enableServiceLinks", True))
    env: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        await _add_env_from(pod, source, refs, env, warn)
    for var in container.get("env") or ():
        value = await _env_value(pod, container, var, refs, addresses, allocatable, env, services)
        if value is not None:
            env[var["name"]] = value
    for name, value in services.items():
        env.setdefault(name, value)
    return env


def expand(text: str, *contexts: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` is a literal `$`, the rest stays as is."""
    out: list[str] = []
    i, checkpoint, n = 0, 0, len(text)
    while i < n:
        if text[i] == "$" and i + 1 < n:
            out.append(text[checkpoint:i])
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 1
            elif nxt == "(" and (close := text.find(")", i + 2)) != -1:
                name = text[i + 2 : close]
                out.append(next((c[name] for c in contexts if name in c), f"$({name})"))
                i = close
            else:
                out.append("$" + nxt)
                i += 1
            checkpoint = i + 1
        i += 1
    out.append(text[checkpoint:])
    return "".join(out)


def expand_command(container: Obj, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The container's command and args with `$(VAR)` references to its environment expanded."""
    return (
        [expand(word, env) for word in container.get("command") or ()],
        [expand(word, env) for word in container.get("args") or ()],
    )


async def service_env(refs: ReferencedObjects, namespace: str, enable_service_links: bool) -> dict[str, str]:
    """The docker-link style variables of the services a pod sees (envvars.FromServices).

    The `kubernetes` service of the default namespace is always included; the pod's own namespace's services
    only with enableServiceLinks.
    """
    chosen: dict[str, Obj] = {}
    for service in await refs.services(MASTER_SERVICE_NAMESPACE):
        if service["metadata"]["name"] in MASTER_SERVICES:
            chosen[service["metadata"]["name"]] = service
    if enable_service_links:
        for service in await refs.services(namespace):
            chosen[service["metadata"]["name"]] = service
    env: dict[str, str] = {}
    for service in chosen.values():
        env.update(_service_variables(service))
    return env


def _service_variables(service: Obj) -> dict[str, str]:
    spec = service.get("spec") or {}
    ip, ports = spec.get("clusterIP", ""), spec.get("ports") or []
    if ip in ("", "None") or not ports:
        return {}
    prefix = service["metadata"]["name"].replace("-", "_").upper()
    env = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0]["port"])}
    for port in ports:
        if port.get("name"):
            env[f"{prefix}_SERVICE_PORT_{port['name'].replace('-', '_').upper()}"] = str(port["port"])
    host = f"[{ip}]" if ":" in ip else ip
    for i, port in enumerate(ports):
        protocol = (port.get("protocol") or "TCP").lower()
        url = f"{protocol}://{host}:{port['port']}"
        if i == 0:
            env[f"{prefix}_PORT"] = url
        link = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
        env.update({link: url, f"{link}_PROTO": protocol, f"{link}_PORT": str(port["port"]), f"{link}_ADDR": ip})
    return env


async def _add_env_from(pod: Obj, source: Obj, refs: ReferencedObjects, env: dict[str, str], warn: Warn) -> None:
    if source.get("configMapRef"):
        ref, kind, label = source["configMapRef"], "configmap", "configMap"
        data = await refs.config_map_data(ref.get("name", ""))
    elif source.get("secretRef"):
        ref, kind, label = source["secretRef"], "secret", "secret"
        files = await refs.secret_files(ref.get("name", ""))
        data = None if files is None else {k: v.decode(errors="replace") for k, v in files.items()}
    else:
        return
    name = ref.get("name", "")
    if data is None:
        if ref.get("optional"):
            return
        raise ContainerConfigError(f'{kind} "{name}" not found')
    prefix = source.get("prefix") or ""
    invalid = []
    for key, value in data.items():
        if _ENV_VAR_NAME(prefix + key):
            env[prefix + key] = value
        else:
            invalid.append(prefix + key)
    if invalid:
        await warn(
            "InvalidEnvironmentVariableNames",
            f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {label} {pod['metadata']['namespace']}/{name} "
            "were skipped since they are considered invalid environment variable names.",
        )


async def _env_value(
    pod: Obj,
    container: Obj,
    var: Obj,
    refs: ReferencedObjects,
    addresses: PodAddresses,
    allocatable: dict[str, str],
    env: dict[str, str],
    services: dict[str, str],
) -> str | None:
    """One `env` entry's value; None when an optional source is missing (the variable is then not set)."""
    if var.get("value"):
        return expand(var["value"], env, services)
    source = var.get("valueFrom")
    if not source:
        return ""
    namespace = pod["metadata"]["namespace"]
    try:
        if source.get("fieldRef"):
            return field_value(pod, source["fieldRef"].get("fieldPath", ""), addresses)
        if source.get("resourceFieldRef"):
            return resource_value(source["resourceFieldRef"], pod, container, allocatable)
    except DownwardError as exc:
        raise ContainerConfigError(str(exc)) from None
    if source.get("configMapKeyRef"):
        ref, kind, label = source["configMapKeyRef"], "configmap", "ConfigMap"
        data = await refs.config_map_data(ref.get("name", ""))
    elif source.get("secretKeyRef"):
        ref, kind, label = source["secretKeyRef"], "secret", "Secret"
        files = await refs.secret_files(ref.get("name", ""))
        data = None if files is None else {k: v.decode(errors="replace") for k, v in files.items()}
    else:
        return ""
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {label} {namespace}/{name}")
    return data[key]
