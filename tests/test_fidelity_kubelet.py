"""Issue 18, the node agent as kube's kubelet behaves, on simulated nodes (`kube-shim up --runtime fake`) driven
with the real kubectl: a changed image restarts the container (kube's events and restart count), nodes carry
the podCIDR their pods' addresses come from, and a simulated pod answers exec and port-forward plainly without
running anything or sending traffic anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from shim.runtime.base import SandboxSpec
from shim.runtime.fake import SIMULATED_EXEC_EXIT, SIMULATED_NETWORK, FakeRuntime
from tests.cluster import Cluster, free_port, start_cluster
from tests.kubectl_kit import WAIT_TIMEOUT, apply, debugger_name, json_of, pod, pod_when, wait_ready
from tests.kubelet_kit import container_status
from tests.streamnode import kubectl_process

Obj = dict[str, Any]
NODES = 2


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    """The official Python client."""
    with config.new_client_from_config(str(cluster.kubeconfig)) as api:
        yield client.CoreV1Api(api)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`kube-shim up` with two simulated nodes (replaces the shared control-plane-only cluster here)."""
    running = start_cluster(tmp_path_factory.mktemp("fidelity-kubelet"), nodes=("--runtime", "fake", "--nodes", "2"))
    running.kubectl("wait", "--for=condition=Ready", "node", "--all", WAIT_TIMEOUT)
    yield running
    running.stop()


# -- item 10: podCIDR ------------------------------------------------------------------------------------------


def test_simulated_nodes_have_their_own_pod_cidr_and_their_pods_addresses_are_in_it(
    cluster: Cluster, namespace: str
) -> None:
    listed = cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}").stdout.split()
    nodes = json_of(cluster, "get", "nodes")["items"]
    cidrs = {node["metadata"]["name"]: node["spec"]["podCIDR"] for node in nodes}
    assert sorted(listed) == sorted(cidrs.values()) and len(set(listed)) == NODES
    networks = [ipaddress.ip_network(cidr) for cidr in listed]
    assert all(network.prefixlen == 24 for network in networks)
    assert not networks[0].overlaps(networks[1])
    for node in nodes:
        assert node["spec"]["podCIDRs"] == [node["spec"]["podCIDR"]]
        described = cluster.kubectl("describe", "node", node["metadata"]["name"]).stdout
        assert f"PodCIDR:                      {node['spec']['podCIDR']}\n" in described
        assert f"PodCIDRs:                     {node['spec']['podCIDR']}\n" in described

    for node in cidrs:  # one pod pinned to each node: its IP is from that node's range
        apply(cluster, namespace, pod(f"on-{node}", [{"name": "app", "image": "busybox:1.36"}], nodeName=node))
    for node, cidr in cidrs.items():
        wait_ready(cluster, namespace, f"on-{node}")
        ip = json_of(cluster, "get", "pod", f"on-{node}", "-n", namespace)["status"]["podIP"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidr), (node, ip, cidr)


# -- item 12: exec and port-forward on a simulated pod -------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.33"])  # SPDY, WebSocket
def test_exec_in_a_simulated_pod_runs_nothing_and_says_so(cluster: Cluster, namespace: str, version: str) -> None:
    apply(cluster, namespace, pod("sim", [{"name": "app", "image": "busybox:1.36"}]))
    wait_ready(cluster, namespace, "sim")
    result = cluster.kubectl("exec", "-n", namespace, "sim", "--", "ls", "-l", "/", version=version, check=False)
    assert result.returncode == SIMULATED_EXEC_EXIT == 126, result
    assert result.stdout == ""
    assert result.stderr == (
        "kube-shim: ls -l /: not run: this pod's node is simulated (fake runtime), no process runs in it\n"
        "command terminated with exit code 126\n"
    )


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_port_forward_to_a_simulated_pod_is_refused_with_the_reason(
    cluster: Cluster, namespace: str, version: str
) -> None:
    apply(cluster, namespace, pod("sim", [{"name": "app", "image": "busybox:1.36"}]))
    wait_ready(cluster, namespace, "sim")
    uid = json_of(cluster, "get", "pod", "sim", "-n", namespace)["metadata"]["uid"]
    forward = kubectl_process(cluster, version, "port-forward", "-n", namespace, "pod/sim", f"{free_port()}:80")
    try:
        stdout, stderr = forward.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        forward.kill()
        raise AssertionError(f"kubectl {version} port-forward kept running: {forward.communicate()}") from None
    assert forward.returncode == 1, (stdout, stderr)
    assert f"unable to forward ports of pod sim_{namespace}, uid {uid}: {SIMULATED_NETWORK}" in stderr, stderr
    assert "Forwarding from" not in stdout


