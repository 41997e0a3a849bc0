"""A `kube-shim up` whose one node runs pods in a private Podman root, and what tests run on it.

`podman_env`, `podman_env_with_second_tag` and `cluster` are module-scoped fixtures, `podman_client` a test's: a
module that uses them binds them by name (`cluster = podman_cluster.cluster`; `podman_env =
podman_cluster.podman_env_with_second_tag` to give its cluster the second tag too), and its `cluster` then
replaces the session's control-plane-only one, so the `namespace` fixture makes its namespaces there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import podman
import pytest

from shim.runtime.podman import PodmanRuntime
from tests.cluster import Cluster, start_cluster
from tests.images import TEST_IMAGE
from tests.kubectl_kit import WAIT_TIMEOUT
from tests.kubelet_kit import is_running_and_ready
from tests.podman_env import PodmanEnv, podman_root_with_test_image

Obj = dict[str, Any]

SECOND_IMAGE = "localhost/kube-shim-test:v2"  # the same image under a second tag: a real template change
ROLLOUT_TIMEOUT = "--timeout=90s"
NEVER_PULL = {"imagePullPolicy": "Never"}  # the image exists only in the test's Podman root


# -- the cluster -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def podman_env() -> Iterator[PodmanEnv]:
    """A private Podman root and service for the module, holding the busybox test image."""
    with podman_root_with_test_image() as env:
        yield env


@pytest.fixture(scope="module")
def podman_env_with_second_tag() -> Iterator[PodmanEnv]:
    """A private Podman root and service holding the test image under two tags (TEST_IMAGE, SECOND_IMAGE)."""
    with podman_root_with_test_image() as env:
        with podman.PodmanClient(base_url=env.base_url) as client:
            client.images.get(TEST_IMAGE).tag(*SECOND_IMAGE.rsplit(":", 1))
        yield env


@pytest.fixture(scope="module")
def cluster(podman_env: PodmanEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`kube-shim up` with one Podman node, the node Ready."""
    running = start_cluster(tmp_path_factory.mktemp("e2e"), nodes=podman_node_flags(podman_env))
    running.kubectl("wait", "--for=condition=Ready", "node", "--all", WAIT_TIMEOUT)
    yield running
    running.stop()


@pytest.fixture
def podman_client(podman_env: PodmanEnv) -> Iterator[podman.PodmanClient]:
    """A client of the test's Podman root, to see what really runs there."""
    with podman.PodmanClient(base_url=podman_env.base_url) as client:
        yield client


def podman_node_flags(env: PodmanEnv) -> tuple[str, ...]:
    """The `kube-shim up` flags for one node agent whose pods run in `env`."""
    return ("--runtime", "podman", "--nodes", "1", "--podman-socket", str(env.socket_path))


def podman_runtime(env: PodmanEnv, data_dir: Path, node: str) -> PodmanRuntime:
    """The Podman runtime of an in-process node agent `node` on the private root, its state below `data_dir`."""
    return PodmanRuntime(str(env.socket_path), data_dir / node, None, node_name=node)


def restart(cluster: Cluster, nodes: tuple[str, ...]) -> None:
    """Stop `kube-shim up` and start it again on the same data dir and port with the node flags `nodes`;
    `cluster` then stands for the new process (so the fixture's teardown stops it)."""
    assert cluster.stop() == 0
    again = start_cluster(cluster.data_dir, port=cluster.port, nodes=nodes)
    cluster.process, cluster.reader = again.process, again.reader


# -- what runs on it -------------------------------------------------------------------------------------------


def busybox(name: str, script: str, **fields: object) -> dict[str, object]:
    """A container of the test image running `sh -c SCRIPT`."""
    return {"name": name, "image": TEST_IMAGE, "command": ["sh", "-c", script], **fields}


def create_web(cluster: Cluster, namespace: str, replicas: int) -> None:
    """`kubectl create deployment web` running busybox httpd, and its rollout finished."""
    cluster.kubectl("create", "deployment", "web", f"--image={TEST_IMAGE}", f"--replicas={replicas}",
                    "-n", namespace, "--", "httpd", "-f", "-p", "80")  # fmt: skip
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, ROLLOUT_TIMEOUT)


def web_pods_running(count: int, image: str) -> Callable[[list[Obj]], list[Obj] | None]:
    """Exactly `count` pods of the web deployment, none terminating, all Running and Ready on `image`."""

    def check(pods: list[Obj]) -> list[Obj] | None:
        web = [p for p in pods if p["metadata"].get("labels", {}).get("app") == "web"]
        if len(web) != count:
            return None
        for pod in web:
            if pod["metadata"].get("deletionTimestamp") or not is_running_and_ready(pod):
                return None
            if pod["spec"]["containers"][0]["image"] != image:
                return None
        return sorted(web, key=lambda p: p["metadata"]["name"])

    return check
