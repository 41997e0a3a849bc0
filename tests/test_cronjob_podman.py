"""batch/v1 CronJobs on real Podman (issue 11's must-show): the real `kube-shim up` with one node agent whose
pods run in a private Podman root, its CronJob controller on a clock ten times as fast as the wall clock
(`--cronjob-clock-scale 10`: a `* * * * *` CronJob fires every 6 s), driven with the real kubectl.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shim.client import ApiClient, load_kubeconfig
from shim.controllers.cronjob import CRONJOBS
from shim.controllers.job import JOBS
from tests.cluster import Cluster
from tests.images import TEST_IMAGE
from tests.prerequisites import needs_podman
from tests.workloads import cluster_on_podman, watch_until

pytestmark = needs_podman

Obj = dict[str, Any]
# five start times of the fast clock, each Job's pod started and finished by Podman, on a loaded machine
FIRINGS_DEADLINE = 240.0


cluster = cluster_on_podman(extra=("--cronjob-clock-scale", "10"))


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


def complete(job: Obj) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or ()
    return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)


async def test_a_cronjob_firing_every_minute_runs_podman_pods_and_keeps_two_jobs(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "* * * * *",
            "successfulJobsHistoryLimit": 2,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "tick",
                                    "image": TEST_IMAGE,
                                    "imagePullPolicy": "Never",
                                    "command": ["sh", "-c", "echo tick from $(hostname)"],
                                }
                            ],
                        }
                    }
                }
            },
        },
    }
    await api.create(CRONJOBS, manifest, namespace)
    seen: set[str] = set()

    def four_ran_two_kept(jobs: list[Obj]) -> list[Obj] | None:
        seen.update(j["metadata"]["name"] for j in jobs if complete(j))
        return jobs if len(seen) >= 4 and len(jobs) == 2 and all(complete(j) for j in jobs) else None

    kept = await watch_until(api, JOBS, namespace, four_ran_two_kept, FIRINGS_DEADLINE, "4 jobs run, 2 kept")
    newest = max(kept, key=lambda j: j["metadata"]["name"])["metadata"]["name"]
    logs = cluster.kubectl("logs", f"job/{newest}", "-n", namespace).stdout
    assert logs.startswith(f"tick from {newest}-"), logs  # the pod's hostname is its name: the Job's, suffixed
    status = (await api.get(CRONJOBS, "tick", namespace))["status"]
    assert status["lastSuccessfulTime"] and status["lastScheduleTime"]
