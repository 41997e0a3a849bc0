"""The node agent running pods under real Podman (an isolated root with the busybox test image), against the real
`kube-shim up`: shared localhost and emptyDir, env from ConfigMaps and Secrets, CrashLoopBackOff, probes, OOM
kills, graceful deletion and adoption after an agent restart."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

from shim.client import ApiClient
from shim.machinery.resources import CONFIGMAPS, PODS, SECRETS
from tests import kubelet_kit, podman_cluster
from tests.images import TEST_IMAGE
from tests.kubelet_kit import (
    DEADLINE,
    condition,
    container_status,
    is_running_and_ready,
    pod_manifest,
    running_node,
    runtime_id,
    wait_event,
    wait_for,
    wait_gone,
)
from tests.podman_cluster import busybox, podman_runtime
from tests.podman_env import PodmanEnv
from tests.prerequisites import needs_podman

pytestmark = needs_podman

HTTP_PORT = 8080
FAST_PROBE = {"periodSeconds": 1, "failureThreshold": 1}

# the module's fixtures, bound by name so pytest finds them here
api = kubelet_kit.api
podman_root = podman_cluster.podman_env


def http_get(ip: str, port: int) -> str:
    """One HTTP/1.0 GET to a pod; the body."""
    with socket.create_connection((ip, port), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[-1].decode()


async def test_two_containers_share_localhost_and_an_empty_dir(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = "kp-" + uuid.uuid4().hex[:6]
    mounts = [{"name": "shared", "mountPath": "/shared"}]
    web = busybox("web", f"exec httpd -f -p {HTTP_PORT} -h /shared", volumeMounts=mounts)
    # ready only once the page it wrote into the emptyDir comes back from its sibling over localhost
    check = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 {HTTP_PORT} | grep -q hello-from-writer"
    writer = busybox(
        "writer",
        "echo hello-from-writer > /shared/index.html; exec sleep 3600",
        volumeMounts=mounts,
        readinessProbe={"exec": {"command": ["sh", "-c", check]}, **FAST_PROBE},
    )
    manifest = pod_manifest("duo", node, [web, writer], volumes=[{"name": "shared", "emptyDir": {}}])
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "duo", is_running_and_ready)
        body = await asyncio.to_thread(http_get, pod["status"]["podIP"], HTTP_PORT)
        assert body.strip() == "hello-from-writer"
        assert container_status(pod, "web")["containerID"].startswith("podman://")


async def test_env_from_a_configmap_and_a_secret(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = "kp-" + uuid.uuid4().hex[:6]
    await api.create(CONFIGMAPS, {"metadata": {"name": "cfg"}, "data": {"mode": "fast"}}, namespace)
    await api.create(SECRETS, {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}, namespace)
    env = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    # the termination message carries what the process saw back into the pod's status
    app = busybox("app", 'echo -n "$MODE/$PASSWORD/$(POD)" > /dev/termination-log', env=env)
    manifest = pod_manifest("env", node, [app], restartPolicy="Never")
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "env", lambda p: p["status"].get("phase") == "Succeeded")
        terminated = container_status(pod, "app")["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
            0,
            "Completed",
            "fast/s3cret/env",
        )


async def test_a_crashing_container_goes_into_crash_loop_back_off(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = "kp-" + uuid.uuid4().hex[:6]
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, pod_manifest("crasher", node, [busybox("app", "echo dying; exit 3")]), namespace)
        pod = await wait_for(
            api,
            PODS,
            namespace,
            "crasher",
            lambda p: (
                container_status(p, "app").get("restartCount", 0) >= 2
                and container_status(p, "app")["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
            ),
        )
        last = container_status(pod, "app")["lastState"]["terminated"]
        assert (last["exitCode"], last["reason"]) == (3, "Error")
        log = tmp_path / node / "pods" / pod["metadata"]["uid"] / "logs" / "app"
        assert sorted(p.name for p in log.iterdir())[:2] == ["0.log", "1.log"]  # one log per run
        assert "dying" in (log / "0.log").read_text()


async def test_a_failing_liveness_probe_restarts_the_container(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = "kp-" + uuid.uuid4().hex[:6]
    app = busybox("app", "exec sleep 3600", livenessProbe={"exec": {"command": ["false"]}, **FAST_PROBE})
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, pod_manifest("sick", node, [app], terminationGracePeriodSeconds=5), namespace)
        pod = await wait_for(
            api, PODS, namespace, "sick", lambda p: container_status(p, "app").get("restartCount", 0) >= 1
        )
        assert container_status(pod, "app")["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM via the init
        await wait_event(api, namespace, "Killing", "Container app failed liveness probe, will be restarted")


async def test_readiness_gates_the_ready_condition(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = "kp-" + uuid.uuid4().hex[:6]
    # serves only after a while: an httpGet readiness probe keeps the pod unready until then
    app = busybox(
        "app",
        f"mkdir -p /www; echo ok > /www/index.html; sleep 3; exec httpd -f -p {HTTP_PORT} -h /www",
        readinessProbe={"httpGet": {"path": "/", "port": HTTP_PORT}, "periodSeconds": 1},
    )
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, pod_manifest("slow", node, [app]), namespace)
        unready = await wait_for(api, PODS, namespace, "slow", lambda p: p["status"].get("phase") == "Running")
        assert condition(unready, "Ready")["status"] == "False"
        await wait_event(api, namespace, "Unhealthy", "Readiness probe failed")
        ready = await wait_for(api, PODS, namespace, "slow", is_running_and_ready)
        assert container_status(ready, "app")["ready"] is True


async def test_a_container_over_its_memory_limit_is_oom_killed(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = "kp-" + uuid.uuid4().hex[:6]
    hog = {
        "name": "hog",
        "image": TEST_IMAGE,
        "command": ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        "resources": {"limits": {"memory": "16Mi"}},
    }
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, pod_manifest("hog", node, [hog], restartPolicy="Never"), namespace)
        pod = await wait_for(api, PODS, namespace, "hog", lambda p: p["status"].get("phase") == "Failed")
        terminated = container_status(pod, "hog")["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")


async def test_a_deleted_pod_stops_gracefully_within_its_grace_period(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = "kp-" + uuid.uuid4().hex[:6]
    outside = tmp_path / "outside"
    outside.mkdir()
    mounts = [{"name": "out", "mountPath": "/out"}]
    app = busybox(
        "app",
        "trap 'echo terminated > /out/app; exit 0' TERM; sleep 3600 & wait",
        volumeMounts=mounts,
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo bye > /out/prestop"]}}},
    )
    volumes = [{"name": "out", "hostPath": {"path": str(outside)}}]
    manifest = pod_manifest("graceful", node, [app], volumes=volumes, terminationGracePeriodSeconds=30)
    runtime = podman_runtime(podman_root, tmp_path, node)
    async with running_node(api, tmp_path, runtime, name=node, allowed_host_paths=(str(tmp_path),)):
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "graceful", is_running_and_ready)
        container_id = runtime_id(container_status(pod, "app")["containerID"])
        deaths = runtime.events()
        await api.delete(PODS, "graceful", namespace)
        death = await asyncio.wait_for(
            anext(e async for e in deaths if e.kind == "died" and e.container_id == container_id), DEADLINE
        )
        assert death.exit_code == 0  # its TERM handler ran: no SIGKILL was needed
        await wait_gone(api, namespace, "graceful")
        assert (outside / "prestop").read_text() == "bye\n"  # the preStop hook ran first
        assert (outside / "app").read_text() == "terminated\n"
        assert [s for s in await runtime.list_sandboxes() if s.name == "graceful"] == []


async def test_a_restarted_agent_adopts_running_pods(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = "kp-" + uuid.uuid4().hex[:6]
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, pod_manifest("keeper", node, [busybox("app", "exec sleep 3600")]), namespace)
        before = await wait_for(api, PODS, namespace, "keeper", is_running_and_ready)

    runtime = podman_runtime(podman_root, tmp_path, node)
    async with running_node(api, tmp_path, runtime, name=node):
        sandboxes = [s for s in await runtime.list_sandboxes() if s.name == "keeper"]
        assert len(sandboxes) == 1 and len(sandboxes[0].containers) == 1  # adopted, nothing started twice
        after = await wait_for(api, PODS, namespace, "keeper", is_running_and_ready)
        assert container_status(after, "app")["containerID"] == container_status(before, "app")["containerID"]
        assert container_status(after, "app")["restartCount"] == 0
