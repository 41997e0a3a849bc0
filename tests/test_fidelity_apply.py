"""Server-side apply as kube 1.33 answers it, through the real kubectl (issue 18, items 1, 2 and 14).

Where kube's text comes from is said above each test. One deliberate difference: kube answers a
configuration that does not fit the schema with a 500 without a reason (the field manager's plain error
reaches `responsewriters.ErrorToAPIStatus`), so kubectl prints `Error from server: ...`; kube-shim never
answers bad input with a 5xx, so it is a 400 BadRequest with kube's message, byte for byte.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson

from tests.cluster import Cluster
from tests.rawapi import RawApi

APPLY = "application/apply-patch+yaml"


def configmap(namespace: str, name: str, **fields: Any) -> str:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, **fields}
    return json.dumps(body)


def deployment(namespace: str, name: str, replicas: int, image: Any = "nginx") -> str:
    labels = {"app": name}
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
            },
        }
    )


def server_side_apply(cluster: Cluster, manifest: str, *extra: str) -> tuple[int, str, str]:
    result = cluster.kubectl("apply", "--server-side", "-f", "-", *extra, stdin=manifest, check=False)
    return result.returncode, result.stdout, result.stderr


def raw_apply(cluster: Cluster, path: str, body: str, params: dict[str, str]) -> tuple[int, bytes]:
    async def send() -> tuple[int, bytes]:
        api = RawApi(cluster.kubeconfig)
        try:
            reply = await api.call("PATCH", path, body.encode(), content_type=APPLY, params=params)
            return reply.status, reply.body
        finally:
            await api.close()

    return asyncio.run(send())


def bad_request(message: str) -> bytes:
    """A 400 Status exactly as kube-apiserver encodes it (field order of metav1.Status)."""
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
              "reason": "BadRequest", "code": 400}  # fmt: skip
    return orjson.dumps(status)


# kube: staging/src/k8s.io/apimachinery/pkg/util/managedfields/internal/structuredmerge.go (Apply:
# "failed to create typed patch object (%v): %v", objectGVKNN = "<namespace>/<name>; <gvk>") over
# sigs.k8s.io/structured-merge-diff typed/validate.go (visitMapItems: "field not declared in schema").
def test_server_side_apply_refuses_a_field_the_schema_does_not_declare(cluster: Cluster, namespace: str) -> None:
    code, _, stderr = server_side_apply(cluster, configmap(namespace, "extra", data={"a": "1"}, extra=1))

    assert code == 1
    assert stderr == (
        "Error from server (BadRequest): failed to create typed patch object "
        f"({namespace}/extra; /v1, Kind=ConfigMap): .extra: field not declared in schema\n"
    )
    assert cluster.kubectl("get", "cm", "extra", "-n", namespace, check=False).returncode == 1


def test_unknown_metadata_and_container_fields_are_refused_whatever_field_validation_says(
    cluster: Cluster, namespace: str
) -> None:
    manifest = configmap(namespace, "meta", metadata={"name": "meta", "namespace": namespace, "bogus": "x"})
    path = f"/api/v1/namespaces/{namespace}/configmaps/meta"
    for mode in ("Strict", "Warn", "Ignore"):  # the typed conversion runs before any field validation
        status, body = raw_apply(cluster, path, manifest, {"fieldManager": "test", "fieldValidation": mode})
        assert status == 400
        assert body == bad_request(
            f"failed to create typed patch object ({namespace}/meta; /v1, Kind=ConfigMap): "
            ".metadata.bogus: field not declared in schema"
        )

    pod = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "busybox", "colour": "red"}]},
        }
    )
    code, _, stderr = server_side_apply(cluster, pod)
    assert code == 1
    assert stderr == (
        f"Error from server (BadRequest): failed to create typed patch object ({namespace}/p; /v1, Kind=Pod): "
        '.spec.containers[name="c"].colour: field not declared in schema\n'
    )


# kube: structured-merge-diff typed/helpers.go validateScalar ("expected string, got %#v" of the value,
# printed `&value.valueUnstructured{Value:5}`), mapValue/listValue ("expected list, got %v": `&{map[a:1]}`),
# and ValidationErrors.Error ("errors:" then one indented line per error).
def test_server_side_apply_of_a_wrong_type_is_a_400_with_kube_wording(cluster: Cluster, namespace: str) -> None:
    code, _, stderr = server_side_apply(cluster, deployment(namespace, "typed", 1, image=5))
    assert code == 1
    assert stderr == (
        f"Error from server (BadRequest): failed to create typed patch object ({namespace}/typed; apps/v1, "
        'Kind=Deployment): .spec.template.spec.containers[name="c"].image: expected string, got '
        "&value.valueUnstructured{Value:5}\n"
    )

    status, body = raw_apply(
        cluster,
        f"/api/v1/namespaces/{namespace}/configmaps/typed",
        configmap(namespace, "typed", data={"a": 1, "b": {"c": True}}),
        {"fieldManager": "test"},
    )
    assert status == 400
    assert body == bad_request(
        f"failed to create typed patch object ({namespace}/typed; /v1, Kind=ConfigMap): errors:\n"
        "  .data.a: expected string, got &value.valueUnstructured{Value:1}\n"
        '  .data.b: expected string, got &value.valueUnstructured{Value:map[string]interface {}{"c":true}}'
    )

    pod = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "ports", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "busybox", "ports": {"a": 1}}]},
        }
    )
    status, body = raw_apply(cluster, f"/api/v1/namespaces/{namespace}/pods/ports", pod, {"fieldManager": "test"})
    assert status == 400
    assert body == bad_request(
        f"failed to create typed patch object ({namespace}/ports; /v1, Kind=Pod): "
        '.spec.containers[name="c"].ports: expected list, got &{map[a:1]}'
    )


# kube: test/integration/apiserver/apply/scale_test.go (TestScaleAllResources: a scale write makes its
# manager the owner of spec.replicas, and re-applying the original replicas is a conflict);
# internal/conflict.go printManager (`"<manager>" with subresource "scale" using apps/v1`);
# handlers/patch.go managerOrUserAgent (no fieldManager: the User-Agent before its first "/").
def test_scale_owns_replicas_so_a_later_apply_reports_the_conflict(cluster: Cluster, namespace: str) -> None:
    assert server_side_apply(cluster, deployment(namespace, "web", 1))[0] == 0
    cluster.kubectl("scale", "deploy", "web", "--replicas", "3", "-n", namespace)

    managed = json.loads(
        cluster.kubectl("get", "deploy", "web", "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )
    entries = {(e["manager"], e["operation"], e.get("subresource")): e for e in managed["metadata"]["managedFields"]}
    scaled = entries[("kubectl.1.33", "Update", "scale")]
    assert (scaled["apiVersion"], scaled["fieldsV1"]) == ("apps/v1", {"f:spec": {"f:replicas": {}}})
    assert "f:replicas" not in entries[("kubectl", "Apply", None)]["fieldsV1"]["f:spec"]

    code, _, stderr = server_side_apply(cluster, deployment(namespace, "web", 1))
    assert code == 1
    assert stderr.startswith(
        "error: Apply failed with 1 conflict: conflict with "
        '"kubectl.1.33" with subresource "scale" using apps/v1: .spec.replicas\n'
    )
    assert managed["spec"]["replicas"] == 3


# kube: test/integration/apiserver/apply/status_test.go (an apply to /status changes status and records
# the manager with subresource "status"; the spec in the same body is ignored: the status reset fields).
def test_server_side_apply_to_status_applies_it_and_records_the_manager(cluster: Cluster, namespace: str) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "st", "namespace": namespace},
               "spec": {"ports": [{"port": 80}]}}  # fmt: skip
    assert server_side_apply(cluster, json.dumps(service))[0] == 0
    ingress = {"loadBalancer": {"ingress": [{"ip": "127.0.0.9"}]}}
    status = json.dumps({**service, "spec": {"ports": [{"port": 81}]}, "status": ingress})
    code, stdout, stderr = server_side_apply(cluster, status, "--subresource=status", "--field-manager=status-writer")
    assert code == 0, stderr
    assert stdout == "service/st serverside-applied\n"

    live = json.loads(
        cluster.kubectl("get", "svc", "st", "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )
    assert live["status"] == ingress
    assert live["spec"]["ports"][0]["port"] == 80
    entry = next(e for e in live["metadata"]["managedFields"] if e["manager"] == "status-writer")
    assert (entry["operation"], entry["apiVersion"], entry["subresource"]) == ("Apply", "v1", "status")
    assert entry["fieldsV1"] == {"f:status": {"f:loadBalancer": {"f:ingress": {}}}}


# kube: test/integration/apiserver/apply/scale_test.go (an apply of a Scale conflicts with the manager of
# the parent's spec.replicas; forced, only the new manager owns it) and printManager for Apply entries.
def test_server_side_apply_of_a_scale_owns_the_parents_replicas(cluster: Cluster, namespace: str) -> None:
    assert server_side_apply(cluster, deployment(namespace, "sc", 1))[0] == 0
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/sc/scale"
    scale = json.dumps(
        {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": "sc", "namespace": namespace},
            "spec": {"replicas": 5},
        }
    )
    code, body = raw_apply(cluster, path, scale, {"fieldManager": "scaler"})
    assert code == 409
    assert orjson.loads(body)["message"] == 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas'

    code, body = raw_apply(cluster, path, scale, {"fieldManager": "scaler", "force": "true"})
    assert code == 200, body
    assert orjson.loads(body)["spec"] == {"replicas": 5}
    live = json.loads(
        cluster.kubectl("get", "deploy", "sc", "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )
    owners = [e for e in live["metadata"]["managedFields"] if "f:replicas" in e["fieldsV1"].get("f:spec", {})]
    assert [(e["manager"], e["operation"], e.get("subresource")) for e in owners] == [("scaler", "Apply", "scale")]
    assert live["spec"]["replicas"] == 5
