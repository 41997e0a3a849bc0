"""kubectl's informers recover from a compacted resourceVersion by listing again (kubectl-wire.md §10, G16)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.cluster import free_port, start_cluster, wait_until
from tests.prerequisites import kubectl_path

FAST_COMPACTION = ("--compaction-interval", "0.2", "--compaction-keep", "1")


def wait_for_watch_request(process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Read kubectl's -v=6 log until it reports its watch request answered (kubectl logs each request)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if "watch=true" in line and "200 OK" in line:
            return
        if time.monotonic() > deadline:
            break
    raise AssertionError("kubectl wait never started its watch")


def test_kubectl_wait_relists_after_its_resource_version_was_compacted(tmp_path: Path) -> None:
    """kubectl wait --for=delete is watching from revision R; while it is cut off, the object is deleted
    and history past R is compacted. On reconnect its watch gets 410 Expired, it lists again, sees the
    object gone and succeeds."""
    cluster = start_cluster(tmp_path, extra=FAST_COMPACTION)
    cluster.kubectl("create", "configmap", "target", "--from-literal=a=b")
    cache = tmp_path / "kubecache-wait"
    waiter = subprocess.Popen(
        [str(kubectl_path()), "--kubeconfig", str(cluster.kubeconfig), "wait",
         "--for=delete", "configmap/target", "--timeout=90s", "-v=6"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"KUBECACHEDIR": str(cache), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        wait_for_watch_request(waiter)
        listed = json.loads(cluster.kubectl("get", "--raw", "/api/v1/namespaces/default/configmaps").stdout)
        seen_by_kubectl = int(listed["metadata"]["resourceVersion"])
        assert cluster.stop() == 0

        # the same data dir on another port: kubectl cannot see what happens here
        elsewhere = start_cluster(tmp_path, port=free_port(), extra=FAST_COMPACTION)
        elsewhere.kubectl("delete", "configmap", "target")
        for i in range(3):
            elsewhere.kubectl("create", "configmap", f"filler{i}")
        old_watch = f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={seen_by_kubectl}"
        wait_until(lambda: '"code":410' in elsewhere.kubectl("get", "--raw", old_watch + "&timeoutSeconds=1").stdout,
                   what="compaction past kubectl's revision")  # fmt: skip
        assert elsewhere.stop() == 0

        cluster = start_cluster(tmp_path, port=cluster.port, extra=FAST_COMPACTION)
        output, _ = waiter.communicate(timeout=90)
        assert waiter.returncode == 0, output
        assert "condition met" in output or "deleted" in output
    finally:
        if waiter.poll() is None:
            waiter.kill()
        cluster.stop()
