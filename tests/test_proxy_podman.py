"""Services carry traffic through the kernel: the real `kube-shim up` with one Podman node, whose service proxy
programs nftables, reached from the host and from pods (issue 10).

Every address a test sends to is checked first: ClusterIPs and load-balancer IPs only once `ip route get` says
this host handles them (`local`), so no request can leave the machine. The cluster has a service range and a
load-balancer range of its own, so that other clusters on this host (their `kubernetes` Service is 10.96.0.1)
never share an address with it.
"""

from __future__ import annotations

import errno
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import podman_cluster
from tests.cluster import Cluster, start_cluster, wait_until
from tests.images import TEST_IMAGE
from tests.kubectl_kit import apply, from_pod, get
from tests.podman_cluster import NEVER_PULL, restart
from tests.podman_env import PodmanEnv
from tests.prerequisites import needs_podman
from tests.proxy_kit import (
    HTTP_PORT,
    client_pod,
    cluster_ip,
    deployment,
    host_handles,
    service,
    wait_ready,
    web_deployment,
)

pytestmark = needs_podman

Obj = dict[str, Any]
SERVICE_RANGE = "10.100.0.0/16"
LOAD_BALANCER_RANGE = "10.112.0.128/28"
UNASSIGNED = "10.100.1.1"  # in the service range; the cluster allocates from the rest (checked below)
TIMEOUT = 60.0
PROMPT = 1.0  # seconds within which a refused connection must fail: a hang would take the full timeout


# -- the cluster -----------------------------------------------------------------------------------------------


podman_env = podman_cluster.podman_env  # a fixture: pytest finds it by name here


def cluster_flags(env: PodmanEnv) -> tuple[str, ...]:
    return ("--runtime", "podman", "--nodes", "1", "--podman-socket", str(env.socket_path),
            "--service-cluster-ip-range", SERVICE_RANGE, "--load-balancer-ip-range", LOAD_BALANCER_RANGE)  # fmt: skip


