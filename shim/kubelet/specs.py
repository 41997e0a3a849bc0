"""From the pod's API spec to what the runtime is asked for: the sandbox, and each resolved container."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from shim.kubelet.config import KubeletOptions
from shim.kubelet.envvars import ContainerConfigError, expand_command
from shim.machinery.quantity import QuantityError, parse_quantity
from shim.runtime.base import LABEL_CONTAINER_NAME, ContainerSpec, Mount, PortMapping, SandboxSpec

Obj = dict[str, Any]

LABEL_RESTART_COUNT = "io.kubernetes.container.restartCount"  # which run of the container this is
LABEL_HASH = "io.kubernetes.container.hash"  # the definition it was created from (container_hash)
LABEL_IMAGE = "io.kubernetes.shim.container.image"  # the image as the pod named it when this run was created
CPU_PERIOD = 100_000  # microseconds, the CFS default kubelet uses
MIN_QUOTA = 1_000
MIN_SHARES, MAX_SHARES = 2, 262_144
DEFAULT_GRACE_SECONDS = 30


def sandbox_spec(pod: Obj, cluster_dns: tuple[str, ...], cluster_domain: str) -> SandboxSpec:
    """The pod's shared namespaces: hostname, host ports, DNS (per dnsPolicy), /etc/hosts entries."""
    meta, spec = pod["metadata"], pod["spec"]
    host_network = bool(spec.get("hostNetwork"))
    servers, searches, options = _dns(spec, meta["namespace"], host_network, cluster_dns, cluster_domain)
    return SandboxSpec(
        uid=meta["uid"],
        namespace=meta["namespace"],
        name=meta["name"],
        hostname=(spec.get("hostname") or meta["name"])[:63],
        labels=dict(meta.get("labels") or {}),
        port_mappings=[
            PortMapping(port["containerPort"], port["hostPort"], port.get("protocol", "TCP"), port.get("hostIP", ""))
            for container in spec.get("containers") or ()
            for port in container.get("ports") or ()
            if port.get("hostPort")
        ],
        dns_servers=servers,
        dns_searches=searches,
        dns_options=options,
        host_aliases=[
            (name, alias["ip"]) for alias in spec.get("hostAliases") or () for name in alias.get("hostnames") or ()
        ],
        host_network=host_network,
    )


def host_namespaces(pod: Obj) -> list[str]:
    """What of the host the pod asks to share: hostNetwork, hostPID, hostIPC, and hostPort (a host port)."""
    spec = pod["spec"]
    used = [key for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    if any(port.get("hostPort") for c in containers for port in c.get("ports") or ()):
        used.append("hostPort")
    return used


def container_hash(container: Obj) -> str:
    """kube's HashContainerWithoutResources: a run whose hash differs from its container's current definition
    (an image changed by `kubectl set image`) is restarted. Resources are left out: they are resized in place."""
    definition = {k: v for k, v in container.items() if k not in ("resources", "resizePolicy")}
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:8]


