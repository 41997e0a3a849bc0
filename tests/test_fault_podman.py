"""Faults with real Podman: `kube-shim up` killed with SIGKILL (mid-rollout, too), and its Podman service killed
under a running node. Nothing leaks, nothing runs twice, running pods are left alone.

`kube-shim up` starts its own `podman system service` here (no `--podman-socket`), pointed at a private Podman
root through CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (`tests/podman_env.py`).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import podman
import pytest

from shim.machinery.resources import PODS
from shim.pki import cluster_id
from shim.runtime.base import LABEL_CLUSTER, LABEL_CONTAINER_NAME, LABEL_POD_UID
from tests import podman_cluster
from tests.cluster import Cluster, start_cluster, wait_until
from tests.images import TEST_IMAGE
from tests.kubectl_kit import WAIT_TIMEOUT, apply, json_of, pod, wait_ready
from tests.kubelet_kit import api_client, container_status
from tests.podman_cluster import NEVER_PULL, busybox, web_pods_running
from tests.podman_env import PodmanEnv
from tests.prerequisites import needs_podman
from tests.workloads import watch_until

pytestmark = needs_podman

Obj = dict[str, Any]
NODE = "n1"
GONE_DEADLINE = 20.0  # the service stops in about 1.5 s after its SIGTERM
CONVERGE_DEADLINE = 120.0


# a private Podman root with the test image (its own service is only the test's window into it)
podman_env = podman_cluster.podman_env


@pytest.fixture
def cluster(podman_env: PodmanEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """`kube-shim up` with one Podman node that starts its own service on the private root (replaces the
    session's cluster here, so the `namespace` fixture makes its namespaces in this one)."""
    for key, value in podman_env.env.items():
        monkeypatch.setenv(key, value)
    data_dir = Path(tempfile.mkdtemp(prefix="ks-"))  # short: the service socket lives below it
    cluster = start_cluster(data_dir, nodes=("--runtime", "podman", "--nodes", "1", "--name", NODE))
    cluster.kubectl("wait", "--for=condition=Ready", "node", NODE, WAIT_TIMEOUT)
    yield cluster
    cluster.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def service_pid(cluster: Cluster) -> int:
    """The pid of the Podman service the cluster's node started (from its pid file)."""
    pid_file = cluster.data_dir / "state" / "nodes" / NODE / "runtime" / "podman" / "podman-service.pid"
    return int(pid_file.read_text())


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def kill_9(cluster: Cluster) -> None:
    cluster.process.send_signal(signal.SIGKILL)
    cluster.process.wait()


def restart(cluster: Cluster) -> None:
    """Start `kube-shim up` again on the same data dir and port; `cluster` then stands for the new process."""
    again = start_cluster(
        cluster.data_dir, port=cluster.port, nodes=("--runtime", "podman", "--nodes", "1", "--name", NODE)
    )
    cluster.process, cluster.reader = again.process, again.reader


def podman_pods(env: PodmanEnv, cluster: Cluster) -> list[Obj]:
    """The Podman pods of `cluster`'s node: their labels and ids."""
    ca = (cluster.data_dir / "state" / "pki" / "ca.crt").read_bytes()
    with podman.PodmanClient(base_url=env.base_url) as client:
        listed = client.pods.list(filters={"label": f"{LABEL_CLUSTER}={cluster_id(ca)}"})
        return [{"id": p.id, "labels": p.attrs.get("Labels") or {}} for p in listed]


def run_sleeper(cluster: Cluster, namespace: str, name: str) -> Obj:
    """A pod whose container `app` sleeps, once Ready."""
    apply(cluster, namespace, pod(name, [busybox("app", "exec sleep 3600", **NEVER_PULL)]))
    wait_ready(cluster, namespace, name)
    return json_of(cluster, "get", "pod", name, "-n", namespace)


def running_containers(env: PodmanEnv, uid: str, name: str) -> list[str]:
    """Ids of the running Podman containers of pod `uid` named `name`."""
    with podman.PodmanClient(base_url=env.base_url) as client:
        containers = client.containers.list(filters=[f"label={LABEL_POD_UID}={uid}"])
        return [c.id for c in containers if c.labels.get(LABEL_CONTAINER_NAME) == name]


def test_kill_9_of_up_takes_its_podman_service_along_and_a_restart_adopts_the_pods(
    cluster: Cluster, podman_env: PodmanEnv, namespace: str
) -> None:
    before = run_sleeper(cluster, namespace, "keeper")
    pid = service_pid(cluster)
    assert alive(pid)

    kill_9(cluster)
    wait_until(lambda: not alive(pid), GONE_DEADLINE, f"the podman service (pid {pid}) to end with its parent")
    uid = before["metadata"]["uid"]
    running = container_status(before, "app")["containerID"]
    assert [f"podman://{c}" for c in running_containers(podman_env, uid, "app")] == [running]  # conmon kept it

    restart(cluster)
    assert service_pid(cluster) != pid and alive(service_pid(cluster))
    assert cluster.kubectl("exec", "-n", namespace, "keeper", "--", "echo", "adopted").stdout == "adopted\n"
    after = json_of(cluster, "get", "pod", "keeper", "-n", namespace)
    assert container_status(after, "app")["containerID"] == running
    assert container_status(after, "app")["restartCount"] == 0


async def test_a_killed_podman_service_is_replaced_and_running_pods_are_untouched(
    cluster: Cluster, podman_env: PodmanEnv, namespace: str
) -> None:
    before = run_sleeper(cluster, namespace, "steady")
    pid = service_pid(cluster)

    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: service_pid(cluster) != pid and alive(service_pid(cluster)), GONE_DEADLINE,
               "a new podman service")  # fmt: skip

    # new pods still start, and the running one was never touched
    run_sleeper(cluster, namespace, "newcomer")
    after = json_of(cluster, "get", "pod", "steady", "-n", namespace)
    assert container_status(after, "app")["containerID"] == container_status(before, "app")["containerID"]
    assert container_status(after, "app")["restartCount"] == 0
    assert cluster.kubectl("exec", "-n", namespace, "steady", "--", "echo", "reached").stdout == "reached\n"
    node = json_of(cluster, "get", "node", NODE)
    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"


