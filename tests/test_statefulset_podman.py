"""A StatefulSet on real Podman (`kube-shim up` with one Podman node agent), through the real kubectl: each pod
runs under its own stable hostname and appends it to the claim of its ordinal; a deleted pod comes back under
the same name and finds what its predecessor wrote on the same claim.
"""

from __future__ import annotations

from typing import Any

from tests import podman_cluster
from tests.cluster import Cluster
from tests.images import TEST_IMAGE
from tests.kubectl_kit import WAIT_TIMEOUT, apply, json_of
from tests.prerequisites import needs_podman

pytestmark = needs_podman

Obj = dict[str, Any]

# the module's fixtures, bound by name so pytest finds them here
podman_env = podman_cluster.podman_env
cluster = podman_cluster.cluster


def diary(replicas: int) -> Obj:
    """StatefulSet `diary`: each pod appends its hostname to /data/log on its own claim, then sleeps."""
    container = {
        "name": "c",
        "image": TEST_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", "hostname >> /data/log && exec sleep 3600"],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "diary"},
        "spec": {
            "serviceName": "diary",
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "diary"}},
            "template": {
                "metadata": {"labels": {"app": "diary"}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
                }
            ],
        },
    }


def log_of(cluster: Cluster, namespace: str, pod: str) -> str:
    return cluster.kubectl("exec", pod, "-n", namespace, "--", "cat", "/data/log").stdout


def test_pods_keep_their_hostname_and_claim_across_replacement(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, diary(2))
    cluster.kubectl("rollout", "status", "sts/diary", "-n", namespace, WAIT_TIMEOUT, timeout=150)
    assert log_of(cluster, namespace, "diary-0") == "diary-0\n"
    assert log_of(cluster, namespace, "diary-1") == "diary-1\n"
    old_uid = json_of(cluster, "get", "pod", "diary-1", "-n", namespace)["metadata"]["uid"]

    cluster.kubectl("delete", "pod", "diary-1", "-n", namespace, version="1.27")
    cluster.kubectl("wait", "--for=create", "pod/diary-1", "-n", namespace, WAIT_TIMEOUT, timeout=150)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/diary-1", "-n", namespace, WAIT_TIMEOUT, timeout=150)
    replaced = json_of(cluster, "get", "pod", "diary-1", "-n", namespace)
    assert replaced["metadata"]["uid"] != old_uid
    assert log_of(cluster, namespace, "diary-1") == "diary-1\ndiary-1\n"  # same claim, same name
    assert log_of(cluster, namespace, "diary-0") == "diary-0\n"
