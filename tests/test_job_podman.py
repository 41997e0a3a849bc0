"""batch/v1 Jobs on real Podman: the real `kube-shim up` with one node agent whose pods run in a private Podman
root, driven with the real kubectl (issue 11's must-show Jobs).

A Job of 5 completions with parallelism 2 whose first two pods fail (each pod claims a marker directory on a
hostPath volume; the first two claims exit 1) finishes once the failed pods were replaced after kube's back-off;
an Indexed Job's pods print the index Kubernetes gave them; `kubectl logs job/NAME` reads a Job's pod.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.client import ApiClient
from shim.controllers.job import JOBS
from shim.machinery.resources import PODS
from tests import kubelet_kit
from tests.cluster import Cluster
from tests.images import TEST_IMAGE
from tests.prerequisites import needs_podman
from tests.workloads import one_podman_node, watch_until

pytestmark = needs_podman

Obj = dict[str, Any]
# two failures cost kube's back-off of 10 s then 20 s before their replacements start
JOB_TIMEOUT = "--timeout=180s"


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the Jobs' hostPath volumes live (the node allows nothing else)."""
    return tmp_path_factory.mktemp("job-host-paths")


@pytest.fixture(scope="module")
def cluster(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`kube-shim up` with one Podman node (the `namespace` fixture makes its namespaces here)."""
    with one_podman_node(tmp_path_factory, ("--allowed-host-path", str(shared_dir))) as running:
        yield running


api = kubelet_kit.api  # a fixture: pytest finds it by name here


def job(name: str, script: str, **spec: Any) -> Obj:
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "containers": [
            {"name": "work", "image": TEST_IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", script]}
        ],
    }
    volumes = spec.pop("volumes", None)
    if volumes:
        pod_spec["volumes"] = volumes
        pod_spec["containers"][0]["volumeMounts"] = [{"name": v["name"], "mountPath": "/data"} for v in volumes]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": pod_spec}, **spec},
    }


def pods_of(pods: list[Obj], name: str) -> list[Obj]:
    return [p for p in pods if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") == name]


async def test_a_job_of_five_completions_survives_two_failed_pods(
    cluster: Cluster, api: ApiClient, namespace: str, shared_dir: Path
) -> None:
    markers = shared_dir / namespace
    markers.mkdir()
    # mkdir is atomic: exactly two pods, whichever come first, claim a failure; every other pod succeeds
    script = "for n in 1 2; do if mkdir /data/fail-$n 2>/dev/null; then echo failing; exit 1; fi; done; echo done"
    volumes = [{"name": "markers", "hostPath": {"path": str(markers), "type": "Directory"}}]
    await api.create(JOBS, job("flaky", script, completions=5, parallelism=2, volumes=volumes), namespace)
    cluster.kubectl("wait", "--for=condition=complete", "job/flaky", "-n", namespace, JOB_TIMEOUT, timeout=200)

    done = await api.get(JOBS, "flaky", namespace)
    assert (done["status"]["succeeded"], done["status"]["failed"]) == (5, 2)
    assert sorted(p.name for p in markers.iterdir()) == ["fail-1", "fail-2"]
    pods = pods_of((await api.list(PODS, namespace))["items"], "flaky")
    assert sorted(p["status"]["phase"] for p in pods) == ["Failed"] * 2 + ["Succeeded"] * 5
    exit_codes = sorted(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods)
    assert exit_codes == [0] * 5 + [1] * 2  # what the containers really ended with in Podman
    row = cluster.kubectl("get", "job", "flaky", "-n", namespace, "--no-headers").stdout.split()
    assert row[:3] == ["flaky", "Complete", "5/5"]
    assert cluster.kubectl("logs", "job/flaky", "-n", namespace, version="1.27").stdout in ("done\n", "failing\n")


async def test_an_indexed_jobs_pods_see_their_index_and_hostname(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    script = 'echo "index=$JOB_COMPLETION_INDEX host=$(hostname)"'
    await api.create(JOBS, job("idx", script, completionMode="Indexed", completions=3, parallelism=3), namespace)
    cluster.kubectl("wait", "--for=condition=complete", "job/idx", "-n", namespace, JOB_TIMEOUT, timeout=200)

    done = await api.get(JOBS, "idx", namespace)
    assert done["status"]["completedIndexes"] == "0-2"
    pods = await watch_until(api, PODS, namespace, lambda pods: pods_of(pods, "idx"), what="the job's pods")
    printed = {cluster.kubectl("logs", p["metadata"]["name"], "-n", namespace).stdout for p in pods}
    assert printed == {f"index={i} host=idx-{i}\n" for i in range(3)}
    assert re.fullmatch(r"index=[0-2] host=idx-[0-2]\n", cluster.kubectl("logs", "job/idx", "-n", namespace).stdout)
