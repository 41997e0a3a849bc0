"""Health endpoints and the OpenAPI v2 document as kube-apiserver serves them."""

from __future__ import annotations

import pytest

from tests.cluster import Cluster
from tests.rawapi import RawApi


@pytest.mark.parametrize("endpoint", ["healthz", "livez", "readyz"])
def test_verbose_health_lists_each_check_as_kube_does(cluster: Cluster, endpoint: str) -> None:
    lines = cluster.kubectl("get", "--raw", f"/{endpoint}?verbose").stdout.splitlines()
    assert lines[:3] == ["[+]ping ok", "[+]log ok", "[+]etcd ok"]
    assert lines[-1] == f"{endpoint} check passed"
    assert cluster.kubectl("get", "--raw", f"/{endpoint}").stdout == "ok"
    assert cluster.kubectl("get", "--raw", f"/{endpoint}/etcd").stdout == "ok"


async def test_openapi_v2_is_json_unless_protobuf_is_asked_for(api: RawApi) -> None:
    as_json = await api.call("GET", "/openapi/v2", headers={"Accept": "application/json"})
    assert as_json.status == 200 and as_json.headers["Content-Type"].startswith("application/json")
    document = as_json.json()
    assert document["swagger"] == "2.0"
    assert "io.k8s.api.core.v1.Pod" in document["definitions"]
    protobuf = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    as_protobuf = await api.call("GET", "/openapi/v2", headers={"Accept": protobuf})
    # kube-openapi answers the `.v1.0` spelling (Go's mime parser rejects `@`)
    assert as_protobuf.headers["Content-Type"].startswith("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    assert as_protobuf.body[:1] != b"{"


def test_kubectl_explain_still_reads_openapi_v2(cluster: Cluster) -> None:
    explained = cluster.kubectl("explain", "pod.spec.containers.image", version="1.27")
    assert "image" in explained.stdout.lower()


def test_kubectl_get_endpoints_warns_that_endpoints_are_deprecated(cluster: Cluster) -> None:
    got = cluster.kubectl("get", "endpoints", "-n", "default")
    warning = "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"
    assert got.stderr.splitlines()[0] == warning
    slices = cluster.kubectl("get", "endpointslices", "-n", "default")
    assert "Warning" not in slices.stderr
