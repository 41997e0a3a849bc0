"""Issue 18, the node agent as kube's kubelet behaves, on real Podman (`kube-shim up --runtime podman`) driven with
the real kubectl: `kubectl set image` really replaces the running container (kube's Killing event, a new
container from the new image, restartCount 1) and the status names the image that runs; the Node's podCIDR is
its Podman network's subnet, which its pods' addresses come from.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import podman

from shim.runtime.base import LABEL_CONTAINER_NAME, LABEL_POD_UID
from tests import podman_cluster
from tests.cluster import Cluster
from tests.images import TEST_IMAGE
from tests.kubectl_kit import apply, debugger_name, json_of, pod, pod_when, wait_ready
from tests.kubelet_kit import container_status
from tests.podman_cluster import NEVER_PULL, SECOND_IMAGE, busybox
from tests.prerequisites import needs_podman

pytestmark = needs_podman

# the private Podman root holding the test image under two tags, and `kube-shim up` with one Podman node
podman_env = podman_cluster.podman_env_with_second_tag
cluster = podman_cluster.cluster
podman_client = podman_cluster.podman_client

Obj = dict[str, Any]


def test_set_image_replaces_the_running_container(
    cluster: Cluster, namespace: str, podman_client: podman.PodmanClient
) -> None:
    apply(cluster, namespace, pod("moving", [busybox("app", "exec sleep 3600", **NEVER_PULL)]))
    wait_ready(cluster, namespace, "moving")
    before = container_status(json_of(cluster, "get", "pod", "moving", "-n", namespace), "app")
    assert (before["image"], before["restartCount"]) == (TEST_IMAGE, 0)

    cluster.kubectl("set", "image", "-n", namespace, "pod/moving", f"app={SECOND_IMAGE}")
    pod_when(cluster, namespace, "moving", "{.status.containerStatuses[0].restartCount}=1")
    wait_ready(cluster, namespace, "moving")
    moved = json_of(cluster, "get", "pod", "moving", "-n", namespace)
    after = container_status(moved, "app")
    assert after["image"] == SECOND_IMAGE
    assert after["containerID"] != before["containerID"]
    assert after["lastState"]["terminated"]["containerID"] == before["containerID"]
    assert after["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM through the container's init

    # what Podman runs: the new container from the second tag; the old one has exited
    containers = podman_client.containers.list(all=True, filters=[f"label={LABEL_POD_UID}={moved['metadata']['uid']}"])
    apps = {f"podman://{c.id}": c for c in containers if c.labels.get(LABEL_CONTAINER_NAME) == "app"}
    assert set(apps) == {before["containerID"], after["containerID"]}
    new, old = apps[after["containerID"]].attrs, apps[before["containerID"]].attrs  # list items: State a string
    assert (new["State"], new["Image"]) == ("running", SECOND_IMAGE)
    assert (old["State"], old["Image"]) == ("exited", TEST_IMAGE)

    events = [
        (e["reason"], e["message"], e.get("count"))
        for e in json_of(cluster, "get", "events", "-n", namespace)["items"]
        if e["involvedObject"]["name"] == "moving"
    ]
    assert ("Killing", "Container app definition changed, will be restarted", 1) in events, events
    assert ("Pulled", f'Container image "{SECOND_IMAGE}" already present on machine', 1) in events, events
    assert ("Created", "Created container: app", 2) in events, events
    assert ("Started", "Started container app", 2) in events, events


def test_an_image_that_cannot_run_leaves_the_status_naming_the_image_that_ran(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, pod("stuck", [busybox("app", "exec sleep 3600", **NEVER_PULL)]))
    wait_ready(cluster, namespace, "stuck")
    cluster.kubectl("set", "image", "-n", namespace, "pod/stuck", "app=localhost/kube-shim-test:absent")
    stuck = pod_when(
        cluster, namespace, "stuck", "{.status.containerStatuses[0].state.waiting.reason}=ErrImageNeverPull"
    )
    status = container_status(stuck, "app")
    assert status["image"] == TEST_IMAGE  # the image of the container that ran, not the one that cannot
    assert status["lastState"]["terminated"]["exitCode"] == 143
    assert "waiting" in status["state"] and not status["ready"]
    reasons = [
        (e["reason"], e["message"])
        for e in json_of(cluster, "get", "events", "-n", namespace)["items"]
        if e["involvedObject"]["name"] == "stuck"
    ]
    never = 'Container image "localhost/kube-shim-test:absent" is not present with pull policy of Never'
    assert ("ErrImageNeverPull", never) in reasons, reasons


def test_the_node_pod_cidr_is_its_podman_networks_subnet(
    cluster: Cluster, namespace: str, podman_client: podman.PodmanClient
) -> None:
    node = json_of(cluster, "get", "nodes")["items"][0]
    name = node["metadata"]["name"]
    network = next(n for n in podman_client.networks.list() if n.name.endswith(f"-{name}"))
    subnets = [entry["subnet"] for entry in network.attrs["subnets"]]
    assert node["spec"]["podCIDR"] == subnets[0]
    assert node["spec"]["podCIDRs"] == subnets
    assert cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}").stdout == subnets[0]
    described = cluster.kubectl("describe", "node", name).stdout
    assert f"PodCIDR:                      {subnets[0]}\n" in described
    assert f"PodCIDRs:                     {subnets[0]}\n" in described

    apply(cluster, namespace, pod("addressed", [busybox("app", "exec sleep 3600", **NEVER_PULL)]))
    wait_ready(cluster, namespace, "addressed")
    ip = json_of(cluster, "get", "pod", "addressed", "-n", namespace)["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnets[0])


# -- item 7: kubectl debug on real Podman ---------------------------------------------------------------------


def test_kubectl_debug_runs_an_interactive_debugger_in_the_targets_pid_namespace(
    cluster: Cluster, namespace: str
) -> None:
    apply(cluster, namespace, pod("web", [busybox("app", "exec sleep 3600", **NEVER_PULL)]))
    wait_ready(cluster, namespace, "web")
    session = cluster.kubectl(
        "debug", "-i", "-n", namespace, "pod/web", f"--image={TEST_IMAGE}", "--image-pull-policy=Never",
        "--target=app", "--", "sh", stdin="ps -o pid,args; echo debugged-$((40+2)); exit 7\n", check=False,
    )  # fmt: skip
    assert "sleep 3600" in session.stdout, session  # the target's processes are visible
    assert "debugged-42" in session.stdout, session
    name = debugger_name(session)

    web = pod_when(cluster, namespace, "web", "{.status.ephemeralContainerStatuses[0].state.terminated.exitCode}=7")
    (status,) = web["status"]["ephemeralContainerStatuses"]
    assert (status["name"], status["image"], status["restartCount"]) == (name, TEST_IMAGE, 0)
    assert status["state"]["terminated"]["reason"] == "Error"
    assert container_status(web, "app")["restartCount"] == 0  # the pod itself carries on
    assert web["status"]["phase"] == "Running"
    logs = cluster.kubectl("logs", "-n", namespace, "pod/web", "-c", name).stdout
    assert "debugged-42" in logs