async def test_the_simulated_runtime_never_dials_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    """Structurally: its port-forward dial is refused without any connection attempt (the pod address is made
    up, and may be someone's real address on this host)."""
    attempts: list[tuple[Any, ...]] = []

    async def recording_open_connection(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError("the simulated runtime tried to connect to a pod")

    monkeypatch.setattr(asyncio, "open_connection", recording_open_connection)
    runtime = FakeRuntime()
    sandbox = await runtime.create_sandbox(SandboxSpec(uid="u", namespace="ns", name="p", hostname="p"))
    assert await runtime.sandbox_ip(sandbox)  # it has a (made-up) address, which must never be dialled
    assert runtime.port_forward_refusal() == SIMULATED_NETWORK
    with pytest.raises(OSError, match="simulated"):
        await runtime.dial_pod(sandbox, 80)
    assert attempts == []


# -- item 3: a changed image restarts the container ---------------------------------------------------------


def test_set_image_restarts_the_container_with_kubes_events(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, pod("moving", [{"name": "app", "image": "busybox:1.36"}]))
    wait_ready(cluster, namespace, "moving")
    before = container_status(json_of(cluster, "get", "pod", "moving", "-n", namespace), "app")
    assert (before["image"], before["restartCount"]) == ("busybox:1.36", 0)

    cluster.kubectl("set", "image", "-n", namespace, "pod/moving", "app=busybox:1.37")
    pod_when(cluster, namespace, "moving", "{.status.containerStatuses[0].restartCount}=1")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/moving", "-n", namespace, WAIT_TIMEOUT)
    after = container_status(json_of(cluster, "get", "pod", "moving", "-n", namespace), "app")
    assert after["image"] == "busybox:1.37"
    assert after["imageID"] != before["imageID"]
    assert after["containerID"] != before["containerID"]
    assert after["lastState"].get("terminated", {}).get("containerID") == before["containerID"], after
    assert "running" in after["state"]
    row = cluster.kubectl("get", "pod", "moving", "-n", namespace, "--no-headers").stdout.split()
    assert row[1:4] == ["1/1", "Running", "1"]  # READY STATUS RESTARTS

    # kube's event correlator counts a repeated event (same reason, message, object) on the first one
    events = {
        (e["reason"], e["message"]): e
        for e in json_of(cluster, "get", "events", "-n", namespace)["items"]
        if e["involvedObject"]["name"] == "moving"
    }
    killing = events.get(("Killing", "Container app definition changed, will be restarted"))
    assert killing is not None and killing["count"] == 1, list(events)
    assert ("Pulling", 'Pulling image "busybox:1.37"') in events, list(events)
    assert any(reason == "Pulled" and "busybox:1.37" in message for reason, message in events), list(events)
    for second_run in (("Created", "Created container: app"), ("Started", "Started container app")):
        assert events[second_run]["count"] == 2, events[second_run]
        assert events[second_run]["lastTimestamp"] >= killing["lastTimestamp"]
    for reason in ("Killing", "Pulling", "Created", "Started"):
        assert {e["involvedObject"].get("fieldPath") for (r, _), e in events.items() if r == reason} == {
            "spec.containers{app}"
        }


# -- item 7: ephemeral containers (kubectl debug) -------------------------------------------------------------


def test_discovery_lists_the_ephemeralcontainers_subresource(cluster: Cluster) -> None:
    resources = json.loads(cluster.kubectl("get", "--raw", "/api/v1").stdout)["resources"]
    entry = next(r for r in resources if r["name"] == "pods/ephemeralcontainers")
    assert (entry["kind"], entry["namespaced"], entry["verbs"]) == ("Pod", True, ["get", "patch", "update"])


def test_kubectl_debug_starts_an_ephemeral_container_targeting_a_container(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, pod("sim", [{"name": "app", "image": "busybox:1.36"}]))
    wait_ready(cluster, namespace, "sim")
    debug = cluster.kubectl(
        "debug", "-n", namespace, "pod/sim", "--image=busybox:1.36", "--target=app", "--", "sleep", "3600"
    )
    name = debugger_name(debug)
    sim = pod_when(cluster, namespace, "sim", "{.status.ephemeralContainerStatuses[0].state.running.startedAt}")
    (debugger,) = sim["spec"]["ephemeralContainers"]
    assert (debugger["name"], debugger["targetContainerName"], debugger["command"]) == (name, "app", ["sleep", "3600"])
    assert debugger["imagePullPolicy"] == "IfNotPresent"  # defaulted as any container
    assert debugger["terminationMessagePath"] == "/dev/termination-log"
    (status,) = sim["status"]["ephemeralContainerStatuses"]
    assert (status["name"], status["image"], status["ready"], status["restartCount"]) == (
        name,
        "busybox:1.36",
        False,
        0,
    )
    assert sim["status"]["phase"] == "Running"
    assert [c["name"] for c in sim["status"]["containerStatuses"]] == ["app"]
    started = [
        e
        for e in json_of(cluster, "get", "events", "-n", namespace)["items"]
        if e["reason"] == "Started" and e["involvedObject"]["name"] == "sim"
    ]
    assert {(e["message"], e["involvedObject"]["fieldPath"]) for e in started} == {
        ("Started container app", "spec.containers{app}"),
        (f"Started container {name}", f"spec.ephemeralContainers{{{name}}}"),
    }


def test_the_ephemeralcontainers_subresource_changes_only_ephemeral_containers_and_only_adds(
    cluster: Cluster, namespace: str, core: client.CoreV1Api
) -> None:
    apply(cluster, namespace, pod("sim", [{"name": "app", "image": "busybox:1.36"}], nodeName="nowhere"))
    dbg = {"name": "dbg", "image": "busybox:1.36", "stdin": True, "tty": True}
    patched = core.patch_namespaced_pod_ephemeralcontainers(
        "sim", namespace, {"metadata": {"labels": {"ignored": "yes"}}, "spec": {"ephemeralContainers": [dbg]}}
    )
    assert [c.name for c in patched.spec.ephemeral_containers] == ["dbg"]
    assert "ignored" not in (patched.metadata.labels or {})  # only spec.ephemeralContainers is taken
    read = core.read_namespaced_pod_ephemeralcontainers("sim", namespace)
    assert read.kind == "Pod" and read.spec.ephemeral_containers[0].image == "busybox:1.36"

    def refused(ephemeral: list[Obj]) -> str:
        with pytest.raises(ApiException) as caught:
            core.replace_namespaced_pod_ephemeralcontainers(
                "sim", namespace, {**core.api_client.sanitize_for_serialization(read), "spec": {
                    **core.api_client.sanitize_for_serialization(read.spec), "ephemeralContainers": ephemeral}}
            )  # fmt: skip
        assert caught.value.status == 422
        body = json.loads(caught.value.body)
        assert (body["reason"], body["details"]["kind"], body["details"]["name"]) == ("Invalid", "Pod", "sim")
        return body["message"]

    existing = core.api_client.sanitize_for_serialization(read.spec.ephemeral_containers[0])
    assert refused([]) == (
        'Pod "sim" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be '
        "removed\n"
    )
    assert refused([{**existing, "image": "busybox:1.37"}]).startswith(
        'Pod "sim" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be '
        "changed\n"
    )
    assert refused([existing, {"name": "app", "image": "busybox:1.36"}]) == (
        'Pod "sim" is invalid: spec.ephemeralContainers[1].name: Duplicate value: "app"'
    )
    assert refused([existing, {"name": "d2", "image": "busybox:1.36", "targetContainerName": "nope"}]) == (
        'Pod "sim" is invalid: spec.ephemeralContainers[1].targetContainerName: Not found: "nope"'
    )
    with_port = {"name": "d2", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}
    assert refused([existing, with_port]) == (
        'Pod "sim" is invalid: spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container'
    )
    # the pod itself may not change them
    regular = cluster.kubectl(
        "patch", "pod", "sim", "-n", namespace, "--type=json", "-p",
        '[{"op":"remove","path":"/spec/ephemeralContainers"}]', check=False,
    )  # fmt: skip
    assert regular.returncode == 1
    assert 'The Pod "sim" is invalid: spec: Forbidden: pod updates may not change fields other than' in regular.stderr
