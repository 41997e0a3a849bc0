"""Logs, exec and port-forward of pods that really run under Podman, through the real `kube-shim up` and kubectl."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import podman
import pytest

from shim.runtime.podman import PodmanRuntime
from tests.cluster import Cluster, free_port
from tests.images import TEST_IMAGE, ensure_test_image
from tests.podman_env import PodmanEnv
from tests.prerequisites import needs_podman
from tests.streamnode import Lines, StreamNode, exchange, kubectl_process, register_node, start_pod

pytestmark = needs_podman

HTTP_PORT = 8080
# prints a line, then serves "ok" over HTTP on HTTP_PORT with busybox httpd
WEB = {
    "name": "web",
    "image": TEST_IMAGE,
    "command": ["sh", "-c", f"echo started; echo ok > /tmp/index.html; exec httpd -f -p {HTTP_PORT} -h /tmp"],
}


@pytest.fixture(scope="module")
def podman_node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamNode]:
    """A node whose pods run in a private Podman root, its streaming server advertised on its Node object."""
    with PodmanEnv() as env:
        with podman.PodmanClient(base_url=env.base_url) as client:
            ensure_test_image(client)
        name = "podman-" + uuid.uuid4().hex[:6]
        data_dir = tmp_path_factory.mktemp("podman-node")
        node = StreamNode(
            name, data_dir, cluster, lambda: PodmanRuntime(str(env.socket_path), data_dir, None, node_name=name)
        )
        register_node(cluster, node)
        try:
            yield node
        finally:
            node.stop()


def test_logs_exec_and_port_forward_of_a_podman_pod(cluster: Cluster, podman_node: StreamNode, namespace: str) -> None:
    start_pod(cluster, podman_node, namespace, "web", [WEB])

    follow = kubectl_process(cluster, "1.33", "logs", "-f", "-n", namespace, "web")
    try:
        Lines(follow).wait_for("started")  # what Podman's k8s-file driver wrote, read by the node
    finally:
        follow.kill()

    for version in ("1.27", "1.33"):
        result = cluster.kubectl("exec", "-n", namespace, "web", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3",
                                 version=version, check=False)  # fmt: skip
        assert (result.returncode, result.stdout) == (3, "hi\n"), result.stderr
        assert "oops" in result.stderr
        fed = cluster.kubectl("exec", "-i", "-n", namespace, "web", "--", "cat", version=version, stdin="typed\n")
        assert fed.stdout == "typed\n"

        local = free_port()
        forward = kubectl_process(cluster, version, "port-forward", "-n", namespace, "pod/web", f"{local}:{HTTP_PORT}")
        try:
            Lines(forward).wait_for(f"Forwarding from 127.0.0.1:{local}")
            answer = exchange(local, b"GET /index.html HTTP/1.0\r\n\r\n")
            assert answer.startswith(b"HTTP/1.") and answer.endswith(b"\r\n\r\nok\n")
        finally:
            forward.terminate()
            forward.wait()
