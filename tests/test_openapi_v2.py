"""`/openapi/v2` as gnostic protobuf is what the real kubectl 1.27/1.28 need for explain and apply validation.

Observed with kubectl 1.27.16 and 1.28.15 (1.28 needs nothing beyond 1.27):
- `explain` first GETs `/openapi/v2?timeout=32s` with
  `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, then legacy discovery
  (`/api`, `/apis`, `/api/v1`), then `/openapi/v3`; a 404 there is fine, they stay on v2.
- The response Content-Type must parse as a Go media type: answering with the `@v1.0` spelling fails
  ("mime: unexpected content after media subtype"); kube-apiserver answers `...spec.v2.v1.0+protobuf`.
- `apply` GETs `/openapi/v2` then `/openapi/v3`. If the v2 paths hold a PATCH operation for the object's
  x-kubernetes-group-version-kind with a `fieldValidation` query parameter, kubectl skips client-side
  validation and relies on the server's `fieldValidation=Strict`; otherwise it validates against the
  definitions itself. kubectl 1.32 falls back to the same v2 document when `/openapi/v3` is 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import orjson
import pytest
from aiohttp import web

from shim.apiserver.openapi_v2 import ACCEPTED_TYPES, CONTENT_TYPE, encode_swagger_v2
from tests.recorder import Kubectl, Recorder, kubectl_for, recording_server

POD_PATH = "/api/v1/namespaces/{namespace}/pods/{name}"
PODS = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "v1",
    "resources": [
        {
            "name": "pods",
            "singularName": "pod",
            "namespaced": True,
            "kind": "Pod",
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": ["po"],
        }
    ],
}
POD_MANIFEST = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - {container}
"""
NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}


@cache
def upstream_swagger(with_pod_paths: bool) -> bytes:
    """Swagger 2.0 shaped like kube-apiserver's, from kubernetes-validate's v1.33 definitions, encoded."""
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.33.0-local"
    definitions = orjson.loads((root / "_definitions.json").read_bytes())["$defs"]
    swagger = {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": {POD_PATH: pod_item_path()} if with_pod_paths else {},
        "definitions": {name: swagger_schema(schema) for name, schema in definitions.items()},
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    }
    return encode_swagger_v2(swagger)


