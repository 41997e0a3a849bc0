"""One node: a container runtime, the node agent that drives it, and the streaming server that serves
logs/exec/attach/port-forward for its pods. `kube-shim up` runs one (or many simulated ones) in-process;
`kube-shim node` runs one as its own process against any API server."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from shim.client import ApiClient, SharedInformerFactory
from shim.client.api import Obj
from shim.kubelet.config import KubeletOptions
from shim.kubelet.kubelet import Kubelet
from shim.kubelet.localpath import LocalPathProvisioner
from shim.kubelet.routes import PodRoutes
from shim.kubelet.server import StreamingServer
from shim.pki import ServingCertificate, cluster_id
from shim.runtime.base import Runtime


@dataclass
class NodeConfig:
    """What a node needs besides an API client."""

    name: str
    data_dir: Path
    runtime: str = "podman"  # "podman" | "fake"
    podman_socket: str | None = None
    ca_pem: bytes | None = None  # the cluster CA (required): only the API server's client certificate may stream
    serving_certificate: ServingCertificate | None = None  # the node server's, issued by that CA (required)
    listen_host: str = "127.0.0.1"  # where the streaming server listens (the API server must reach it)
    pod_cidr: str | None = None  # fake runtime: the pods' address range
    options: KubeletOptions = field(default_factory=KubeletOptions)


class Node:
    """A running node; `start()` registers it and begins running its pods, `stop()` leaves them running.
    `informers`: the process's shared informer factory, if any (see Kubelet)."""

    def __init__(self, client: ApiClient, config: NodeConfig, informers: SharedInformerFactory | None = None) -> None:
        self.client = client
        self.informers = informers
        self.config = config
        self.runtime = make_runtime(config)
        self.kubelet: Kubelet | None = None
        self.server: StreamingServer | None = None
        self.routes: PodRoutes | None = None
        self.provisioner: LocalPathProvisioner | None = None

    async def start(self) -> None:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        # the streaming server answers for the kubelet's pods, and the kubelet advertises the server's port
        self.server = StreamingServer(self.runtime, config.data_dir, self._pod_lookup, host=config.listen_host,
                                      port=0, client_ca_pem=config.ca_pem,
                                      serving_certificate=config.serving_certificate)  # fmt: skip
        await self.server.start()
        config.options.kubelet_port = self.server.port
        self.kubelet = Kubelet(self.client, self.runtime, config.name, config.data_dir, config.options, self.informers)
        await self.kubelet.start()
        # volumes of the claims placed on this node are directories on its disk
        self.provisioner = LocalPathProvisioner(self.client, config.name, config.data_dir, self.informers)
        self.provisioner.start()
        if config.runtime == "podman" and self.informers is not None:
            # real pods on real bridges: routes to the pods of nodes on other hosts (simulated pods have none)
            self.routes = PodRoutes(self.client, self.informers, config.name, config.data_dir / "routes.json")
            self.routes.start()

    def _pod_lookup(self, namespace: str, name: str) -> tuple[Obj, str | None, dict[str, str]] | None:
        return self.kubelet.pod_lookup(namespace, name) if self.kubelet is not None else None

    async def stop(self) -> None:
        if self.routes is not None:
            await self.routes.stop()
        if self.provisioner is not None:
            await self.provisioner.stop()
        if self.kubelet is not None:
            with contextlib.suppress(Exception):
                await self.kubelet.stop()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.stop()


def make_runtime(config: NodeConfig) -> Runtime:
    """The runtime the config names (imported lazily: Podman's client is only needed by those who use it)."""
    if config.runtime == "fake":
        from shim.runtime.fake import FakeRuntime

        return FakeRuntime(pod_cidr=config.pod_cidr or "10.244.0.0/24")
    if config.runtime == "podman":
        from shim.runtime.podman import PodmanRuntime

        if not config.ca_pem:
            raise ValueError("a Podman node needs the cluster CA: its pods and network are marked with the cluster")
        return PodmanRuntime(
            config.podman_socket, config.data_dir / "runtime", None, config.name, cluster_id=cluster_id(config.ca_pem)
        )
    raise ValueError(f"unknown runtime {config.runtime!r} (expected podman or fake)")
