"""A PUT of a missing object creates it for the kinds kube allows that (services, endpoints, events, leases),
and is a 404 for the others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.cluster import Cluster


@pytest.fixture
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    yield api
    api.close()


def test_put_creates_services_endpoints_events_and_leases(api: client.ApiClient, namespace: str) -> None:
    core, coordination = client.CoreV1Api(api), client.CoordinationV1Api(api)
    service = {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
    assert core.replace_namespaced_service("svc", namespace, service).spec.cluster_ip.startswith("10.")
    subset = {"addresses": [{"ip": "10.244.0.9"}], "ports": [{"port": 80}]}
    endpoints = {"metadata": {"name": "ep"}, "subsets": [subset]}
    assert core.replace_namespaced_endpoints("ep", namespace, endpoints).subsets[0].addresses[0].ip == "10.244.0.9"
    event = {"metadata": {"name": "ev"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace},
             "reason": "Tested", "message": "created by a PUT"}  # fmt: skip
    assert core.replace_namespaced_event("ev", namespace, event).message == "created by a PUT"
    lease = {"metadata": {"name": "lease"}, "spec": {"holderIdentity": "me"}}
    assert coordination.replace_namespaced_lease("lease", namespace, lease).spec.holder_identity == "me"
    assert core.read_namespaced_service("svc", namespace).metadata.uid


def test_put_of_a_missing_configmap_is_not_found(api: client.ApiClient, namespace: str) -> None:
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(api).replace_namespaced_config_map("cm", namespace, {"metadata": {"name": "cm"}})
    assert missing.value.status == 404
