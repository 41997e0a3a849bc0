"""The container runtime interface the node agent drives (a small CRI): pod sandboxes and containers.

One Kubernetes pod = one sandbox (Podman: a pod whose infra container holds the network namespace) plus
its containers. Everything a runtime creates carries the pod's uid, namespace and name as labels so that a
restarted node agent can adopt what is running and remove what is orphaned.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
# the node whose agent made it: agents sharing one runtime never adopt each other's pods
LABEL_NODE = "io.kubernetes.shim.node"
# the cluster of that node (two clusters on one host may both have a node named after the host)
LABEL_CLUSTER = "io.kubernetes.shim.cluster"


class RuntimeFailure(Exception):
    """A runtime operation failed; `reason` is the Kubernetes waiting reason to show (e.g. CreateContainerError)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ImagePullError(RuntimeFailure):
    """The image could not be pulled (ErrImagePull) or is absent with pull policy Never (ErrImageNeverPull)."""


@dataclass
class PortMapping:
    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass
class SandboxSpec:
    """What the pod's shared namespaces need."""

    uid: str
    namespace: str
    name: str
    hostname: str
    labels: dict[str, str] = field(default_factory=dict)
    port_mappings: list[PortMapping] = field(default_factory=list)
    dns_servers: list[str] = field(default_factory=list)
    dns_searches: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    host_aliases: list[tuple[str, str]] = field(default_factory=list)  # (hostname, ip)
    host_network: bool = False


@dataclass
class Mount:
    host_path: str
    container_path: str
    read_only: bool = False


@dataclass
class ContainerSpec:
    """One container of a pod, already resolved (env values computed, volumes materialised on the host)."""

    name: str
    image: str
    command: list[str] = field(default_factory=list)  # Kubernetes `command` (the image entrypoint if empty)
    args: list[str] = field(default_factory=list)  # Kubernetes `args` (the image cmd if both are empty)
    working_dir: str = ""
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    memory_limit: int | None = None  # bytes
    cpu_quota: int | None = None  # microseconds per cpu_period
    cpu_period: int = 100_000
    cpu_shares: int | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    read_only_root: bool = False
    privileged: bool = False
    capabilities_add: list[str] = field(default_factory=list)  # Kubernetes names (NET_ADMIN) or ALL
    capabilities_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    seccomp_profile: str = ""  # "" = the runtime's default profile, "unconfined", or a profile file's path
    host_pid: bool = False  # the host's PID namespace (the pod's hostPID)
    host_ipc: bool = False  # the host's IPC namespace (the pod's hostIPC)
    pid_namespace_of: str = ""  # the id of a container whose PID namespace to join (a debugger's target)
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    stop_timeout: int = 30  # seconds between SIGTERM and SIGKILL
    log_path: str = ""  # CRI-format log file (survives the container)
    log_max_size: int | None = None  # bytes the runtime lets the log file reach before it rotates it
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerStatus:
    id: str
    name: str  # the Kubernetes container name (from its label)
    state: str  # "created" | "running" | "exited" | "unknown"
    exit_code: int | None = None
    started_at: str | None = None  # RFC 3339
    finished_at: str | None = None
    oom_killed: bool = False
    image: str = ""
    image_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class SandboxStatus:
    id: str
    uid: str
    namespace: str
    name: str
    state: str  # "ready" | "notready"
    ip: str | None = None
    containers: list[ContainerStatus] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class RuntimeEvent:
    """A change the runtime noticed by itself (a container died, was OOM-killed, ...)."""

    kind: str  # "died" | "oom" | "started"
    pod_uid: str
    container_name: str
    container_id: str
    exit_code: int | None = None


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


class ExecSession(abc.ABC):
    """An interactive exec/attach: stdin in, stdout/stderr out, then an exit code."""

    @abc.abstractmethod
    async def write_stdin(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def close_stdin(self) -> None: ...

    @abc.abstractmethod
    def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, bytes) chunks: stream 1 = stdout, 2 = stderr, until the process ends."""

    @abc.abstractmethod
    async def resize(self, width: int, height: int) -> None: ...

    @abc.abstractmethod
    async def wait(self) -> int:
        """The exit code."""

    async def close(self) -> None:  # noqa: B027 (optional: sessions holding no connection have nothing to do)
        """Release the session early (the client went away); the process itself is not signalled."""


class Runtime(abc.ABC):
    """What the node agent needs from a container runtime. All methods are async and never block the loop."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (and start the runtime service if this agent owns it)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect (and stop a service this agent started). Containers keep running."""

    @abc.abstractmethod
    async def version(self) -> str:
        """containerRuntimeVersion for the Node, e.g. `podman://4.3.1`."""

    @abc.abstractmethod
    async def ensure_image(self, image: str, pull_policy: str) -> str:
        """Make `image` present per `Always|IfNotPresent|Never`; returns its image id. Raises ImagePullError."""

    @abc.abstractmethod
    async def image_user(self, image: str) -> str:
        """The USER a present image runs as ("" when it sets none, i.e. root), for runAsNonRoot."""

    @abc.abstractmethod
    async def create_sandbox(self, spec: SandboxSpec) -> str:
        """Create (and start) the pod sandbox; returns its id."""

    @abc.abstractmethod
    async def sandbox_ip(self, sandbox_id: str) -> str | None:
        """The pod IP once the sandbox's network is up."""

    @abc.abstractmethod
    async def create_container(self, sandbox_id: str, spec: ContainerSpec) -> str:
        """Create a container in the sandbox; returns its id. Raises RuntimeFailure (CreateContainerError...)."""

    @abc.abstractmethod
    async def start_container(self, container_id: str) -> None: ...

    @abc.abstractmethod
    async def stop_container(self, container_id: str, grace_seconds: int) -> None:
        """SIGTERM, then SIGKILL after the grace period (0 = at once). A stopped container is a no-op."""

    @abc.abstractmethod
    async def remove_container(self, container_id: str) -> None: ...

    @abc.abstractmethod
    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Kill and remove the sandbox and everything in it."""

    @abc.abstractmethod
    async def list_sandboxes(self) -> list[SandboxStatus]:
        """Every sandbox this agent's labels mark (for adoption after a restart), with container states."""

    @abc.abstractmethod
    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus | None: ...

    @abc.abstractmethod
    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Runtime events as they happen (a container died, ...): pushed by the runtime, not polled."""

    @abc.abstractmethod
    async def exec(self, container_id: str, command: list[str], timeout: float | None = None) -> ExecResult:
        """Run a command to completion (exec probes, preStop hooks)."""

    @abc.abstractmethod
    async def exec_stream(self, container_id: str, command: list[str], stdin: bool, tty: bool) -> ExecSession:
        """An interactive exec (`kubectl exec -i`)."""

    @abc.abstractmethod
    async def attach(self, container_id: str, stdin: bool, tty: bool) -> ExecSession:
        """Attach to the container's main process."""

    async def pod_cidrs(self) -> list[str]:
        """The address ranges this node's pods get their IPs from (the Node's spec.podCIDRs); [] if unknown."""
        return []

    def port_forward_refusal(self) -> str | None:
        """Why this runtime cannot forward connections to its pods' ports, or None when it can."""
        return None

    async def dial_pod(self, sandbox_id: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to a port of the pod (port-forward). Raises OSError when it cannot be made."""
        address = await self.sandbox_ip(sandbox_id)
        if not address:
            raise OSError(f"sandbox {sandbox_id} has no network address")
        return await asyncio.open_connection(address, port)