def swagger_schema(schema: Any) -> Any:
    """JSON Schema 2020-12 (nullable type lists, $defs, oneOf) -> the Swagger 2.0 form kube publishes."""
    if isinstance(schema, list):
        return [swagger_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = value.replace("#/$defs/", "#/definitions/")
        elif key == "type" and isinstance(value, list):
            [out[key]] = [t for t in value if t != "null"]
        elif key == "oneOf":  # IntOrString and Quantity
            out["type"] = "string"
            if {"type": ["integer", "null"]} in value:
                out["format"] = "int-or-string"
        elif key == "properties":
            out[key] = {name: swagger_schema(prop) for name, prop in value.items()}
        elif key == "enum":
            out[key] = [item for item in value if item is not None]
        else:
            out[key] = swagger_schema(value)
    return out


def pod_item_path() -> dict[str, Any]:
    """The pod item path the way kube-apiserver publishes it (trimmed to get and patch)."""
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    pod = {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}
    return {
        "get": {
            "description": "read the specified Pod",
            "consumes": ["*/*"],
            "produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
            "schemes": ["https"],
            "tags": ["core_v1"],
            "operationId": "readCoreV1NamespacedPod",
            "responses": {"200": {"description": "OK", "schema": pod}, "401": {"description": "No"}},
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": gvk,
        },
        "patch": {
            "operationId": "patchCoreV1NamespacedPod",
            "parameters": [
                {"name": "body", "in": "body", "required": True, "schema": {"type": "object"}},
                {"uniqueItems": True, "type": "string", "name": "fieldValidation", "in": "query"},
                {"type": "boolean", "name": "force", "in": "query"},
            ],
            "responses": {"200": {"description": "OK", "schema": pod}, "201": {"$ref": "#/responses/a"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
        },
        "parameters": [
            {"uniqueItems": True, "type": "string", "description": "name", "name": "name", "in": "path"},
            {"$ref": "#/parameters/namespace-vgWSWtn3"},
        ],
    }


@dataclass
class FakeApiserver:
    """Enough of an API server for explain and apply of pods; serves `document` at /openapi/v2."""

    document: bytes

    async def handle(self, request: web.Request, body: bytes) -> web.Response:
        if request.path == "/openapi/v2":
            if request.headers.get("Accept") not in ACCEPTED_TYPES:
                return web.Response(status=406)
            return web.Response(body=self.document, headers={"Content-Type": CONTENT_TYPE})
        if request.path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if request.path == "/apis":
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if request.path == "/api/v1":
            return web.json_response(PODS)
        if request.method == "POST" and request.path == "/api/v1/namespaces/default/pods":
            return web.json_response(orjson.loads(body), status=201)
        return web.json_response(NOT_FOUND, status=404)  # /openapi/v3 included


@dataclass
class Cluster:
    kubectl: Kubectl
    recorder: Recorder
    server: FakeApiserver

    async def apply(self, manifest: Path, name: str, container: str) -> tuple[int, str]:
        manifest.write_text(POD_MANIFEST.format(name=name, container=container))
        return await self.kubectl.run("apply", "-f", str(manifest))

    def created(self) -> list[str]:
        return [orjson.loads(r.body)["metadata"]["name"] for r in self.recorder.requests if r.method == "POST"]


@pytest.fixture(params=["1.27", "1.28"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    server = FakeApiserver(upstream_swagger(with_pod_paths=True))
    async with recording_server(server.handle) as recorder:
        yield Cluster(kubectl_for(request.param, recorder.url, tmp_path), recorder, server)


async def test_explain_prints_field_documentation_from_the_protobuf_document(cluster: Cluster) -> None:
    code, output = await cluster.kubectl.run("explain", "pod.spec.containers")
    assert code == 0, output
    assert "KIND:     Pod" in output
    assert "RESOURCE: containers <[]Object>" in output
    assert "FIELDS:" in output
    assert "   image\t<string>" in output
    assert "Container image name." in output
    first = cluster.recorder.requests[0]
    assert (first.path, first.query) == ("/openapi/v2", {"timeout": "32s"})
    assert first.headers["Accept"] == "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


async def test_apply_validates_client_side_against_the_definitions(cluster: Cluster, tmp_path: Path) -> None:
    cluster.server.document = upstream_swagger(with_pod_paths=False)
    assert await cluster.apply(tmp_path / "pod.yaml", "app", "name: c") == (0, "pod/app created\n")

    code, output = await cluster.apply(tmp_path / "pod.yaml", "bad", "imagee: x")
    assert code == 1
    assert 'unknown field "imagee" in io.k8s.api.core.v1.Container' in output
    assert 'missing required field "name" in io.k8s.api.core.v1.Container' in output
    assert cluster.created() == ["app"]


async def test_apply_leaves_validation_to_a_server_whose_patch_takes_field_validation(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The pod PATCH operation (found by its x-kubernetes-group-version-kind) lists a fieldValidation query
    # parameter, so kubectl trusts the server to reject unknown fields (fieldValidation=Strict).
    assert await cluster.apply(tmp_path / "pod.yaml", "bad", "imagee: x") == (0, "pod/bad created\n")
    [post] = [r for r in cluster.recorder.requests if r.method == "POST"]
    assert post.query["fieldValidation"] == "Strict"
    assert orjson.loads(post.body)["spec"]["containers"] == [{"imagee": "x"}]


def test_the_encoding_is_gnostics_wire_format() -> None:
    swagger = {
        "swagger": "2.0",
        "paths": {"/p": {"get": {"parameters": [{"name": "n", "in": "query", "type": "string"}]}}},
        "definitions": {"A": {"type": "object", "readOnly": False, "x-k": [1]}},
    }
    hexes = bytes.fromhex
    expected = b"".join(
        [
            hexes("0a03"), b"2.0",  # swagger = 1
            # paths = 8 > Paths.path = 2 > NamedPathItem{name = 1, value = 2} > PathItem.get = 2 >
            # Operation.parameters = 8 > ParametersItem.parameter = 1 > Parameter.non_body_parameter = 2 >
            # NonBodyParameter.query = 3 > QueryParameterSubSchema{name = 4, in = 2, type = 6}
            hexes("4224 1222 0a02"), b"/p", hexes("121c 121a 4218 0a16 1214 1a12"),
            hexes("2201"), b"n", hexes("1205"), b"query", hexes("3206"), b"string",
            # definitions = 9 > Definitions.additional_properties = 1 > NamedSchema{"A", Schema{
            #   type = 22 > TypeItem.value = 1; readOnly = 27 is false: omitted;
            #   vendor_extension = 31 > NamedAny{name = 1, value = 2 > Any.yaml = 2}}}
            hexes("4a21 0a1f 0a01"), b"A", hexes("121a b20108 0a06"), b"object",
            hexes("fa010c 0a03"), b"x-k", hexes("1205 1203"), b"[1]",
        ]
    )  # fmt: skip
    assert encode_swagger_v2(swagger) == expected


@pytest.mark.parametrize(
    ("swagger", "message"),
    [
        ({"definitions": {"A": {"nullable": True}}}, "#/definitions/A: 'nullable' has no place"),
        ({"definitions": {"A": {"maxLength": "3"}}}, "#/definitions/A/maxLength"),
        ({"paths": {"/p": {"get": {"parameters": [{"name": "n", "in": "cookie"}]}}}}, "'in' is none of"),
    ],
)
def test_what_swagger_2_cannot_hold_is_an_error(swagger: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_swagger_v2(swagger)