def container_spec(
    pod: Obj,
    container: Obj,
    env: dict[str, str],
    mounts: list[Mount],
    attempt: int,
    log_path: str,
    options: KubeletOptions,
    image_user: str = "",
) -> ContainerSpec:
    """A container ready for the runtime. Raises ContainerConfigError for what this node refuses to run.

    `image_user` is the image's USER, which decides runAsNonRoot when no runAsUser is set."""
    pod_security = pod["spec"].get("securityContext") or {}
    security = container.get("securityContext") or {}
    privileged = bool(security.get("privileged"))
    if privileged and not options.allow_privileged:
        raise ContainerConfigError("privileged containers are not allowed on this node")
    run_as_user = security.get("runAsUser", pod_security.get("runAsUser"))
    if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
        _verify_non_root(pod, container["name"], run_as_user, image_user)
    capabilities = security.get("capabilities") or {}
    seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile") or {}
    command, args = expand_command(container, env)
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    cpu_limit = _milli_cpu(limits.get("cpu"))
    grace = pod["spec"].get("terminationGracePeriodSeconds")
    return ContainerSpec(
        name=container["name"],
        image=container["image"],
        command=command,
        args=args,
        working_dir=container.get("workingDir", ""),
        env=env,
        mounts=mounts,
        memory_limit=_bytes(limits.get("memory")),
        cpu_quota=max(cpu_limit * CPU_PERIOD // 1000, MIN_QUOTA) if cpu_limit else None,
        cpu_period=CPU_PERIOD,
        cpu_shares=min(max((_milli_cpu(requests.get("cpu")) or 0) * 1024 // 1000, MIN_SHARES), MAX_SHARES),
        run_as_user=run_as_user,
        run_as_group=security.get("runAsGroup", pod_security.get("runAsGroup")),
        read_only_root=bool(security.get("readOnlyRootFilesystem")),
        privileged=privileged,
        capabilities_add=[str(c) for c in capabilities.get("add") or ()],
        capabilities_drop=[str(c) for c in capabilities.get("drop") or ()],
        # kube's AddNoNewPrivileges: only an explicit allowPrivilegeEscalation=false (never when privileged)
        no_new_privileges=security.get("allowPrivilegeEscalation") is False and not privileged,
        seccomp_profile=_seccomp_profile(seccomp, Path(options.seccomp_profile_root)),
        host_pid=bool(pod["spec"].get("hostPID")),
        host_ipc=bool(pod["spec"].get("hostIPC")),
        tty=bool(container.get("tty")),
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        stop_timeout=DEFAULT_GRACE_SECONDS if grace is None else grace,
        log_path=log_path,
        log_max_size=options.container_log_max_size,
        labels={
            LABEL_CONTAINER_NAME: container["name"],
            LABEL_RESTART_COUNT: str(attempt),
            LABEL_HASH: container_hash(container),
            LABEL_IMAGE: container["image"],
        },
    )


def _verify_non_root(pod: Obj, container: str, run_as_user: int | None, image_user: str) -> None:
    """kubelet's verifyRunAsNonRoot: runAsUser if set, else the image's user, must be a uid other than 0 (an image
    without a USER runs as root)."""
    meta = pod["metadata"]
    where = f'(pod: "{meta["name"]}_{meta["namespace"]}({meta["uid"]})", container: {container})'
    if run_as_user is not None:
        if run_as_user == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    user = image_user.split(":", 1)[0]
    if user == "" or user == "0":
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {where}")
    if not user.isdigit():
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root "
            + where
        )


def _seccomp_profile(profile: Obj, localhost_root: Path) -> str:
    """The runtime's seccomp profile: "" for the runtime's default, "unconfined", or a host file's path for a
    Localhost profile (relative to the node's seccomp directory, as kubelet's)."""
    kind = profile.get("type") or "RuntimeDefault"
    if kind == "Unconfined":
        return "unconfined"
    if kind == "Localhost":
        relative = profile.get("localhostProfile") or ""
        if not relative or os.path.isabs(relative) or ".." in relative.split("/"):
            raise ContainerConfigError(f"invalid localhostProfile {relative!r}: a path relative to the node's profiles")
        path = localhost_root / relative
        if not path.is_file():
            raise ContainerConfigError(f"failed to load seccomp profile {str(path)!r}: no such file")
        return str(path)
    return ""


def _dns(
    spec: Obj, namespace: str, host_network: bool, cluster_dns: tuple[str, ...], domain: str
) -> tuple[list[str], list[str], list[str]]:
    """Nameservers, search domains and options for the pod's resolv.conf (empty: the host's)."""
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    cluster = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network)
    servers: list[str] = []
    searches: list[str] = []
    options: dict[str, str | None] = {}
    if cluster and cluster_dns:
        servers = list(cluster_dns)
        searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]
        options["ndots"] = "5"
    config = spec.get("dnsConfig") or {}  # merged into whatever the policy gave (all there is for "None")
    if config:
        servers += [s for s in config.get("nameservers") or () if s not in servers]
        searches += [s for s in config.get("searches") or () if s not in searches]
        for option in config.get("options") or ():
            options[option["name"]] = option.get("value")
    rendered = [name if value is None else f"{name}:{value}" for name, value in options.items()]
    return servers, searches, rendered


def _milli_cpu(raw: Any) -> int | None:
    if raw is None:
        return None
    try:
        return math.ceil(parse_quantity(raw).value * 1000)
    except QuantityError:
        return None


def _bytes(raw: Any) -> int | None:
    if raw is None:
        return None
    try:
        return math.ceil(parse_quantity(raw).value)
    except QuantityError:
        return None