@pytest.fixture(scope="module")
def cluster(podman_env: PodmanEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`kube-shim up` with one Podman node and its service proxy (replaces the session's cluster here, so the
    `namespace` fixture makes its namespaces in it)."""
    running = start_cluster(tmp_path_factory.mktemp("proxy"), nodes=cluster_flags(podman_env))
    running.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
    yield running
    running.stop()


# -- what the tests run --------------------------------------------------------------------------------------


# -- sending traffic, only where the host keeps it ----------------------------------------------------------------


def http_get(address: str, port: int, timeout: float = 5.0) -> str:
    """One HTTP/1.0 GET from the host; the body (a pod's name)."""
    with socket.create_connection((address, port), timeout=timeout) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[-1].decode().strip()


def answers(address: str, port: int, requests: int = 30) -> set[str]:
    return {http_get(address, port) for _ in range(requests)}


def reaches_exactly(address: str, port: int, pods: list[str]) -> bool:
    """Repeated requests reach every one of `pods` and nothing else (random spread: 40 requests miss one of three
    with a chance of about 1e-7)."""
    try:
        return answers(address, port, 40) == set(pods)
    except OSError:
        return False  # the rules are not there yet


def refusal(address: str, port: int) -> tuple[int | None, float]:
    """(errno, seconds) of a connection attempt that is expected to fail; errno None if it connected."""
    started = time.monotonic()
    try:
        with socket.create_connection((address, port), timeout=5):
            return None, time.monotonic() - started
    except OSError as exc:
        return exc.errno, time.monotonic() - started


def refused_promptly(address: str, port: int) -> bool:
    code, elapsed = refusal(address, port)
    return code in (errno.ECONNREFUSED, errno.EHOSTUNREACH) and elapsed < PROMPT


def pod_connect(cluster: Cluster, namespace: str, pod: str, address: str, port: int) -> tuple[str, float]:
    """(why, seconds) of a connection attempt from a pod that is expected to fail, timed inside the pod by
    busybox `time` (to 10 ms); a connection that hangs would take the 5 s timeout."""
    out = from_pod(cluster, namespace, pod, f"{{ time nc -w 5 {address} {port} </dev/null ; }} 2>&1", check=False)
    why = re.search(r"can't connect to remote host \(\S+\): (.+)|nc: (timed out)", out)
    elapsed = re.search(r"real\s+(\d+)m\s*([\d.]+)s", out)
    assert why is not None and elapsed is not None, out
    return why.group(1) or why.group(2), int(elapsed.group(1)) * 60 + float(elapsed.group(2))


def endpoints(cluster: Cluster, namespace: str, service_name: str) -> list[Obj]:
    slices = get(cluster, namespace, "endpointslices", "-l", f"kubernetes.io/service-name={service_name}")
    return [e for s in slices["items"] for e in s.get("endpoints") or ()]


# -- the tests -------------------------------------------------------------------------------------------------


def test_a_service_reaches_every_ready_pod_by_cluster_ip_node_port_and_load_balancer_ip(
    cluster: Cluster, namespace: str
) -> None:
    apply(cluster, namespace, web_deployment("web", 3), service("web", 80, "http", "LoadBalancer"))
    pods = wait_ready(cluster, namespace, "web", 3)
    svc = get(cluster, namespace, "service", "web")
    ip, node_port = cluster_ip(cluster, namespace, "web"), svc["spec"]["ports"][0]["nodePort"]

    wait_until(lambda: reaches_exactly(ip, 80, pods), TIMEOUT, "the ClusterIP reaching all three pods")
    wait_until(lambda: reaches_exactly("127.0.0.1", node_port, pods), TIMEOUT, "the NodePort on 127.0.0.1")
    ingress = wait_until(lambda: get(cluster, namespace, "service", "web")["status"]["loadBalancer"].get("ingress"),
                         TIMEOUT, "a load-balancer address")  # fmt: skip
    balancer = host_handles(ingress[0]["ip"])
    wait_until(lambda: reaches_exactly(balancer, 80, pods), TIMEOUT, "the load-balancer IP")
    wide = cluster.kubectl("get", "service", "web", "-n", namespace, "-o", "wide", "--no-headers").stdout.split()
    assert wide[:5] == ["web", "LoadBalancer", ip, balancer, f"80:{node_port}/TCP"] and wide[6] == "app=web", wide

    client = client_pod(cluster, namespace)
    for address in (ip, balancer):
        get_loop = f"for i in $(seq 40); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} 80 | tail -n1; done"
        assert set(from_pod(cluster, namespace, client, get_loop).split()) == set(pods), address


def test_session_affinity_keeps_each_client_on_one_pod(cluster: Cluster, namespace: str) -> None:
    sticky = service("web", 80, "http")
    sticky["spec"]["sessionAffinity"] = "ClientIP"
    apply(cluster, namespace, web_deployment("web", 3), sticky)
    pods = wait_ready(cluster, namespace, "web", 3)
    ip = cluster_ip(cluster, namespace, "web")
    pod_ips = [p["status"]["podIP"] for p in get(cluster, namespace, "pods", "-l", "app=web")["items"]]
    wait_until(lambda: all(f"dnat to {pod_ip}:{HTTP_PORT}" in ruleset() for pod_ip in pod_ips), TIMEOUT,
               "rules for all three pods")  # fmt: skip
    # the host is one client: once its first connection has picked a pod, every later one goes there
    first = wait_until(lambda: _answer(ip, 80), TIMEOUT, "the service answering")
    assert first in pods
    assert answers(ip, 80, 40) == {first}


def _answer(address: str, port: int) -> str | None:
    try:
        return http_get(address, port)
    except OSError:
        return None


def test_scaled_to_zero_a_service_refuses_at_once_and_scaled_up_it_answers_again(
    cluster: Cluster, namespace: str
) -> None:
    apply(cluster, namespace, web_deployment("web", 1), service("web", 80, "http"))
    pods = wait_ready(cluster, namespace, "web", 1)
    ip = cluster_ip(cluster, namespace, "web")
    wait_until(lambda: reaches_exactly(ip, 80, pods), TIMEOUT, "the service answering")

    cluster.kubectl("scale", "deployment/web", "--replicas=0", "-n", namespace)
    # a terminating pod still serves (kube's rules keep sending to it) until its endpoint goes
    wait_until(lambda: not endpoints(cluster, namespace, "web"), TIMEOUT, "the endpoints gone")
    wait_until(lambda: refused_promptly(ip, 80), TIMEOUT, "the ClusterIP refusing at once")
    why, elapsed = pod_connect(cluster, namespace, client_pod(cluster, namespace), ip, 80)
    assert why == "Connection refused" and elapsed < PROMPT

    cluster.kubectl("scale", "deployment/web", "--replicas=1", "-n", namespace)
    pods = wait_ready(cluster, namespace, "web", 1)
    wait_until(lambda: reaches_exactly(ip, 80, pods), TIMEOUT, "the service answering again")


def test_a_pod_failing_readiness_gets_no_traffic_until_it_is_ready_again(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, web_deployment("web", 2), service("web", 80, "http"))
    pods = wait_ready(cluster, namespace, "web", 2)
    ip = cluster_ip(cluster, namespace, "web")
    wait_until(lambda: reaches_exactly(ip, 80, pods), TIMEOUT, "both pods answering")

    cluster.kubectl("exec", pods[0], "-n", namespace, "--", "touch", "/www/unready")
    wait_until(lambda: reaches_exactly(ip, 80, pods[1:]), TIMEOUT, "traffic only to the ready pod")
    cluster.kubectl("exec", pods[0], "-n", namespace, "--", "rm", "/www/unready")
    wait_until(lambda: reaches_exactly(ip, 80, pods), TIMEOUT, "the pod getting traffic again")


def test_an_unassigned_service_address_fails_at_once_from_the_host_and_from_a_pod(
    cluster: Cluster, namespace: str
) -> None:
    assigned = {s["spec"].get("clusterIP") for s in json.loads(cluster.kubectl("get", "services", "-A", "-o",
                                                                               "json").stdout)["items"]}  # fmt: skip
    assert UNASSIGNED not in assigned
    host_handles(UNASSIGNED)  # never the default route
    wait_until(lambda: refused_promptly(UNASSIGNED, 80), TIMEOUT, "the proxy's table in place")
    code, elapsed = refusal(UNASSIGNED, 80)
    assert code == errno.ECONNREFUSED and elapsed < PROMPT  # a TCP reset

    why, elapsed = pod_connect(cluster, namespace, client_pod(cluster, namespace), UNASSIGNED, 80)
    assert why == "Connection refused" and elapsed < PROMPT


def test_kube_shim_up_reports_its_service_proxy_in_readyz(cluster: Cluster) -> None:
    assert "[+]service-proxy ok" in cluster.kubectl("get", "--raw", "/readyz?verbose").stdout.splitlines()


def test_a_restart_keeps_established_connections_and_drops_rules_of_services_deleted_meanwhile(
    cluster: Cluster, podman_env: PodmanEnv, namespace: str
) -> None:
    echo = {"name": "echo", "image": TEST_IMAGE, **NEVER_PULL, "command": ["nc", "-ll", "-p", "9000", "-e", "cat"]}
    apply(cluster, namespace, deployment("echo", 1, echo), service("echo", 9000, 9000),
          web_deployment("web", 1), service("web", 80, "http"))  # fmt: skip
    echo_pods, web_pods = wait_ready(cluster, namespace, "echo", 1), wait_ready(cluster, namespace, "web", 1)
    echo_ip, web_ip = cluster_ip(cluster, namespace, "echo"), cluster_ip(cluster, namespace, "web")
    wait_until(lambda: reaches_exactly(web_ip, 80, web_pods), TIMEOUT, "the web service answering")
    assert echo_pods
    connection = wait_until(lambda: _connect(echo_ip, 9000), TIMEOUT, "the echo service answering")
    try:
        # the control plane alone (no node, no proxy) while the web service is deleted
        restart(cluster, ("--nodes", "0", "--service-cluster-ip-range", SERVICE_RANGE))
        assert _echo(connection, b"during\n")
        cluster.kubectl("delete", "service", "web", "-n", namespace)

        restart(cluster, cluster_flags(podman_env))
        wait_until(lambda: not _web_rules_present(web_ip), TIMEOUT, "the deleted service's rules gone")
        assert refused_promptly(web_ip, 80)
        assert _echo(connection, b"after\n")  # the established connection lived through both restarts
    finally:
        connection.close()


def _web_rules_present(web_ip: str) -> bool:
    """Whether any table on this host still maps the address (the service range is this test's alone)."""
    return f"{web_ip} . tcp . 80 :" in ruleset()


def ruleset() -> str:
    """Every nftables table on this host."""
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


def _connect(address: str, port: int) -> socket.socket | None:
    try:
        conn = socket.create_connection((address, port), timeout=5)
    except OSError:
        return None
    if _echo(conn, b"hello\n"):
        return conn
    conn.close()
    return None


def _echo(conn: socket.socket, line: bytes) -> bool:
    try:
        conn.sendall(line)
        return conn.recv(len(line)) == line
    except OSError:
        return False


def test_a_pod_reaches_itself_through_its_own_service(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, web_deployment("web", 1), service("web", 80, "http"))
    [pod] = wait_ready(cluster, namespace, "web", 1)
    ip = cluster_ip(cluster, namespace, "web")
    wait_until(lambda: reaches_exactly(ip, 80, [pod]), TIMEOUT, "the service answering")
    # hairpin: the DNAT sends the packet back out of the port it came in by, masqueraded so the reply returns
    get_once = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80 | tail -n1"
    assert from_pod(cluster, namespace, pod, get_once).strip() == pod
