"""Requests kube refuses, with kube 1.33's codes and words (issue 18, items 8 and 23), through real kubectl
where kubectl can send the request, and raw HTTPS (as client-go sends it) where it cannot.

Each test says where kube's text comes from. Status bodies are compared byte for byte with the JSON
kube-apiserver writes (metav1.Status field order: kind, apiVersion, metadata, status, message, reason,
details, code; empty details fields omitted).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tests.cluster import Cluster
from tests.rawapi import RawApi, Reply

JSON_PATCH = "application/json-patch+json"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    """A failure Status exactly as kube-apiserver encodes it."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason}  # fmt: skip
    if details is not None:
        body["details"] = details
    body["code"] = code
    return orjson.dumps(body)


def raw(cluster: Cluster, call: Callable[[RawApi], Awaitable[Reply]]) -> Reply:
    async def run() -> Reply:
        api = RawApi(cluster.kubeconfig)
        try:
            return await call(api)
        finally:
            await api.close()

    return asyncio.run(run())


def configmap(cluster: Cluster, namespace: str, name: str) -> str:
    cluster.kubectl("create", "configmap", name, "-n", namespace, "--from-literal=a=3")
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


# -- item 8: JSON patch failures --------------------------------------------------------------------------------


# kube: staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go applyJSPatch (a failed Apply is
# NewGenericServerResponse(422, ...): fixed message, the library's error as an UnexpectedServerResponse
# cause) over gopkg.in/evanphx/json-patch.v4 patch.go (test: "testing value %s failed" wrapping
# ErrTestFailed "test failed"; remove: "error in remove for path: '%s'" wrapping partialDoc.remove's
# "Unable to remove nonexistent key: %s" wrapping ErrMissing "missing value").
def test_a_failed_json_patch_test_is_kubes_422_without_python_in_it(cluster: Cluster, namespace: str) -> None:
    path = configmap(cluster, namespace, "tested")
    rejected = "the server rejected our request due to an error in our request"

    result = cluster.kubectl(
        "patch", "cm", "tested", "-n", namespace, "--type", "json",
        "-p", '[{"op":"test","path":"/data/a","value":"99"}]', check=False,
    )  # fmt: skip
    assert result.returncode == 1
    # kubectl prints an Invalid Status by its causes (kind and name empty, the cause without a field)
    assert result.stderr == "The request is invalid: : testing value /data/a failed: test failed\n"

    ops = [{"op": "test", "path": "/data/a", "value": 3}]
    reply = raw(cluster, lambda api: api.call("PATCH", path, ops, content_type=JSON_PATCH))
    assert reply.status == 422
    cause = {"reason": "UnexpectedServerResponse", "message": "testing value /data/a failed: test failed"}
    assert reply.body == status(422, "Invalid", rejected, {"causes": [cause]})

    ops = [{"op": "remove", "path": "/data/b"}]
    reply = raw(cluster, lambda api: api.call("PATCH", path, ops, content_type=JSON_PATCH))
    missing = "error in remove for path: '/data/b': Unable to remove nonexistent key: b: missing value"
    assert reply.body == status(422, "Invalid", rejected, {"causes": [{"reason": "UnexpectedServerResponse",
                                                                       "message": missing}]})  # fmt: skip
    assert json.loads(cluster.kubectl("get", "cm", "tested", "-n", namespace, "-o", "json").stdout)["data"] == {
        "a": "3"
    }


# kube: evanphx/json-patch v4 partialDoc.get returns no error for a missing key, so `replace` of a missing
# object member adds it; an array index past the end is "Unable to access invalid index".
def test_json_patch_keeps_the_leniencies_and_words_of_kubes_library(cluster: Cluster, namespace: str) -> None:
    path = configmap(cluster, namespace, "lenient")
    ops = [{"op": "replace", "path": "/data/new", "value": "x"}]
    reply = raw(cluster, lambda api: api.call("PATCH", path, ops, content_type=JSON_PATCH))
    assert reply.status == 200
    assert reply.json()["data"] == {"a": "3", "new": "x"}

    ops = [{"op": "add", "path": "/metadata/finalizers/3", "value": "x"}]
    reply = raw(cluster, lambda api: api.call("PATCH", path, ops, content_type=JSON_PATCH))
    assert reply.status == 422
    assert reply.json()["details"]["causes"][0]["message"] == (
        'add operation does not apply: doc is missing path: "/metadata/finalizers/3": missing value'
    )


# -- item 8: field selectors -------------------------------------------------------------------------------------


