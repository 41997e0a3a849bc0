"""kube-shim end to end, as a user runs it: the real `kube-shim up` (API server, controllers, scheduler and one
node agent whose pods run in a private Podman root) driven with the real kubectl.

A deployment rolls out a new image and back, heals killed containers and deleted pods, scales up and down and
leaves nothing behind when deleted (issue 5); pods share localhost and an emptyDir, take env from ConfigMaps
and Secrets, log, exec, crash-loop, fail probes, get OOM-killed, stop gracefully, are port-forwarded to, and
are adopted by a restarted agent (issue 4). Waiting is done with `kubectl wait`, `kubectl rollout status` or a
watch, each with a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import podman

from shim.client import ApiClient
from shim.machinery.resources import EVENTS, PODS, REPLICASETS
from shim.runtime.base import LABEL_CONTAINER_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID
from tests import kubelet_kit, podman_cluster
from tests.cluster import Cluster, free_port
from tests.images import TEST_IMAGE
from tests.kubectl_kit import apply, json_of, pod, wait_ready
from tests.kubelet_kit import DEADLINE, condition, container_status, is_running_and_ready
from tests.podman_cluster import (
    NEVER_PULL,
    ROLLOUT_TIMEOUT,
    SECOND_IMAGE,
    busybox,
    create_web,
    podman_node_flags,
    restart,
    web_pods_running,
)
from tests.podman_env import PodmanEnv
from tests.prerequisites import needs_podman
from tests.streamnode import Lines, exchange, kubectl_process
from tests.workloads import watch_until

pytestmark = needs_podman

Obj = dict[str, Any]

# the module's fixtures, bound by name so pytest finds them here
podman_env = podman_cluster.podman_env_with_second_tag
cluster = podman_cluster.cluster
podman_client = podman_cluster.podman_client
api = kubelet_kit.api  # a client for watching (the tests act through kubectl)


# -- issue 5: a deployment on real Podman -------------------------------------------------------------------


async def test_a_deployment_rolls_out_a_new_image_and_back(cluster: Cluster, api: ApiClient, namespace: str) -> None:
    create_web(cluster, namespace, replicas=3)
    await watch_pods(api, namespace, web_pods_running(3, TEST_IMAGE), "3 web pods on the first image")
    template = json_of(cluster, "get", "deployment", "web", "-n", namespace)["spec"]["template"]
    name = template["spec"]["containers"][0]["name"]

    cluster.kubectl("set", "image", "deployment/web", f"{name}={SECOND_IMAGE}", "-n", namespace)
    rolled = cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, ROLLOUT_TIMEOUT, version="1.27")
    assert 'deployment "web" successfully rolled out' in rolled.stdout
    pods = await watch_pods(api, namespace, web_pods_running(3, SECOND_IMAGE), "3 web pods on the second image")
    assert {container_status(p, name)["image"] for p in pods} == {SECOND_IMAGE}  # what Podman runs
    replicasets = json_of(cluster, "get", "replicasets", "-n", namespace)["items"]
    assert sorted(rs["spec"]["replicas"] for rs in replicasets) == [0, 3]

    cluster.kubectl("rollout", "undo", "deployment/web", "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, ROLLOUT_TIMEOUT)
    pods = await watch_pods(api, namespace, web_pods_running(3, TEST_IMAGE), "3 web pods back on the first image")
    assert {container_status(p, name)["image"] for p in pods} == {TEST_IMAGE}
    latest = cluster.kubectl("rollout", "history", "deployment/web", "--revision=3", "-n", namespace).stdout
    assert f"Image:\t{TEST_IMAGE}\n" in latest  # the undo is the newest revision


async def test_a_deployment_heals_a_killed_container_and_a_deleted_pod(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    create_web(cluster, namespace, replicas=3)
    pods = await watch_pods(api, namespace, web_pods_running(3, TEST_IMAGE), "3 running web pods")
    victim, doomed = pods[0]["metadata"]["name"], pods[1]["metadata"]["name"]

    # PID 1 is the container's init: it passes the TERM on to httpd and exits with it
    cluster.kubectl("exec", "-n", namespace, victim, "--", "kill", "1", check=False)

    def restarted_and_ready(pods: list[Obj]) -> Obj | None:
        pod = next((p for p in pods if p["metadata"]["name"] == victim), None)
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
        return pod if statuses[0].get("restartCount", 0) >= 1 and is_running_and_ready(pod or {}) else None

    healed = await watch_until(api, PODS, namespace, restarted_and_ready, DEADLINE, f"{victim} restarted and Ready")
    status = healed["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 143  # 128 + SIGTERM

    cluster.kubectl("delete", "pod", doomed, "-n", namespace)
    pods = await watch_pods(api, namespace, web_pods_running(3, TEST_IMAGE), "a replacement for the deleted pod")
    names = {p["metadata"]["name"] for p in pods}
    assert doomed not in names and victim in names


async def test_a_deployment_scales_and_leaves_nothing_behind_when_deleted(
    cluster: Cluster, api: ApiClient, namespace: str, podman_client: podman.PodmanClient
) -> None:
    create_web(cluster, namespace, replicas=3)
    await watch_pods(api, namespace, web_pods_running(3, TEST_IMAGE), "3 running web pods")

    cluster.kubectl("scale", "deployment/web", "--replicas=5", "-n", namespace)
    await watch_pods(api, namespace, web_pods_running(5, TEST_IMAGE), "exactly 5 running web pods")
    cluster.kubectl("scale", "deployment/web", "--replicas=2", "-n", namespace)
    await watch_pods(api, namespace, web_pods_running(2, TEST_IMAGE), "exactly 2 running web pods")
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, ROLLOUT_TIMEOUT)
    assert json_of(cluster, "get", "deployment", "web", "-n", namespace)["status"]["availableReplicas"] == 2

    cluster.kubectl("delete", "deployment", "web", "-n", namespace)
    await watch_until(api, REPLICASETS, namespace, lambda items: not items, DEADLINE, "no replicasets")
    await watch_until(api, PODS, namespace, lambda items: not items, DEADLINE, "no pods")
    # the agent removes a pod's Podman pod before its API object, so nothing can still be there
    ours = f"{LABEL_POD_NAMESPACE}={namespace}"
    assert podman_client.pods.list(filters={"label": ours}) == []
    assert podman_client.containers.list(all=True, filters={"label": ours}) == []


async def watch_pods(api: ApiClient, namespace: str, check: Callable[[list[Obj]], Any], what: str) -> Any:
    return await watch_until(api, PODS, namespace, check, DEADLINE, what)


# -- issue 4: pods on real Podman -----------------------------------------------------------------------------


def test_two_containers_share_localhost_and_an_empty_dir(cluster: Cluster, namespace: str) -> None:
    mounts = [{"name": "shared", "mountPath": "/shared"}]
    web = busybox("web", "exec httpd -f -p 80 -h /shared", volumeMounts=mounts, **NEVER_PULL)
    writer = busybox("writer", "echo hello-from-writer > /shared/index.html; exec sleep 3600",
                     volumeMounts=mounts, **NEVER_PULL)  # fmt: skip
    apply(cluster, namespace, pod("duo", [web, writer], volumes=[{"name": "shared", "emptyDir": {}}]))
    wait_ready(cluster, namespace, "duo")

    # the writer's page, served by its sibling, fetched over the pod's shared localhost
    fetch = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 80"
    page = cluster.kubectl("exec", "-n", namespace, "duo", "-c", "writer", "--", "sh", "-c", fetch).stdout
    lines = page.splitlines()
    assert lines[0].startswith("HTTP/1.1 200") and lines[-2:] == ["", "hello-from-writer"]


def test_env_from_a_configmap_and_a_secret(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "app-config", "--from-literal=MODE=fast", "--from-literal=LEVEL=3",
                    "-n", namespace)  # fmt: skip
    cluster.kubectl("create", "secret", "generic", "app-secret", "--from-literal=password=s3cret", "-n", namespace)
    env = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}}}]
    app = busybox("app", "exec sleep 3600", envFrom=[{"configMapRef": {"name": "app-config"}}], env=env,
                  imagePullPolicy="IfNotPresent")  # fmt: skip
    apply(cluster, namespace, pod("configured", [app]))
    wait_ready(cluster, namespace, "configured")

    seen = cluster.kubectl("exec", "-n", namespace, "configured", "--", "env").stdout.splitlines()
    assert {"MODE=fast", "LEVEL=3", "PASSWORD=s3cret"} <= set(seen)


def test_logs_follow_and_exec_exit_codes(cluster: Cluster, namespace: str) -> None:
    script = "echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"
    apply(cluster, namespace, pod("chatty", [busybox("app", script, **NEVER_PULL)]))
    wait_ready(cluster, namespace, "chatty")

    follow = kubectl_process(cluster, "1.33", "logs", "-f", "-n", namespace, "chatty")
    try:
        Lines(follow).wait_for("tick 3")  # written after the follow began: it streams
    finally:
        follow.kill()
        follow.wait()
    for version in ("1.27", "1.33"):
        logs = cluster.kubectl("logs", "-n", namespace, "chatty", version=version).stdout.splitlines()
        assert logs[:3] == ["started", "tick 1", "tick 2"]
        result = cluster.kubectl("exec", "-n", namespace, "chatty", "--", "sh", "-c", "echo out; echo err >&2; exit 7",
                                 version=version, check=False)  # fmt: skip
        assert (result.returncode, result.stdout) == (7, "out\n"), result.stderr
        assert "err" in result.stderr


async def test_a_crashing_container_goes_into_crash_loop_back_off(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    apply(cluster, namespace, pod("crasher", [busybox("app", "echo dying; exit 3", **NEVER_PULL)]))
    counts: list[int] = []

    def looping(pods: list[Obj]) -> Obj | None:
        status = container_status(pods[0], "app") if pods else {}
        if status and (not counts or counts[-1] != status["restartCount"]):
            counts.append(status["restartCount"])
        waiting = status.get("state", {}).get("waiting", {})
        return pods[0] if status.get("restartCount", 0) >= 2 and waiting.get("reason") == "CrashLoopBackOff" else None

    crashing = await watch_pods(api, namespace, looping, "CrashLoopBackOff after 2 restarts")
    assert counts == sorted(counts) and counts[-1] >= 2  # the restarts only grow
    last = container_status(crashing, "app")["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    table = cluster.kubectl("get", "pod", "crasher", "-n", namespace).stdout
    assert "CrashLoopBackOff" in table
    assert cluster.kubectl("logs", "--previous", "-n", namespace, "crasher").stdout == "dying\n"


async def test_a_failing_liveness_probe_restarts_the_container(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    # healthy until a file says otherwise; the restarted container starts with a fresh filesystem
    probe = {"exec": {"command": ["sh", "-c", "test ! -e /tmp/sick"]}, "periodSeconds": 1, "failureThreshold": 1}
    app = busybox("app", "exec sleep 3600", livenessProbe=probe, **NEVER_PULL)
    apply(cluster, namespace, pod("patient", [app], terminationGracePeriodSeconds=5))
    wait_ready(cluster, namespace, "patient")

    cluster.kubectl("exec", "-n", namespace, "patient", "--", "touch", "/tmp/sick")

    def restarted(pods: list[Obj]) -> Obj | None:
        ok = pods and container_status(pods[0], "app").get("restartCount", 0) >= 1 and is_running_and_ready(pods[0])
        return pods[0] if ok else None

    healed = await watch_pods(api, namespace, restarted, "a restart after the liveness probe failed")
    status = container_status(healed, "app")
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 143  # stopped with SIGTERM, not killed
    events = {(e["reason"], e["message"]) for e in json_of(cluster, "get", "events", "-n", namespace)["items"]}
    assert ("Killing", "Container app failed liveness probe, will be restarted") in events
    assert any(reason == "Unhealthy" and message.startswith("Liveness probe failed") for reason, message in events)


async def test_readiness_gates_the_ready_condition(cluster: Cluster, api: ApiClient, namespace: str) -> None:
    probe = {"exec": {"command": ["test", "-e", "/tmp/ready"]}, "periodSeconds": 1}
    apply(cluster, namespace, pod("gated", [busybox("app", "exec sleep 3600", readinessProbe=probe, **NEVER_PULL)]))
    await watch_until(api, EVENTS, namespace, lambda events: any(e["reason"] == "Unhealthy" for e in events),
                      DEADLINE, "a failed readiness probe")  # fmt: skip
    unready = json_of(cluster, "get", "pod", "gated", "-n", namespace)
    assert unready["status"]["phase"] == "Running"
    assert (condition(unready, "Ready")["status"], container_status(unready, "app")["ready"]) == ("False", False)

    cluster.kubectl("exec", "-n", namespace, "gated", "--", "touch", "/tmp/ready")
    wait_ready(cluster, namespace, "gated")
    ready = json_of(cluster, "get", "pod", "gated", "-n", namespace)
    assert condition(ready, "ContainersReady")["status"] == "True"
    assert container_status(ready, "app")["ready"] is True


async def test_a_container_over_its_memory_limit_is_oom_killed(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    # the shell doubles a string until the 16 MiB cgroup limit kills it
    hog = busybox("hog", "x=0123456789abcdef; while true; do x=$x$x; done",
                  resources={"limits": {"memory": "16Mi"}}, **NEVER_PULL)  # fmt: skip
    apply(cluster, namespace, pod("hog", [hog]))

    def oom_killed(pods: list[Obj]) -> Obj | None:
        last = container_status(pods[0], "hog").get("lastState", {}).get("terminated") if pods else None
        return last if last and last.get("reason") == "OOMKilled" else None

    terminated = await watch_pods(api, namespace, oom_killed, "an OOMKilled last state")
    assert terminated["exitCode"] == 137


async def test_a_deleted_pod_stops_gracefully_within_its_grace_period(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    app = busybox("app", "trap 'echo bye; exit 0' TERM; echo up; sleep 3600 & wait", **NEVER_PULL)
    apply(cluster, namespace, pod("graceful", [app], terminationGracePeriodSeconds=30))
    wait_ready(cluster, namespace, "graceful")

    listed = await api.list(PODS, namespace, fieldSelector="metadata.name=graceful")
    changes = asyncio.create_task(follow_until_deleted(api, namespace, listed["metadata"]["resourceVersion"]))
    deleted = await asyncio.to_thread(cluster.kubectl, "delete", "pod", "graceful", "-n", namespace)
    assert deleted.stdout == 'pod "graceful" deleted\n'  # kubectl waited until the object was gone
    seen = await asyncio.wait_for(changes, DEADLINE)

    assert [kind for kind, _ in seen][-1] == "DELETED"
    marked = next(i for i, (_, p) in enumerate(seen) if p["metadata"].get("deletionTimestamp"))
    assert seen[marked][1]["metadata"]["deletionGracePeriodSeconds"] == 30
    finals = [container_status(p, "app")["state"].get("terminated") for _, p in seen[marked:]]
    final = next(t for t in finals if t)  # reported after the stop and before the object went
    assert (final["exitCode"], final["reason"]) == (0, "Completed")  # its TERM trap ran: no SIGKILL
    events = [e for e in json_of(cluster, "get", "events", "-n", namespace)["items"] if e["reason"] == "Killing"]
    assert [e["message"] for e in events] == ["Stopping container app"]


def test_port_forward_reaches_busybox_httpd(cluster: Cluster, namespace: str) -> None:
    script = "mkdir -p /www; echo forwarded > /www/index.html; exec httpd -f -p 80 -h /www"
    apply(cluster, namespace, pod("site", [busybox("web", script, **NEVER_PULL)]))
    wait_ready(cluster, namespace, "site")

    for version in ("1.27", "1.33"):
        local = free_port()
        forward = kubectl_process(cluster, version, "port-forward", "-n", namespace, "pod/site", f"{local}:80")
        try:
            Lines(forward).wait_for(f"Forwarding from 127.0.0.1:{local}")
            answer = exchange(local, b"GET /index.html HTTP/1.0\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nforwarded\n")
        finally:
            forward.terminate()
            forward.wait()


def test_port_forward_to_a_service_and_a_deployment_picks_one_of_their_pods(cluster: Cluster, namespace: str) -> None:
    """kubectl resolves svc/NAME and deploy/NAME to a pod itself, and maps the service port to its targetPort."""
    script = "mkdir -p /www; echo via-fwd > /www/index.html; exec httpd -f -p 80 -h /www"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fwd"},
        "spec": {
            "selector": {"matchLabels": {"app": "fwd"}},
            "template": {
                "metadata": {"labels": {"app": "fwd"}},
                "spec": {"containers": [busybox("web", script, **NEVER_PULL)]},
            },
        },
    }
    apply(cluster, namespace, deployment)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "fwd"},
        "spec": {"selector": {"app": "fwd"}, "ports": [{"name": "http", "port": 8080, "targetPort": 80}]},
    }
    apply(cluster, namespace, service)
    cluster.kubectl("rollout", "status", "deployment/fwd", "-n", namespace, ROLLOUT_TIMEOUT)

    for target, remote in (("svc/fwd", "8080"), ("deploy/fwd", "80")):
        local = free_port()
        forward = kubectl_process(cluster, "1.33", "port-forward", "-n", namespace, target, f"{local}:{remote}")
        try:
            Lines(forward).wait_for(f"Forwarding from 127.0.0.1:{local} -> 80")
            answer = exchange(local, b"GET /index.html HTTP/1.0\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nvia-fwd\n"), target
        finally:
            forward.terminate()
            forward.wait()


# last: it restarts the module's cluster
def test_a_restarted_agent_adopts_running_pods(
    cluster: Cluster, podman_env: PodmanEnv, namespace: str, podman_client: podman.PodmanClient
) -> None:
    apply(cluster, namespace, pod("keeper", [busybox("app", "exec sleep 3600", **NEVER_PULL)]))
    wait_ready(cluster, namespace, "keeper")
    before = json_of(cluster, "get", "pod", "keeper", "-n", namespace)

    restart(cluster, podman_node_flags(podman_env))

    # the restarted agent knows the pod again (it serves exec for it) and left its container alone
    assert cluster.kubectl("exec", "-n", namespace, "keeper", "--", "echo", "adopted").stdout == "adopted\n"
    wait_ready(cluster, namespace, "keeper")
    after = json_of(cluster, "get", "pod", "keeper", "-n", namespace)
    assert container_status(after, "app")["containerID"] == container_status(before, "app")["containerID"]
    assert container_status(after, "app")["restartCount"] == 0
    uid = before["metadata"]["uid"]
    containers = podman_client.containers.list(all=True, filters=[f"label={LABEL_POD_UID}={uid}"])
    apps = [c for c in containers if c.labels.get(LABEL_CONTAINER_NAME) == "app"]
    assert [f"podman://{c.id}" for c in apps] == [container_status(before, "app")["containerID"]]


async def follow_until_deleted(api: ApiClient, namespace: str, since: str) -> list[tuple[str, Obj]]:
    """Every change to the namespace's pods after resourceVersion `since`, up to the first deletion."""
    seen = []
    async for event in api.watch(PODS, namespace, since):
        if event["type"] == "BOOKMARK":
            continue
        seen.append((event["type"], event["object"]))
        if event["type"] == "DELETED":
            return seen
    raise AssertionError(f"the watch ended before the pod was deleted: {[kind for kind, _ in seen]}")
