"""What a node agent can be told beyond its name and data dir (the CLI fills this in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class KubeletOptions:
    """Node agent settings; the defaults are kubelet's where kubelet has one."""

    kubelet_port: int = 10250  # daemonEndpoints.kubeletEndpoint.Port: where the node's streaming server listens
    node_ip: str | None = None  # InternalIP and the pods' hostIP (default: the host's primary address)
    node_labels: dict[str, str] = field(default_factory=dict)
    node_taints: list[dict[str, Any]] = field(default_factory=list)  # registered with the Node
    capacity: dict[str, str] | None = None  # instead of the host's cpu/memory/storage (simulated nodes)
    max_pods: int = 110
    # hostPath volumes are refused unless the path lies under one of these (none by default: a hostPath of
    # "/" in a root container owns the host)
    allowed_host_paths: tuple[str, ...] = ()
    allow_privileged: bool = False  # privileged containers are refused unless set
    # hostNetwork, hostPID, hostIPC and hostPort pods are refused when unset (allowed by default, as on kube)
    allow_host_namespaces: bool = True
    seccomp_profile_root: str = "/var/lib/kubelet/seccomp"  # where seccompProfile type Localhost files live
    container_log_max_size: int = 10 * 1024 * 1024  # containerLogMaxSize: the runtime rotates a log at this size
    cluster_dns: tuple[str, ...] = ()  # nameservers for dnsPolicy ClusterFirst (none: the host's resolv.conf)
    cluster_domain: str = "cluster.local"
    lease_duration_seconds: int = 40
    lease_renew_interval: float = 10.0
    node_status_check_interval: float = 10.0  # how often the node's status is recomputed
    node_status_report_interval: float = 60.0  # posted at least this often, and at once when it changed
    volume_stats_interval: float = 10.0  # how often emptyDir usage is measured against its sizeLimit
    resync_interval: float = 60.0  # safety net: every pod is re-synced this often even without events
    # CrashLoopBackOff: the delay before a restart starts here, doubles per crash, stops growing at the max
    # (kubelet's 10 s and 5 min; simulations and tests may shorten them)
    restart_backoff_initial: float = 10.0
    restart_backoff_max: float = 300.0
    record_events: bool = True  # kubelet's Pulled/Created/Started/... events (simulations may turn them off)