# kube: pkg/apis/core/v1/conversion.go (Pod's field label conversion: "field label not supported: %s");
# ReplicaSets select on status.replicas (pkg/registry/apps/replicaset ReplicaSetToSelectableFields; listed in
# kube's "Field Selectors" page) with the same wording for other labels; a kind with no conversion function
# (Deployment) falls back to runtime.DefaultMetaV1FieldSelectorConversion. handlers/get.go answers 400.
def test_field_selectors_are_supported_and_worded_per_kind_as_kube_does(cluster: Cluster, namespace: str) -> None:
    result = cluster.kubectl("get", "pods", "-n", namespace, "--field-selector", "spec.bogus=x", check=False)
    assert result.stderr == (
        'Error from server (BadRequest): Unable to find "/v1, Resource=pods" that match label selector "", '
        'field selector "spec.bogus=x": field label not supported: spec.bogus\n'
    )
    result = cluster.kubectl("get", "rs", "-n", namespace, "--field-selector", "spec.replicas=1", check=False)
    assert result.stderr == (
        'Error from server (BadRequest): Unable to find "apps/v1, Resource=replicasets" that match label selector '
        '"", field selector "spec.replicas=1": field label not supported: spec.replicas\n'
    )
    result = cluster.kubectl("get", "deploy", "-n", namespace, "--field-selector", "status.replicas=1", check=False)
    assert result.stderr == (
        'Error from server (BadRequest): Unable to find "apps/v1, Resource=deployments" that match label selector '
        '"", field selector "status.replicas=1": "status.replicas" is not a known field selector: '
        'only "metadata.name", "metadata.namespace"\n'
    )

    labels = {"app": "idle"}
    idle = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "idle", "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(idle))
    names = cluster.kubectl("get", "rs", "-n", namespace, "--field-selector", "status.replicas=0", "-o", "name")
    assert names.stdout == "replicaset.apps/idle\n"
    names = cluster.kubectl("get", "rs", "-n", namespace, "--field-selector", "status.replicas!=0", "-o", "name")
    assert names.stdout == ""


# -- item 23: request options ------------------------------------------------------------------------------------


