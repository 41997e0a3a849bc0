"""A frontend reaching its backend by Service name, end to end on real Podman: cluster DNS answers the pod's
resolver (kube's resolv.conf, search list, ndots:5) and the service proxy spreads its connections over every ready
backend (issue 10's first Must-show item).

The client is an ordinary HTTP client with the libc resolver (Python's urllib in a pod, on the host's interpreter
mounted read-only: busybox's static wget cannot resolve names). The cluster has its own service and load-balancer
ranges, and its DNS forwards to a closed port on 127.0.0.1, so no query or request leaves the machine; the
ClusterIP is checked to be this host's own before the pod sends to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster, free_port, start_cluster
from tests.host_python import HOST_PATH_FLAGS, python_pod
from tests.kubectl_kit import apply
from tests.podman_cluster import podman_node_flags
from tests.podman_env import podman_root_with_test_image
from tests.prerequisites import needs_podman
from tests.proxy_kit import cluster_ip, service, wait_ready, web_deployment

pytestmark = needs_podman

SERVICE_RANGE = "10.106.0.0/16"
LOAD_BALANCER_RANGE = "10.112.0.208/28"
REQUESTS = 40  # per URL: random spread misses one of three backends with a chance of about 1e-7
FETCH_ALL = """
import json, sys, urllib.request
seen = {}
requests, urls = int(sys.argv[1]), sys.argv[2:]
for url in urls:
    names = set()
    for _ in range(requests):
        with urllib.request.urlopen(url, timeout=5) as answer:
            names.add(answer.read().decode().strip())
    seen[url] = sorted(names)
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`kube-shim up` with one Podman node whose pods may mount the host's interpreter (replaces the session's
    cluster here, so the `namespace` fixture makes its namespaces in it)."""
    no_upstream = f"127.0.0.1:{free_port()}"  # nothing listens: a name outside the cluster fails, locally
    with podman_root_with_test_image() as env:
        flags = (*podman_node_flags(env), *HOST_PATH_FLAGS, "--service-cluster-ip-range", SERVICE_RANGE,
                 "--load-balancer-ip-range", LOAD_BALANCER_RANGE, "--dns-upstream", no_upstream)  # fmt: skip
        running = start_cluster(tmp_path_factory.mktemp("by-name"), nodes=flags)
        try:
            running.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
            yield running
        finally:
            running.stop()


def test_a_pod_fetches_http_web_by_short_name_full_name_and_cluster_ip_from_all_three_backends(
    cluster: Cluster, namespace: str
) -> None:
    apply(cluster, namespace, web_deployment("web", 3), service("web", 80, "http"))
    backends = wait_ready(cluster, namespace, "web", 3)
    address = cluster_ip(cluster, namespace, "web")
    urls = ["http://web/", f"http://web.{namespace}.svc.cluster.local/", f"http://{address}/"]

    pod = python_pod("frontend", FETCH_ALL)
    pod["spec"]["containers"][0]["command"].extend([str(REQUESTS), *urls])
    apply(cluster, namespace, pod)
    cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/frontend", "-n", namespace,
                    "--timeout=120s")  # fmt: skip
    seen = json.loads(cluster.kubectl("logs", "frontend", "-n", namespace).stdout.strip().splitlines()[-1])
    assert seen == {url: backends for url in urls}
