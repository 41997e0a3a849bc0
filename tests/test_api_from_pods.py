"""The API from inside pods: the `kubernetes` service's endpoints name an address pods reach (the host address
`10.244.255.254` on `lo`), the API server serves there with a certificate valid for every in-cluster name,
every container gets the `KUBERNETES_SERVICE_*` variables, and so the official Python client in a Podman pod
finds and uses the API with in-cluster config.

Traffic goes only to 127.0.0.1, to the project's host address and (from a pod) to the `kubernetes` ClusterIP,
after checking that the host owns them.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from shim.client import ApiClient, load_kubeconfig
from shim.hostaddress import HOST_ADDRESS, RESERVED_RANGE, is_local_address
from shim.machinery.resources import PODS
from shim.pki import ensure_pki
from shim.runtime.base import RuntimeFailure
from shim.runtime.fake import FakeRuntime
from shim.runtime.podman_network import POD_NETWORK_RANGE, free_subnet
from tests.cluster import Cluster, start_cluster, wait_until
from tests.host_python import HOST_PATH_FLAGS, python_pod
from tests.kubectl_kit import WAIT_TIMEOUT, json_of
from tests.kubelet_kit import box, container_status, pod_manifest, running_node, runtime_id, wait_for
from tests.podman_cluster import podman_node_flags
from tests.podman_env import podman_root_with_test_image
from tests.prerequisites import needs_podman

KUBERNETES_IP = "10.96.0.1"
FAKE = ("--runtime", "fake", "--nodes", "0")


@pytest.fixture(scope="module")
def advertised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster of simulated nodes told to advertise the host address (the fake runtime has none by default)."""
    running = start_cluster(
        tmp_path_factory.mktemp("advertised"), nodes=FAKE, extra=("--advertise-address", HOST_ADDRESS)
    )
    yield running
    running.stop()


def apiserver_endpoints(cluster: Cluster) -> dict | None:
    got = cluster.kubectl("get", "endpoints", "kubernetes", "-n", "default", "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


# -- the kubernetes service's endpoints --------------------------------------------------------------------------


def test_kubectl_shows_the_kubernetes_endpoints_as_kube_writes_them(advertised: Cluster) -> None:
    endpoints = json_of(advertised, "get", "endpoints", "kubernetes", "-n", "default")
    assert endpoints["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    assert endpoints["subsets"] == [
        {"addresses": [{"ip": HOST_ADDRESS}], "ports": [{"name": "https", "port": advertised.port, "protocol": "TCP"}]}
    ]
    table = advertised.kubectl("get", "endpoints", "kubernetes", "-n", "default").stdout.splitlines()
    assert table[1].split()[:2] == ["kubernetes", f"{HOST_ADDRESS}:{advertised.port}"]

    selector = "kubernetes.io/service-name=kubernetes"
    [only] = json_of(advertised, "get", "endpointslices", "-n", "default", "-l", selector)["items"]
    assert only["metadata"]["name"] == "kubernetes"
    assert only["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}  # no managed-by, as kube
    assert only["addressType"] == "IPv4"
    assert only["endpoints"] == [{"addresses": [HOST_ADDRESS], "conditions": {"ready": True}}]
    assert only["ports"] == [{"name": "https", "port": advertised.port, "protocol": "TCP"}]
    table = advertised.kubectl("get", "endpointslices", "-n", "default", "-l", selector).stdout.splitlines()
    assert table[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert table[1].split()[:4] == ["kubernetes", "IPv4", str(advertised.port), HOST_ADDRESS]


def test_the_kubernetes_endpoints_are_put_back_when_deleted_or_changed(advertised: Cluster) -> None:
    before = json_of(advertised, "get", "endpoints", "kubernetes", "-n", "default")
    advertised.kubectl("delete", "endpoints", "kubernetes", "-n", "default")
    again = wait_until(
        lambda: (e := apiserver_endpoints(advertised)) and e["metadata"]["uid"] != before["metadata"]["uid"] and e,
        timeout=30,
        what="the kubernetes endpoints to come back",
    )
    assert again["subsets"] == before["subsets"]

    wrong = {"endpoints": [{"addresses": ["10.9.9.9"], "conditions": {"ready": True}}]}
    advertised.kubectl(
        "patch", "endpointslice", "kubernetes", "-n", "default", "--type", "merge", "-p", json.dumps(wrong)
    )

    def repaired() -> bool:
        got = json_of(advertised, "get", "endpointslice", "kubernetes", "-n", "default")
        return got["endpoints"] == [{"addresses": [HOST_ADDRESS], "conditions": {"ready": True}}]

    wait_until(repaired, timeout=30, what="the kubernetes slice to name the host address again")


def test_a_restart_without_an_advertise_address_removes_the_endpoints_and_follows_the_port(tmp_path: Path) -> None:
    first = start_cluster(tmp_path, nodes=FAKE, extra=("--advertise-address", HOST_ADDRESS))
    try:
        assert apiserver_endpoints(first) is not None
    finally:
        first.stop()
    second = start_cluster(tmp_path, nodes=FAKE)  # the same data dir on another port, with nothing to advertise
    assert second.port != first.port
    try:
        assert apiserver_endpoints(second) is None
        slices = second.kubectl("get", "endpointslice", "kubernetes", "-n", "default", check=False)
        assert 'endpointslices.discovery.k8s.io "kubernetes" not found' in slices.stderr
        service = json_of(second, "get", "service", "kubernetes", "-n", "default")
        assert service["spec"]["clusterIP"] == KUBERNETES_IP
        assert service["spec"]["ports"] == [
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": second.port}
        ]
    finally:
        second.stop()


def test_users_still_may_not_point_endpoints_at_loopback(advertised: Cluster, tmp_path: Path) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "sneaky", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80}]}],
    }
    refused = advertised.kubectl("create", "-f", "-", stdin=json.dumps(manifest), check=False)
    assert refused.returncode == 1
    assert "may not be in the loopback range (127.0.0.0/8, ::1/128)" in refused.stderr


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", "not-an-ip"])
def test_an_advertise_address_pods_cannot_reach_is_refused_at_start(tmp_path: Path, address: str) -> None:
    command = [sys.executable, "-m", "shim.cli", "up", "--data-dir", str(tmp_path), "--advertise-address", address]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("kube-shim: --advertise-address ")
    assert "IP address" in done.stderr or "not an address pods can reach" in done.stderr