# kube: staging/src/k8s.io/apimachinery/pkg/apis/meta/internalversion/validation/validation.go
# ValidateListOptions, answered by handlers/get.go as NewInvalid(meta.k8s.io/ListOptions, "", errs);
# field.NotSupported prints the supported values quoted, "" included.
def test_an_invalid_resource_version_match_is_a_422_list_options(cluster: Cluster, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    reply = raw(cluster, lambda api: api.call("GET", path, params={"resourceVersion": "1",
                                                                    "resourceVersionMatch": "Bogus"}))  # fmt: skip
    unsupported = 'Unsupported value: "Bogus": supported values: "Exact", "NotOlderThan", ""'
    assert reply.status == 422
    assert reply.body == status(
        422,
        "Invalid",
        f'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: {unsupported}',
        {"group": "meta.k8s.io", "kind": "ListOptions",
         "causes": [{"reason": "FieldValueNotSupported", "message": unsupported, "field": "resourceVersionMatch"}]},
    )  # fmt: skip

    reply = raw(cluster, lambda api: api.call("GET", path, params={"resourceVersionMatch": "Exact"}))
    forbidden = "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    assert reply.status == 422
    assert reply.json()["message"] == f'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: {forbidden}'


# kube: staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go ValidateDryRun
# (field.NotSupported of the []string, printed %#v) inside ValidateCreateOptions/ValidatePatchOptions/...,
# answered as NewInvalid(meta.k8s.io/<Verb>Options, "", errs) by handlers/create.go, patch.go, ...
def test_an_invalid_dry_run_is_a_422_for_the_verbs_options(cluster: Cluster, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"metadata": {"name": "dry"}}
    reply = raw(cluster, lambda api: api.call("POST", path, body, params={"dryRun": "Bogus"}))
    unsupported = 'Unsupported value: []string{"Bogus"}: supported values: "All"'
    assert reply.status == 422
    assert reply.body == status(
        422,
        "Invalid",
        f'CreateOptions.meta.k8s.io "" is invalid: dryRun: {unsupported}',
        {"group": "meta.k8s.io", "kind": "CreateOptions",
         "causes": [{"reason": "FieldValueNotSupported", "message": unsupported, "field": "dryRun"}]},
    )  # fmt: skip

    configmap(cluster, namespace, "dry")
    reply = raw(cluster, lambda api: api.call("PATCH", f"{path}/dry", {"data": {"b": "1"}}, content_type=MERGE,
                                              params={"dryRun": "Bogus"}))  # fmt: skip
    assert reply.status == 422
    assert reply.json()["message"] == f'PatchOptions.meta.k8s.io "" is invalid: dryRun: {unsupported}'


# kube: validation.go ValidateFieldValidation (supported values from a sorted set: "", "Ignore", "Strict",
# "Warn") inside ValidateUpdateOptions, answered by handlers/update.go as NewInvalid(meta.k8s.io/UpdateOptions).
def test_an_invalid_field_validation_is_a_422_for_the_verbs_options(cluster: Cluster, namespace: str) -> None:
    path = configmap(cluster, namespace, "validated")
    body = {"metadata": {"name": "validated"}, "data": {"a": "4"}}
    reply = raw(cluster, lambda api: api.call("PUT", path, body, params={"fieldValidation": "Sometimes"}))
    unsupported = 'Unsupported value: "Sometimes": supported values: "", "Ignore", "Strict", "Warn"'
    assert reply.status == 422
    assert reply.json()["message"] == f'UpdateOptions.meta.k8s.io "" is invalid: fieldValidation: {unsupported}'


# kube: validation.go ValidatePatchOptions ("may not be specified for non-apply patch" when force is set
# at all on any other patch type), answered by handlers/patch.go as NewInvalid(meta.k8s.io/PatchOptions).
def test_force_on_a_non_apply_patch_is_a_422(cluster: Cluster, namespace: str) -> None:
    path = configmap(cluster, namespace, "forced")
    reply = raw(cluster, lambda api: api.call("PATCH", path, {"data": {"b": "1"}}, content_type=MERGE,
                                              params={"force": "true"}))  # fmt: skip
    forbidden = "Forbidden: may not be specified for non-apply patch"
    assert reply.status == 422
    assert reply.body == status(
        422,
        "Invalid",
        f'PatchOptions.meta.k8s.io "" is invalid: force: {forbidden}',
        {"group": "meta.k8s.io", "kind": "PatchOptions",
         "causes": [{"reason": "FieldValueForbidden", "message": forbidden, "field": "force"}]},
    )  # fmt: skip
    assert "b" not in json.loads(cluster.kubectl("get", "cm", "forced", "-n", namespace, "-o", "json").stdout)["data"]


# kube: staging/src/k8s.io/apiserver/pkg/endpoints/handlers/negotiation/errors.go errNotAcceptable
# ("only the following media types are accepted: %v", the serializer's types; CBOR is off in 1.33).
def test_an_unservable_accept_header_is_406(cluster: Cluster, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    reply = raw(cluster, lambda api: api.call("GET", path, headers={"Accept": "application/xml"}))
    assert reply.status == 406
    assert reply.body == status(
        406,
        "NotAcceptable",
        "only the following media types are accepted: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf",
    )
    reply = raw(cluster, lambda api: api.call("GET", path, headers={"Accept": "application/xml, */*"}))
    assert reply.status == 200


# kube: handlers/patch.go applyPatchToObject (strategic merge: field.Invalid(patch, fmt.Sprintf("%+v",
# patchMap), strictDecodingError)) and jsonPatcher.applyPatchToCurrentObject (JSON and merge patches:
# the patched JSON), both NewInvalid(schema.GroupKind{}, "", ...): a 422 whose message starts ` "" is invalid`.
def test_an_unknown_field_in_a_strict_patch_is_kubes_422(cluster: Cluster, namespace: str) -> None:
    path = configmap(cluster, namespace, "strict")
    strict = {"fieldValidation": "Strict"}
    reply = raw(cluster, lambda api: api.call("PATCH", path, {"bogus": 1}, content_type=STRATEGIC, params=strict))
    why = 'Invalid value: "map[bogus:1]": strict decoding error: unknown field "bogus"'
    assert reply.status == 422
    assert reply.body == status(
        422,
        "Invalid",
        f' "" is invalid: patch: {why}',
        {"causes": [{"reason": "FieldValueInvalid", "message": why, "field": "patch"}]},
    )

    reply = raw(cluster, lambda api: api.call("PATCH", path, {"bogus": 1}, content_type=MERGE, params=strict))
    assert reply.status == 422
    [cause] = reply.json()["details"]["causes"]
    shown = json.loads(json.loads(cause["message"].removeprefix("Invalid value: ").split(": strict decoding")[0]))
    assert (shown["bogus"], shown["data"]) == (1, {"a": "3"})  # the whole patched object
    assert cause["message"].endswith('strict decoding error: unknown field "bogus"')
