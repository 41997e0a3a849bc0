"""A pod spec must not reach the host, under real Podman: volume sub-paths stay inside their volume (after
variable expansion, and whatever symlinks an earlier container planted), secret volumes are not readable by
other host users, the container's securityContext reaches Podman, and a node may refuse host namespaces."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import podman
import pytest

from shim.client import ApiClient
from shim.kubelet.envvars import ContainerConfigError
from shim.kubelet.mounts import mount_points_under, unmount_under
from shim.kubelet.subpath import bind_sub_path
from shim.machinery.resources import PODS, SECRETS
from shim.runtime.base import LABEL_NODE
from tests import kubelet_kit, podman_cluster
from tests.cluster import start_cluster, wait_until
from tests.kubelet_kit import (
    DEADLINE,
    container_status,
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

# the Podman root with the test image, and the API client, shared with the other node tests
podman_root = podman_cluster.podman_env
api = kubelet_kit.api

Obj = dict[str, Any]
NOBODY = "65534"
SETPRIV = shutil.which("setpriv")


def new_node() -> str:
    return "ke-" + uuid.uuid4().hex[:6]


def waiting_reason(pod: Obj, name: str) -> str:
    return container_status(pod, name).get("state", {}).get("waiting", {}).get("reason", "")


def config_error(name: str) -> Callable[[Obj], bool]:
    """The container waits with CreateContainerConfigError (what kubelet shows for a spec it refuses)."""
    return lambda pod: waiting_reason(pod, name) == "CreateContainerConfigError"


@pytest.fixture(autouse=True)
def no_mounts_left_behind(tmp_path: Path) -> Iterator[None]:
    """A test that fails half-way may leave a pod's sub-path mounts: never leave them in the host's mount table."""
    yield
    unmount_under(tmp_path)


@pytest.fixture
def podman_client(podman_root: PodmanEnv) -> Iterator[Any]:
    with podman.PodmanClient(base_url=podman_root.base_url) as client:
        yield client


# -- volume sub-paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("escape", "message"),
    [("/", "must not be an absolute path"), ("../../../../../../../../..", "must not contain '..'")],
    ids=["root", "dotdot"],
)
async def test_a_sub_path_expr_expanding_out_of_its_volume_fails_the_container(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str, escape: str, message: str
) -> None:
    node = new_node()
    # passes admission (`$(TARGET)` is a relative path); only its expansion leads out
    marker = tmp_path / "escaped"
    app = busybox(
        "app",
        f"touch /host{marker}; mkdir -p /host{tmp_path}/made; exec sleep 3600",
        env=[{"name": "TARGET", "value": escape}],
        volumeMounts=[{"name": "scratch", "mountPath": "/host", "subPathExpr": "$(TARGET)"}],
    )
    manifest = pod_manifest("escape", node, [app], volumes=[{"name": "scratch", "emptyDir": {}}])
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "escape", config_error("app"))
        assert message in container_status(pod, "app")["state"]["waiting"]["message"]
        await wait_event(api, namespace, "Failed", message)
    assert not marker.exists() and not (tmp_path / "made").exists()
    # the old `mkdir(parents=True)` of the expanded path made directories outside the volume: nothing new here
    assert sorted(p.name for p in tmp_path.iterdir()) == [node]


async def test_a_sub_path_through_a_symlink_an_earlier_container_planted_is_refused(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = new_node()
    private = tmp_path / "host-private"  # stands for /root: a host directory no pod may see
    private.mkdir()
    (private / "secret").write_text("host-only")
    planter = busybox("planter", f"ln -s {private} /vol/x")
    reader = busybox(
        "reader",
        "cat /data/secret > /dev/termination-log; touch /data/pwned; exec sleep 3600",
        volumeMounts=[{"name": "shared", "mountPath": "/data", "subPath": "x"}],
    )
    manifest = pod_manifest(
        "symlink",
        node,
        [reader],
        initContainers=[{**planter, "volumeMounts": [{"name": "shared", "mountPath": "/vol"}]}],
        volumes=[{"name": "shared", "emptyDir": {}}],
    )
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "symlink", config_error("reader"))
        waiting = container_status(pod, "reader")["state"]["waiting"]["message"]
        assert 'failed to prepare subPath for volumeMount "shared" of container "reader"' in waiting
        assert "symlink" in waiting
        await wait_event(api, namespace, "Failed", "failed to prepare subPath")
    assert sorted(p.name for p in private.iterdir()) == ["secret"]


async def test_a_sub_path_inside_the_volume_is_created_and_mounted(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = new_node()
    writer = busybox(
        "writer",
        "echo inside > /data/note",
        env=[{"name": "DIR", "value": "a/b"}],
        volumeMounts=[{"name": "shared", "mountPath": "/data", "subPathExpr": "$(DIR)"}],
    )
    manifest = pod_manifest(
        "inside", node, [writer], restartPolicy="Never", volumes=[{"name": "shared", "emptyDir": {}}]
    )
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "inside", lambda p: p["status"].get("phase") == "Succeeded")
        pod_dir = tmp_path / node / "pods" / pod["metadata"]["uid"]
        volume = pod_dir / "volumes" / "shared"
        assert (volume / "a" / "b" / "note").read_text() == "inside\n"
        assert stat.S_IMODE((volume / "a").stat().st_mode) == 0o777  # the emptyDir's own mode, for any user
        assert mount_points_under(pod_dir) == [str(pod_dir / "volume-subpaths" / "shared" / "writer" / "0")]
        await api.delete(PODS, "inside", namespace)
        await wait_gone(api, namespace, "inside")
        # a finished pod is deleted at once; the agent cleans up after it
        await asyncio.to_thread(wait_until, lambda: not pod_dir.exists(), DEADLINE, "the pod's files removed")
    assert mount_points_under(tmp_path) == []  # taken down before the files went


def test_sub_paths_are_bound_from_inside_the_volume_without_following_symlinks(tmp_path: Path) -> None:
    volume, mounts, outside = tmp_path / "volume", tmp_path / "mounts", tmp_path / "outside"
    (volume / "a").mkdir(parents=True)
    outside.mkdir()
    volume.chmod(0o770)
    (volume / "a" / "file").write_text("x")
    (volume / "a" / "link").symlink_to(outside)
    try:
        assert bind_sub_path(volume, "a/file", mounts / "0", "v", "c").read_text() == "x"
        made = bind_sub_path(volume, "./a//new/deeper/", mounts / "1", "v", "c")
        assert made == mounts / "1" and (volume / "a" / "new" / "deeper").is_dir()
        assert stat.S_IMODE((volume / "a" / "new").stat().st_mode) == 0o770  # the volume's mode, not the umask
        for bad in ("a/link", "a/link/x", "a/file/x", "/etc", "a/../..", ".."):
            with pytest.raises(ContainerConfigError):
                bind_sub_path(volume, bad, mounts / "2", "v", "c")
        assert list(outside.iterdir()) == []  # nothing was made through the link
        # what was resolved is what stays mounted: swapping the directory for a symlink afterwards changes nothing
        (volume / "a" / "new" / "deeper" / "mine").write_text("inside")
        (volume / "a" / "new").rename(volume / "a" / "moved")
        (volume / "a" / "new").symlink_to(outside)
        assert [p.name for p in made.iterdir()] == ["mine"]
        # a second run of the container mounts afresh where the first run's mount was
        assert bind_sub_path(volume, "a/moved", mounts / "1", "v", "c") == mounts / "1"
        assert [p.name for p in (mounts / "1").iterdir()] == ["deeper"]
        assert len(mount_points_under(tmp_path)) == 2
    finally:
        assert unmount_under(tmp_path) == []
    assert mount_points_under(tmp_path) == []


# -- secret volumes ------------------------------------------------------------------------------------------


async def test_secret_volumes_are_readable_by_the_pod_but_not_by_other_host_users(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    assert SETPRIV is not None, "setpriv (util-linux) is needed to act as another host user"
    node = new_node()
    await api.create(SECRETS, {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}, namespace)
    app = busybox(
        "app",
        "cat /etc/creds/password > /dev/termination-log",
        securityContext={"runAsUser": 1000},
        volumeMounts=[{"name": "creds", "mountPath": "/etc/creds"}],
    )
    volumes = [{"name": "creds", "secret": {"secretName": "creds"}}]
    manifest = pod_manifest("secretive", node, [app], restartPolicy="Never", volumes=volumes)
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "secretive", lambda p: p["status"].get("phase") == "Succeeded")
        assert container_status(pod, "app")["state"]["terminated"]["message"] == "s3cret"  # a non-root container
        root = tmp_path / node / "pods" / pod["metadata"]["uid"]
        secret = root / "volumes" / "creds" / "password"
        assert secret.read_text() == "s3cret"
        assert stat.S_IMODE(root.stat().st_mode) & 0o007 == 0, oct(root.stat().st_mode)
        # the host's tmp dirs are traversable; only the pod's own directory keeps `nobody` out
        tmp_path.chmod(0o755)
        (tmp_path / node).chmod(0o755)
        as_nobody = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "cat", str(secret)]
        attempt = subprocess.run(as_nobody, capture_output=True, text=True, check=False)
        assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, attempt
        assert "s3cret" not in attempt.stdout


# -- securityContext ---------------------------------------------------------------------------------------


async def test_the_security_context_reaches_podman_and_the_process(
    api: ApiClient, podman_root: PodmanEnv, podman_client: Any, tmp_path: Path, namespace: str
) -> None:
    node = new_node()
    report = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; touch /probe 2>/dev/null || echo read-only"
    app = busybox(
        "app",
        f"({report}) > /dev/termination-log",
        securityContext={
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "Unconfined"},
        },
    )
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, pod_manifest("locked", node, [app], restartPolicy="Never"), namespace)
        pod = await wait_for(api, PODS, namespace, "locked", lambda p: p["status"].get("phase") == "Succeeded")
        status = container_status(pod, "app")
        inspected = podman_client.containers.get(runtime_id(status["containerID"])).attrs["HostConfig"]
    # inspect lists capabilities relative to Podman's defaults (which hold NET_BIND_SERVICE)
    assert "CAP_CHOWN" in inspected["CapDrop"] and "CAP_NET_BIND_SERVICE" not in inspected["CapDrop"], inspected
    assert "no-new-privileges" in inspected["SecurityOpt"], inspected
    assert inspected["ReadonlyRootfs"] is True
    lines = status["state"]["terminated"]["message"].split("\n")
    fields = dict(line.split(":\t") for line in lines if ":\t" in line)
    assert fields == {"CapEff": "0000000000000400", "NoNewPrivs": "1", "Seccomp": "0"}, lines
    assert "read-only" in lines


async def test_a_localhost_seccomp_profile_is_loaded_from_the_nodes_profile_directory(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = new_node()
    profiles = tmp_path / "seccomp"
    profiles.mkdir()
    deny_mkdir = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    (profiles / "no-mkdir.json").write_text(json.dumps(deny_mkdir))
    app = busybox(
        "app",
        "mkdir /tmp/d 2>/dev/null && echo made > /dev/termination-log || echo denied > /dev/termination-log",
        securityContext={"seccompProfile": {"type": "Localhost", "localhostProfile": "no-mkdir.json"}},
    )
    runtime = podman_runtime(podman_root, tmp_path, node)
    async with running_node(api, tmp_path, runtime, name=node, seccomp_profile_root=str(profiles)):
        await api.create(PODS, pod_manifest("filtered", node, [app], restartPolicy="Never"), namespace)
        pod = await wait_for(api, PODS, namespace, "filtered", lambda p: p["status"].get("phase") == "Succeeded")
    assert container_status(pod, "app")["state"]["terminated"]["message"].strip() == "denied"


async def test_run_as_non_root_refuses_an_image_that_runs_as_root(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = new_node()
    # the busybox test image sets no USER: it runs as root, so without runAsUser kube refuses it
    app = busybox("app", "exec sleep 3600", securityContext={"runAsNonRoot": True})
    ok = busybox("ok", "exec sleep 3600", securityContext={"runAsNonRoot": True, "runAsUser": 1000})
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, pod_manifest("nonroot", node, [app, ok]), namespace)
        pod = await wait_for(
            api,
            PODS,
            namespace,
            "nonroot",
            lambda p: config_error("app")(p) and "running" in container_status(p, "ok").get("state", {}),
        )
    assert container_status(pod, "app")["state"]["waiting"]["message"].startswith(
        "container has runAsNonRoot and image will run as root"
    )


# -- host namespaces ------------------------------------------------------------------------------------------


async def test_a_node_that_allows_host_namespaces_gives_host_pid_and_ipc(
    api: ApiClient, podman_root: PodmanEnv, tmp_path: Path, namespace: str
) -> None:
    node = new_node()
    app = busybox("app", "(readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc) > /dev/termination-log")
    manifest = pod_manifest("hostns", node, [app], hostPID=True, hostIPC=True, restartPolicy="Never")
    async with running_node(api, tmp_path, podman_runtime(podman_root, tmp_path, node), name=node):
        await api.create(PODS, manifest, namespace)
        pod = await wait_for(api, PODS, namespace, "hostns", lambda p: p["status"].get("phase") == "Succeeded")
    seen = container_status(pod, "app")["state"]["terminated"]["message"].split()
    assert seen == [os.readlink("/proc/self/ns/pid"), os.readlink("/proc/self/ns/ipc")]


@pytest.mark.parametrize(
    ("spec", "container", "refused"),
    [
        ({"hostNetwork": True}, {}, "hostNetwork"),
        ({"hostPID": True, "hostIPC": True}, {}, "hostPID, hostIPC"),
        ({}, {"ports": [{"containerPort": 80, "hostPort": 18081}]}, "hostPort"),
    ],
    ids=["network", "pid-ipc", "port"],
)
async def test_a_node_that_disallows_host_namespaces_rejects_such_pods(
    api: ApiClient,
    podman_root: PodmanEnv,
    podman_client: Any,
    tmp_path: Path,
    namespace: str,
    spec: Obj,
    container: Obj,
    refused: str,
) -> None:
    node = new_node()
    app = busybox("app", "exec sleep 3600", **container)
    runtime = podman_runtime(podman_root, tmp_path, node)
    async with running_node(api, tmp_path, runtime, name=node, allow_host_namespaces=False):
        await api.create(PODS, pod_manifest("hosty", node, [app], **spec), namespace)
        pod = await wait_for(api, PODS, namespace, "hosty", lambda p: p["status"].get("phase") == "Failed")
        event = await wait_event(api, namespace, "HostNamespacesForbidden")
    message = f"Pod was rejected: this node does not allow {refused}"
    assert (pod["status"]["reason"], pod["status"]["message"]) == ("HostNamespacesForbidden", message)
    assert event["type"] == "Warning" and event["message"] == message
    assert podman_client.pods.list(filters={"label": f"{LABEL_NODE}={node}"}) == []  # nothing of it ran


def test_kube_shim_up_allow_host_namespaces_false_refuses_host_network_pods(tmp_path: Path) -> None:
    node_flags = ("--runtime", "fake", "--nodes", "1", "--allow-host-namespaces=false")
    cluster = start_cluster(tmp_path, nodes=node_flags)
    try:
        cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hosty", "namespace": "default"},
            "spec": {"hostNetwork": True, "containers": [{"name": "app", "image": "busybox:1.36"}]},
        }
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
        reason = "--for=jsonpath={.status.reason}=HostNamespacesForbidden"
        cluster.kubectl("wait", reason, "pod/hosty", "--timeout=60s")
        message = cluster.kubectl("get", "pod", "hosty", "-o", "jsonpath={.status.message}").stdout
        assert message == "Pod was rejected: this node does not allow hostNetwork"
    finally:
        cluster.stop()


def test_node_setting_values_are_checked() -> None:
    for flag, complaint in (
        ("--allow-host-namespaces=maybe", "'maybe' is not true or false"),
        ("--container-log-max-size=lots", "'lots' is not a size"),
        ("--container-log-max-size=1", "too small"),
    ):
        command = [sys.executable, "-m", "shim.cli", "node", "--kubeconfig", "/nonexistent", flag]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2 and complaint in result.stderr, (flag, result.stderr)
