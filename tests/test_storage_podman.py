"""Persistent volumes on real Podman: the real `kube-shim up` with one node agent whose pods run in a private
Podman root, driven with the real kubectl (issue 11's storage).

A pod writes into its claim's local-path volume and is deleted; a new pod on the same node reads what it wrote, and
one mounting a sub-path of the claim writes inside it.
A pod whose claim does not exist yet waits (FailedScheduling) and starts once the claim is created. A hostPath
volume under the node's `--allowed-host-path` serves the host's files, and `readOnly` claims cannot be written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.client import ApiClient
from shim.machinery.resources import EVENTS, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS
from tests import kubelet_kit
from tests.cluster import Cluster
from tests.images import TEST_IMAGE
from tests.prerequisites import needs_podman
from tests.workloads import one_podman_node, watch_until

pytestmark = needs_podman

Obj = dict[str, Any]
DONE = "--timeout=120s"


@pytest.fixture(scope="module")
def host_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one host directory the node allows hostPath volumes under."""
    return tmp_path_factory.mktemp("storage-host-paths")


@pytest.fixture(scope="module")
def cluster(host_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with one_podman_node(tmp_path_factory, ("--allowed-host-path", str(host_dir))) as running:
        yield running


api = kubelet_kit.api  # a fixture: pytest finds it by name here


def claim(name: str, storage_class: str | None = None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def pod(name: str, claim_name: str, script: str, read_only: bool = False, sub_path: str = "") -> Obj:
    """A pod that runs `script` once with the claim (or a sub-path of it) mounted at /data."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": TEST_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": sub_path}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name, "readOnly": read_only}}],
        },
    }


def run_to_completion(cluster: Cluster, namespace: str, name: str) -> str:
    """Wait for the pod to succeed; its log."""
    cluster.kubectl(
        "wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}", "-n", namespace, DONE, timeout=150
    )
    return cluster.kubectl("logs", name, "-n", namespace).stdout


async def test_data_written_to_a_claim_outlives_the_pod_on_its_node(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("data"), namespace)
    write = "echo hello from $(hostname) > /data/greeting && echo wrote"
    await api.create(PODS, pod("writer", "data", write), namespace)
    assert run_to_completion(cluster, namespace, "writer") == "wrote\n"
    bound = await api.get(PERSISTENT_VOLUME_CLAIMS, "data", namespace)
    volume = await api.get(PERSISTENT_VOLUMES, bound["spec"]["volumeName"])
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert (directory / "greeting").read_text() == "hello from writer\n"  # on the node's disk, not in the pod

    await api.delete(PODS, "writer", namespace)
    await watch_until(api, PODS, namespace, lambda pods: not pods or None, what="the writer gone")
    await api.create(PODS, pod("reader", "data", "cat /data/greeting"), namespace)
    assert run_to_completion(cluster, namespace, "reader") == "hello from writer\n"

    await api.create(PODS, pod("nested", "data", "ls /data; echo inner > /data/file", sub_path="app/v1"), namespace)
    assert run_to_completion(cluster, namespace, "nested") == ""  # a fresh directory inside the volume
    assert (directory / "app" / "v1" / "file").read_text() == "inner\n"

    script = "touch /data/other 2>&1 || echo refused"
    await api.create(PODS, pod("read-only", "data", script, read_only=True), namespace)
    assert run_to_completion(cluster, namespace, "read-only").endswith("Read-only file system\nrefused\n")
    assert not (directory / "other").exists()


async def test_a_pod_whose_claim_is_missing_waits_then_starts(cluster: Cluster, api: ApiClient, namespace: str) -> None:
    await api.create(PODS, pod("patient", "later", "echo started"), namespace)
    failed = await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: next((e for e in events if e["reason"] == "FailedScheduling"), None),
        what="FailedScheduling",
    )
    assert 'persistentvolumeclaim "later" not found' in failed["message"]
    assert not (await api.get(PODS, "patient", namespace))["spec"].get("nodeName")

    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("later"), namespace)
    assert run_to_completion(cluster, namespace, "patient") == "started\n"


async def test_a_host_path_volume_under_the_allowed_path_serves_the_hosts_files(
    cluster: Cluster, api: ApiClient, namespace: str, host_dir: Path
) -> None:
    shared = host_dir / namespace
    shared.mkdir()
    (shared / "motd").write_text("from the host\n")
    klass = f"{namespace}-host"
    await api.create(
        PERSISTENT_VOLUMES,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": klass},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": klass,
                "hostPath": {"path": str(shared), "type": "Directory"},
            },
        },
    )
    await api.create(PERSISTENT_VOLUME_CLAIMS, claim("host", klass), namespace)
    await api.create(PODS, pod("host-reader", "host", "cat /data/motd && echo back > /data/reply"), namespace)
    assert run_to_completion(cluster, namespace, "host-reader") == "from the host\n"
    assert (shared / "reply").read_text() == "back\n"
