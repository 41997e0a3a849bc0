"""UDP clients follow their Service to a new endpoint at once (issue 10): the real `kube-shim up` with one Podman
node, whose service proxy deletes the conntrack flows of a removed UDP endpoint after its sync. Without that, a
client that keeps sending from one port keeps its flow, and with it the DNAT to the old endpoint, for as long as
it sends (the cluster DNS on a new port after a restart would never be reached by such a client).

The endpoints are UDP sockets of the test on the pods' host address 10.244.255.254 (a Service without selector
and an EndpointSlice of the test's own, as for the cluster DNS): busybox has no UDP server. The clients are the
host (a socket bound once) and a pod whose busybox syslogd forwards every log line from one socket.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from shim.hostaddress import HOST_ADDRESS
from tests.cluster import Cluster, start_cluster, wait_until
from tests.images import TEST_IMAGE
from tests.kubectl_kit import apply
from tests.podman_cluster import NEVER_PULL, restart
from tests.podman_env import podman_root_with_test_image
from tests.prerequisites import needs_conntrack, needs_podman
from tests.proxy_kit import cluster_ip

pytestmark = [*needs_podman, needs_conntrack]

SERVICE_RANGE = "10.105.0.0/16"
LOAD_BALANCER_RANGE = "10.112.0.208/28"
TIMEOUT = 60.0
FOLLOWS_WITHIN = 2.0  # seconds from the EndpointSlice change until both clients reach the new endpoint
SEND_INTERVAL = 0.1  # seconds between two datagrams of each client: the flow never idles long enough to expire


@pytest.fixture(scope="module")
def flags() -> Iterator[tuple[str, ...]]:
    """The cluster's flags: one Podman node on a private Podman root, its own service and load-balancer ranges."""
    with podman_root_with_test_image() as env:
        yield ("--runtime", "podman", "--nodes", "1", "--podman-socket", str(env.socket_path),
               "--service-cluster-ip-range", SERVICE_RANGE,
               "--load-balancer-ip-range", LOAD_BALANCER_RANGE)  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, flags: tuple[str, ...]) -> Iterator[Cluster]:
    """`kube-shim up` with one Podman node and its service proxy (replaces the session's cluster here, so the
    `namespace` fixture makes its namespaces in it)."""
    running = start_cluster(tmp_path_factory.mktemp("proxy-udp"), nodes=flags)
    try:
        running.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
        yield running
    finally:
        running.stop()


class Endpoint:
    """A UDP socket on the host address that notes which clients reached it (the host's datagrams say
    `from-host`, the pod's are syslog lines saying `from-pod`)."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sockets.append(self.sock)
        self.sock.bind((HOST_ADDRESS, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.heard: set[str] = set()

    def clients(self) -> set[str]:
        """Which clients have reached it so far."""
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return self.heard
            self.heard |= {who for who in ("host", "pod") if f"from-{who}".encode() in data}


def endpoint_slice(port: int) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "echo-1", "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [HOST_ADDRESS], "conditions": {"ready": True}}],
        "ports": [{"name": "udp", "port": port, "protocol": "UDP"}],
    }


def syslog_client_pod(address: str) -> dict:
    """A pod whose syslogd forwards to `address`:53 from one socket, and a loop that logs `from-pod` every 0.1 s."""
    script = f"syslogd -R {address}:53 && while true; do logger from-pod; sleep {SEND_INTERVAL}; done"
    container = {"name": "c", "image": TEST_IMAGE, **NEVER_PULL, "command": ["sh", "-c", script]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 0}}  # fmt: skip


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """The test's sockets, closed at its end."""
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def echo_service(cluster: Cluster, namespace: str, endpoint: Endpoint) -> str:
    """The UDP Service `echo` on port 53, its one endpoint `endpoint`, and a client pod sending to it; its
    ClusterIP, checked to be handled by this host."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
               "spec": {"ports": [{"name": "udp", "port": 53, "protocol": "UDP"}]}}  # fmt: skip
    apply(cluster, namespace, service, endpoint_slice(endpoint.port))
    address = cluster_ip(cluster, namespace, "echo")
    apply(cluster, namespace, syslog_client_pod(address))
    return address


def host_client(sockets: list[socket.socket], address: str) -> Callable[[Endpoint], bool]:
    """A check that sends one datagram from the host to `address`:53, always from the same port, and says whether
    an endpoint has heard from both clients."""
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sockets.append(host)
    host.bind(("0.0.0.0", 0))

    def reached(endpoint: Endpoint) -> bool:
        host.sendto(b"from-host", (address, 53))
        return endpoint.clients() == {"host", "pod"}

    return reached


def test_udp_clients_that_keep_their_port_reach_the_new_endpoint_of_their_service_at_once(
    cluster: Cluster, namespace: str, sockets: list[socket.socket]
) -> None:
    old, new = Endpoint(sockets), Endpoint(sockets)
    reached = host_client(sockets, echo_service(cluster, namespace, old))
    wait_until(lambda: reached(old), TIMEOUT, "both clients reaching the first endpoint")

    apply(cluster, namespace, endpoint_slice(new.port))  # as the cluster DNS restarted on another port
    moved = time.monotonic()
    # a flow left to the old endpoint would keep each client there for as long as it sends
    wait_until(lambda: reached(new), 5 * FOLLOWS_WITHIN, "both clients reaching the new endpoint")
    assert time.monotonic() - moved < FOLLOWS_WITHIN


def test_flows_to_an_endpoint_replaced_while_no_proxy_ran_go_at_the_next_proxys_first_sync(
    cluster: Cluster, namespace: str, flags: tuple[str, ...], sockets: list[socket.socket]
) -> None:
    """Last in the module: it restarts the module's cluster."""
    old, new = Endpoint(sockets), Endpoint(sockets)
    reached = host_client(sockets, echo_service(cluster, namespace, old))
    wait_until(lambda: reached(old), TIMEOUT, "both clients reaching the first endpoint")

    # the control plane alone (no node, no proxy: the rules stay) while the endpoint moves
    restart(cluster, ("--nodes", "0", "--service-cluster-ip-range", SERVICE_RANGE))
    apply(cluster, namespace, endpoint_slice(new.port))
    restart(cluster, flags)
    wait_until(lambda: reached(new), TIMEOUT / 3, "both clients reaching the new endpoint")