# -- serving at the host address ---------------------------------------------------------------------------------


async def test_the_api_answers_at_the_host_address_with_a_certificate_for_in_cluster_names(cluster: Cluster) -> None:
    """The session cluster runs with the Podman runtime's defaults: the host address is on `lo` and served."""
    assert is_local_address(HOST_ADDRESS), "the host address must be the host's own before any traffic goes there"
    access = load_kubeconfig(cluster.kubeconfig)
    tls = ssl.create_default_context(cadata=access.ca_pem.decode())
    headers = {"Authorization": f"Bearer {access.token}"}
    url = f"https://{HOST_ADDRESS}:{cluster.port}/api/v1/namespaces/default/services/kubernetes"
    async with aiohttp.ClientSession() as session:
        for name in (HOST_ADDRESS, "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"):
            async with session.get(url, headers=headers, ssl=tls, server_hostname=name) as reply:
                assert reply.status == 200, name
                assert (await reply.json())["spec"]["clusterIP"] == KUBERNETES_IP
    certificate = x509.load_pem_x509_certificate((cluster.data_dir / "state" / "pki" / "apiserver.crt").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert {HOST_ADDRESS, KUBERNETES_IP} <= ips  # the ClusterIP in-cluster clients dial
    assert {"kubernetes", "kubernetes.default"} <= set(names.get_values_for_type(x509.DNSName))


def test_an_older_serving_certificate_is_reissued_for_the_in_cluster_addresses(tmp_path: Path) -> None:
    old = ensure_pki(tmp_path, ["127.0.0.1"])
    old_certificate = old.serving_cert_path.read_bytes()
    new = ensure_pki(tmp_path, ["127.0.0.1", KUBERNETES_IP, HOST_ADDRESS])
    assert new.serving_cert_path.read_bytes() != old_certificate
    assert (new.ca_cert_pem, new.token) == (old.ca_cert_pem, old.token)  # kubeconfigs keep working
    certificate = x509.load_pem_x509_certificate(new.serving_cert_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {ipaddress.ip_address(KUBERNETES_IP), ipaddress.ip_address(HOST_ADDRESS)} <= set(
        names.get_values_for_type(x509.IPAddress)
    )
    assert ensure_pki(tmp_path, [KUBERNETES_IP, HOST_ADDRESS]).serving_cert_path.read_bytes() == (
        new.serving_cert_path.read_bytes()
    )  # kept while it fits


def test_no_node_is_given_the_host_address_range(tmp_path: Path) -> None:
    others = [net for net in POD_NETWORK_RANGE.subnets(new_prefix=24) if net != RESERVED_RANGE]
    with pytest.raises(RuntimeFailure, match="no free /24"):
        free_subnet("node-a", others, tmp_path)


# -- the kubelet's variables --------------------------------------------------------------------------------------


async def test_every_container_gets_the_kubernetes_service_variables(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """Even with enableServiceLinks false, in any namespace (kube's masterServices rule)."""
    runtime = FakeRuntime()
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as api, running_node(api, tmp_path, runtime) as kubelet:
        manifest = pod_manifest("linked", kubelet.node_name, [box("app", "sleep 3600")], enableServiceLinks=False)
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "linked", lambda p: container_status(p, "app").get("containerID"))
    spec = runtime.spec_of(runtime_id(container_status(pod, "app")["containerID"]))
    assert spec is not None
    service_env = {k: v for k, v in spec.env.items() if k.startswith("KUBERNETES_")}
    assert service_env == {
        "KUBERNETES_SERVICE_HOST": KUBERNETES_IP,
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": f"tcp://{KUBERNETES_IP}:443",
        "KUBERNETES_PORT_443_TCP": f"tcp://{KUBERNETES_IP}:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": KUBERNETES_IP,
    }


# -- the official client in a real pod ------------------------------------------------------------------------

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
IN_CLUSTER_CLIENT = """
import json, os
from kubernetes import client, config
config.load_incluster_config()
namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
pods = client.CoreV1Api().list_namespaced_pod(namespace)
print(json.dumps({"host": os.environ["KUBERNETES_SERVICE_HOST"], "port": os.environ["KUBERNETES_SERVICE_PORT"],
                  "pods": sorted(p.metadata.name for p in pods.items)}))
"""


@pytest.fixture(scope="module")
def podman_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`kube-shim up` with a Podman node that lets pods mount the host's interpreter read-only."""
    with podman_root_with_test_image() as env:
        running = start_cluster(
            tmp_path_factory.mktemp("in-cluster"), nodes=(*podman_node_flags(env), *HOST_PATH_FLAGS)
        )
        try:
            running.kubectl("wait", "--for=condition=Ready", "node", "--all", WAIT_TIMEOUT)
            yield running
        finally:
            running.stop()


@pytest.mark.parametrize("runtime", [pytest.param("podman", marks=needs_podman)])
def test_a_pod_lists_pods_with_the_official_client_and_in_cluster_config(podman_cluster: Cluster, runtime: str) -> None:
    cluster = podman_cluster
    assert is_local_address(KUBERNETES_IP), "the proxy makes the service range the host's own"
    namespace = "t-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", namespace, "--timeout=60s")
    access = load_kubeconfig(cluster.kubeconfig)
    # the admin token stands in for a service-account token until the API issues those
    secret = {"token": access.token, "ca.crt": access.ca_pem.decode(), "namespace": namespace}
    cluster.kubectl("create", "secret", "generic", "api-access", "-n", namespace,
                    *(f"--from-literal={key}={value}" for key, value in secret.items()))  # fmt: skip
    volumes = [{"name": "api-access", "secret": {"secretName": "api-access"}}]
    mounts = [{"name": "api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}]
    pod = python_pod("in-cluster", IN_CLUSTER_CLIENT, volumes, mounts, automountServiceAccountToken=False)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod))
    cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/in-cluster", "-n", namespace,
                    "--timeout=90s")  # fmt: skip
    found = json.loads(cluster.kubectl("logs", "in-cluster", "-n", namespace).stdout.strip().splitlines()[-1])
    assert found == {"host": KUBERNETES_IP, "port": "443", "pods": ["in-cluster"]}