def some_but_not_all_running(count: int) -> Callable[[list[Obj]], bool]:
    def check(pods: list[Obj]) -> bool:
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        return 0 < len(running) < count

    return check


async def test_kill_9_mid_rollout_converges_to_exactly_the_desired_pods(
    cluster: Cluster, podman_env: PodmanEnv, namespace: str
) -> None:
    replicas = 10
    cluster.kubectl("create", "deployment", "web", f"--image={TEST_IMAGE}", f"--replicas={replicas}",
                    "-n", namespace, "--", "httpd", "-f", "-p", "80")  # fmt: skip
    async with api_client(cluster) as api:
        await watch_until(api, PODS, namespace, some_but_not_all_running(replicas), CONVERGE_DEADLINE,
                          "some but not all web pods running")  # fmt: skip
    pid = service_pid(cluster)
    kill_9(cluster)
    wait_until(lambda: not alive(pid), GONE_DEADLINE, "the podman service to end with its parent")

    restart(cluster)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=120s")
    async with api_client(cluster) as api:
        pods = await watch_until(api, PODS, namespace, web_pods_running(replicas, TEST_IMAGE), CONVERGE_DEADLINE,
                                 f"exactly {replicas} running web pods")  # fmt: skip
    # one Podman pod per API pod, and no other: nothing orphaned, nothing started twice
    uids = sorted(p["metadata"]["uid"] for p in pods)

    def podman_matches_api() -> bool:
        return sorted(p["labels"].get(LABEL_POD_UID, "") for p in podman_pods(podman_env, cluster)) == uids

    wait_until(podman_matches_api, CONVERGE_DEADLINE, "Podman's pods to be exactly the API's")
    for listed in pods:  # each runs its container once, the one the API reports
        name = listed["spec"]["containers"][0]["name"]
        running = running_containers(podman_env, listed["metadata"]["uid"], name)
        assert [f"podman://{c}" for c in running] == [container_status(listed, name)["containerID"]]
