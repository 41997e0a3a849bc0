"""Reaching Services on a Podman cluster with its service proxy: a client pod to send from, and addresses the
test may send to only when this host handles them itself (traffic never leaves the machine)."""

from __future__ import annotations

import subprocess
from typing import Any

from tests.cluster import Cluster, wait_until
from tests.images import TEST_IMAGE
from tests.kubectl_kit import WAIT_TIMEOUT, apply, get
from tests.podman_cluster import NEVER_PULL
from tests.workloads import deployment as deployment_of

Obj = dict[str, Any]
HTTP_PORT = 8080  # where the web pods listen (their Services map their own ports to it)
READY_TIMEOUT = 60.0


def client_pod(cluster: Cluster, namespace: str) -> str:
    """A Ready pod `client` (sleeping) to run commands in; its name."""
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
            "spec": {"containers": [{"name": "c", "image": TEST_IMAGE, **NEVER_PULL, "command": ["sleep", "3600"]}],
                     "terminationGracePeriodSeconds": 0}}  # fmt: skip
    apply(cluster, namespace, body)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/client", "-n", namespace, WAIT_TIMEOUT)
    return "client"


def route_kind(address: str) -> str:
    """The first word of `ip route get`: `local` when this host handles the address itself."""
    return subprocess.run(["ip", "route", "get", address], capture_output=True, text=True, check=True).stdout.split()[0]


def host_handles(address: str) -> str:
    """The address, once asserted to stay on this host."""
    assert route_kind(address) == "local", f"{address} would leave this host: {route_kind(address)}"
    return address


def cluster_ip(cluster: Cluster, namespace: str, name: str) -> str:
    """The Service's cluster IP (asserted to stay on this host)."""
    return host_handles(get(cluster, namespace, "service", name)["spec"]["clusterIP"])


def web_deployment(name: str, replicas: int) -> Obj:
    """busybox httpd pods that answer with their own name; a pod is ready while /www/unready is absent."""
    script = f"mkdir -p /www && hostname > /www/index.html && exec httpd -f -p {HTTP_PORT} -h /www"
    container = {
        "name": "web",
        "image": TEST_IMAGE,
        **NEVER_PULL,
        "command": ["sh", "-c", script],
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        "readinessProbe": {"exec": {"command": ["sh", "-c", "test ! -e /www/unready"]}, "periodSeconds": 1,
                           "failureThreshold": 1},
    }  # fmt: skip
    return deployment(name, replicas, container)


def deployment(name: str, replicas: int, container: Obj) -> Obj:
    template = {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}}  # fmt: skip
    return deployment_of(name, replicas, template=template)


def service(name: str, port: int, target: int | str, type_: str = "ClusterIP") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": type_, "selector": {"app": name}, "ports": [{"port": port, "targetPort": target}]},
    }


def ready_pods(cluster: Cluster, namespace: str, app: str) -> list[str]:
    pods = get(cluster, namespace, "pods", "-l", f"app={app}")["items"]
    return sorted(
        p["metadata"]["name"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))
    )


def wait_ready(cluster: Cluster, namespace: str, app: str, count: int) -> list[str]:
    def ready() -> list[str] | None:
        pods = ready_pods(cluster, namespace, app)
        return pods if len(pods) == count else None

    return wait_until(ready, READY_TIMEOUT, f"{count} ready {app} pods")
