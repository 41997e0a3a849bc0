"""A DaemonSet on two Podman node agents (`kube-shim up` with node-a, and node-b as its own `kube-shim node`
process): a real container on each node, each answering with its own node's name, and a rolling update that
replaces both with a new command.
"""

from __future__ import annotations

import json
from typing import Any

from tests import podman_cluster
from tests.cluster import Cluster
from tests.images import TEST_IMAGE
from tests.kubectl_kit import WAIT_TIMEOUT, json_of
from tests.prerequisites import needs_podman
from tests.two_nodes import FIRST, SECOND, cluster_on_two_podman_nodes

pytestmark = needs_podman

Obj = dict[str, Any]

# the module's fixtures, bound by name so pytest finds them here
podman_env = podman_cluster.podman_env
cluster = cluster_on_two_podman_nodes("daemonset-nodes")


def node_agent(greeting: str) -> Obj:
    """A DaemonSet whose container keeps `greeting NODE` (its node, from the downward API) in a file."""
    script = f'echo "{greeting} $NODE" > /tmp/greeting && exec sleep 3600'
    container = {
        "name": "agent",
        "image": TEST_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
            },
        },
    }


def greetings(cluster: Cluster, namespace: str) -> dict[str, str]:
    """Each daemon pod's node and what its container wrote."""
    pods = json_of(cluster, "get", "pods", "-n", namespace, "-l", "app=agent")["items"]
    return {
        pod["spec"]["nodeName"]: cluster.kubectl(
            "exec", pod["metadata"]["name"], "-n", namespace, "--", "cat", "/tmp/greeting"
        ).stdout.strip()
        for pod in pods
    }


def test_a_daemon_set_runs_a_container_on_each_node_and_rolls_a_new_one_out(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node_agent("hello from")))
    rolled = cluster.kubectl("rollout", "status", "ds/agent", "-n", namespace, WAIT_TIMEOUT)
    assert rolled.stdout.endswith('daemon set "agent" successfully rolled out\n')
    assert greetings(cluster, namespace) == {FIRST: f"hello from {FIRST}", SECOND: f"hello from {SECOND}"}

    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node_agent("updated on")))
    cluster.kubectl("rollout", "status", "ds/agent", "-n", namespace, WAIT_TIMEOUT)
    assert greetings(cluster, namespace) == {FIRST: f"updated on {FIRST}", SECOND: f"updated on {SECOND}"}
    ds = json_of(cluster, "get", "ds", "agent", "-n", namespace)
    assert {k: ds["status"][k] for k in ("desiredNumberScheduled", "numberReady", "updatedNumberScheduled")} == {
        "desiredNumberScheduled": 2,
        "numberReady": 2,
        "updatedNumberScheduled": 2,
    }

    cluster.kubectl("delete", "ds", "agent", "-n", namespace)
    cluster.kubectl("wait", "--for=delete", "pod", "-l", "app=agent", "-n", namespace, WAIT_TIMEOUT)
    assert json_of(cluster, "get", "pods", "-n", namespace)["items"] == []
