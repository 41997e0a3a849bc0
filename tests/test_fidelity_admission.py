"""ServiceAccount admission as kube-apiserver 1.33 applies it (issue 18, item 6).

Where kube's expected text comes from: plugin/pkg/admission/serviceaccount/admission.go — `Admit` answers
`admission.NewForbidden(a, fmt.Errorf("error looking up service account %s/%s: %w", ...))` when
`getServiceAccount` fails, and that returns `errors.NewNotFound(api.Resource("serviceaccount"), name)`
(`serviceaccount "nope" not found`, singular) after one lookup, or ten 100-200 ms apart for `default`.
`NewForbidden` (apiserver/pkg/admission/errors.go) names the pod by its generateName while it has no name
(mutating admission runs before BeforeCreate generates one), as in the ReplicaSet controller's
`FailedCreate` events real clusters show (`Error creating: pods "web-5c7588df-" is forbidden: ...`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.cluster import Cluster, start_cluster, wait_until
from tests.rawapi import RawApi


@pytest.fixture
def no_controllers(tmp_path: Path) -> Iterator[Cluster]:
    """A control plane without the serviceaccount controller: no namespace gets a `default` account."""
    running = start_cluster(tmp_path, extra=("--no-controllers",))
    yield running
    running.stop()


def pod(name: str | None = None, account: str | None = None, generate: str | None = None) -> dict[str, Any]:
    meta = {"name": name} if name else {"generateName": generate}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if account:
        spec["serviceAccountName"] = account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def forbidden(name: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "Forbidden",
            "details": {"name": name, "kind": "pods"},
            "code": 403,
        }
    )


def test_kubectl_run_naming_a_missing_service_account_is_forbidden(cluster: Cluster, namespace: str) -> None:
    overrides = json.dumps({"spec": {"serviceAccountName": "nope"}})
    result = cluster.kubectl("run", "q", "-n", namespace, "--image=busybox", "--overrides", overrides, check=False)
    assert result.returncode == 1
    assert result.stderr == (
        f'Error from server (Forbidden): pods "q" is forbidden: error looking up service account {namespace}/nope: '
        'serviceaccount "nope" not found\n'
    )
    missing = cluster.kubectl("get", "pod", "q", "-n", namespace, check=False)
    assert missing.stderr == 'Error from server (NotFound): pods "q" not found\n'


async def test_the_forbidden_status_is_kubes_and_names_a_generated_pod_by_its_prefix(
    api: RawApi, namespace: str
) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    why = f'error looking up service account {namespace}/nope: serviceaccount "nope" not found'
    named = await api.call("POST", pods, pod("x", "nope"))
    assert (named.status, named.body) == (403, forbidden("x", f'pods "x" is forbidden: {why}'))
    generated = await api.call("POST", pods, pod(account="nope", generate="web-"))
    assert (generated.status, generated.body) == (403, forbidden("web-", f'pods "web-" is forbidden: {why}'))
    existing = await api.call("POST", pods, pod("ok", "default"))
    assert existing.status == 201, existing.body


def test_a_deployment_with_a_service_account_typo_shows_failed_create_events(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "deployment", "web", "-n", namespace, "--image=busybox")
    cluster.kubectl("set", "serviceaccount", "deployment/web", "nope", "-n", namespace)

    def failed_create() -> dict[str, Any] | None:
        listed = cluster.kubectl("get", "events", "-n", namespace, "--field-selector=reason=FailedCreate", "-o=json")
        return next(iter(json.loads(listed.stdout)["items"]), None)

    event = wait_until(failed_create, what="a FailedCreate event")
    replicaset = event["involvedObject"]["name"]
    assert (event["type"], event["source"], event["involvedObject"]["kind"]) == (
        "Warning",
        {"component": "replicaset-controller"},
        "ReplicaSet",
    )
    assert event["message"] == (
        f'Error creating: pods "{replicaset}-" is forbidden: error looking up service account {namespace}/nope: '
        'serviceaccount "nope" not found'
    )
    described = cluster.kubectl("describe", "replicaset", replicaset, "-n", namespace).stdout
    assert "ReplicaFailure   True    FailedCreate" in described


async def test_without_the_serviceaccount_controller_even_default_is_refused(no_controllers: Cluster) -> None:
    no_controllers.kubectl("create", "namespace", "bare")
    api = RawApi(no_controllers.kubeconfig)
    try:
        reply = await api.call("POST", "/api/v1/namespaces/bare/pods", pod("p"))
    finally:
        await api.close()
    why = 'error looking up service account bare/default: serviceaccount "default" not found'
    assert (reply.status, reply.body) == (403, forbidden("p", f'pods "p" is forbidden: {why}'))
