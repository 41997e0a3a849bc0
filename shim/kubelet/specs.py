"""From the pod's API spec to what the runtime is asked for: the sandbox, and each resolved container."""

from __future__ import annotations

import math
from typing import Any

from shim.apiserver.kinds.quantity import QuantityError, parse_quantity
from shim.kubelet.envvars import ContainerConfigError, expand_command
from shim.runtime.base import LABEL_CONTAINER_NAME, ContainerSpec, Mount, PortMapping, SandboxSpec

Obj = dict[str, Any]

LABEL_RESTART_COUNT = "io.kubernetes.container.restartCount"  # which run of the container this is
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


def container_spec(
    pod: Obj,
    container: Obj,
    env: dict[str, str],
    mounts: list[Mount],
    attempt: int,
    log_path: str,
    allow_privileged: bool,
) -> ContainerSpec:
    """A container ready for the runtime. Raises ContainerConfigError for what this node refuses to run."""
    pod_security = pod["spec"].get("securityContext") or {}
    security = container.get("securityContext") or {}
    if security.get("privileged") and not allow_privileged:
        raise ContainerConfigError("privileged containers are not allowed on this node")
    run_as_user = security.get("runAsUser", pod_security.get("runAsUser"))
    if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) and run_as_user == 0:
        raise ContainerConfigError(
            f"container's runAsUser breaks non-root policy (pod: \"{pod['metadata']['name']}_"
            f'{pod["metadata"]["namespace"]}({pod["metadata"]["uid"]})", container: {container["name"]})'
        )
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
        privileged=bool(security.get("privileged")),
        tty=bool(container.get("tty")),
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        stop_timeout=DEFAULT_GRACE_SECONDS if grace is None else grace,
        log_path=log_path,
        labels={LABEL_CONTAINER_NAME: container["name"], LABEL_RESTART_COUNT: str(attempt)},
    )


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
