"""The served OpenAPI documents: what kubectl apply and explain need from them, and the schema index."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from shim.apiserver import openapi
from shim.apiserver.schema import SchemaNode, schema_for, schema_named

REPO = Path(__file__).resolve().parents[1]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("openapi_generate", REPO / "openapi" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()
SERVED = GENERATOR.SERVED


def gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def v3(group: str, version: str) -> dict[str, Any]:
    found = openapi.v3_document(gv_path(group, version))
    assert found is not None, f"no v3 document for {gv_path(group, version)}"
    return orjson.loads(found[0])


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_the_index_lists_every_served_group_version_with_the_documents_hash() -> None:
    paths = openapi.v3_index()["paths"]
    assert set(paths) == {gv_path(k.group, k.version) for k in SERVED}
    for gv, entry in paths.items():
        found = openapi.v3_document(gv)
        assert found is not None
        body, digest = found
        assert digest == hashlib.sha512(body).hexdigest().upper()
        assert entry["serverRelativeURL"] == f"/openapi/v3/{gv}?hash={digest}"


def test_an_unknown_group_version_has_no_document() -> None:
    assert openapi.v3_document("apis/example.com/v1") is None  # a group no built-in kind will ever be served in


@pytest.mark.parametrize("k", SERVED, ids=lambda k: f"{k.group or 'core'}/{k.plural}")
def test_every_kind_has_a_patch_path_with_field_validation_and_its_gvk(k: Any) -> None:
    # kubectl apply checks this before it sends fieldValidation=Strict (kubectl-wire G4)
    document = v3(k.group, k.version)
    scope = "/namespaces/{namespace}" if k.namespaced else ""
    item = document["paths"][f"/{gv_path(k.group, k.version)}{scope}/{k.plural}/{{name}}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": k.group,
        "version": k.version,
        "kind": k.kind,
    }
    assert patch["x-kubernetes-action"] == "patch"
    assert {"name": "fieldValidation", "in": "query"}.items() <= _param(patch, "fieldValidation").items()
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]


@pytest.mark.parametrize("k", SERVED, ids=lambda k: f"{k.group or 'core'}/{k.plural}")
def test_every_kind_has_a_component_schema_with_its_gvk_for_explain(k: Any) -> None:
    gvk = {"group": k.group, "version": k.version, "kind": k.kind}
    schemas = v3(k.group, k.version)["components"]["schemas"]
    found = [s for s in schemas.values() if gvk in s.get("x-kubernetes-group-version-kind", [])]
    assert len(found) == 1
    assert found[0]["type"] == "object" and "metadata" in found[0]["properties"]


@pytest.mark.parametrize("gv", sorted(openapi.v3_index()["paths"]))
def test_every_reference_resolves_and_no_json_schema_dialect_is_left(gv: str) -> None:
    found = openapi.v3_document(gv)
    assert found is not None
    document = orjson.loads(found[0])
    assert document["openapi"] == "3.0.0"
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    text = found[0].decode()
    assert '"$defs' not in text and '"oneOf"' not in text
    assert all(isinstance(t, str) for t in _types(document))


def test_pod_subresources_and_deployment_scale_are_described() -> None:
    core = v3("", "v1")["paths"]
    pods = "/api/v1/namespaces/{namespace}/pods/{name}"
    binding = core[pods + "/binding"]["post"]
    assert binding["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Binding"}
    assert core[pods + "/eviction"]["post"]["x-kubernetes-group-version-kind"]["group"] == "policy"
    assert {"get", "put", "patch"} <= set(core[pods + "/status"])
    assert {"get", "post"} <= set(core[pods + "/exec"])
    assert _param(core[pods + "/log"]["get"], "follow")["schema"]["type"] == "boolean"
    scale = v3("apps", "v1")["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
    }
    assert scale["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("autoscaling.v1.Scale")


def test_the_swagger_document_has_definitions_and_field_validation_for_every_kind() -> None:
    swagger = openapi.swagger_v2()
    assert swagger["swagger"] == "2.0"
    definitions = swagger["definitions"]
    for ref in refs(swagger):
        assert ref.startswith("#/definitions/") and ref.rsplit("/", 1)[1] in definitions, ref
    gvks = [gvk for d in definitions.values() for gvk in d.get("x-kubernetes-group-version-kind", [])]
    for k in SERVED:
        for kind in (k.kind, k.kind + "List"):
            assert {"group": k.group, "version": k.version, "kind": kind} in gvks
        scope = "/namespaces/{namespace}" if k.namespaced else ""
        patch = swagger["paths"][f"/{gv_path(k.group, k.version)}{scope}/{k.plural}/{{name}}"]["patch"]
        assert {"in": "query", "type": "string"}.items() <= _param(patch, "fieldValidation").items()


def test_the_committed_documents_are_what_the_generator_writes(tmp_path: Path) -> None:
    GENERATOR.main(tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json.gz"))
    shipped = REPO / "shim" / "apiserver" / "openapi_documents"
    committed = sorted(p.relative_to(shipped) for p in shipped.rglob("*.json.gz"))
    assert written == committed
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (shipped / relative).read_bytes(), relative


# -- the schema index ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", SERVED, ids=lambda k: f"{k.group or 'core'}/{k.plural}")
def test_schema_for_finds_every_served_kind(k: Any) -> None:
    node = schema_for(k.group, k.version, k.kind)
    assert node is not None and node.field("metadata") is not None


def test_merge_keys_and_strategies_are_read_through_references() -> None:
    strategy = walk(schema_for("apps", "v1", "Deployment"), "spec", "strategy")
    assert strategy.patch_strategies == ("retainKeys",)
    assert strategy.name == "io.k8s.api.apps.v1.DeploymentStrategy"
    assert strategy.description == "The deployment strategy to use to replace existing pods with new ones."
    containers = walk(schema_named("io.k8s.api.core.v1.PodSpec"), "containers")
    assert (containers.patch_strategy, containers.patch_merge_key) == ("merge", "name")
    assert (containers.list_type, containers.list_map_keys) == ("map", ("name",))
    ports = walk(containers.items, "ports")
    assert ports.patch_merge_key == "containerPort"
    assert ports.list_map_keys == ("containerPort", "protocol")


def test_maps_and_free_form_objects_are_told_apart() -> None:
    pod = schema_for("", "v1", "Pod")
    assert walk(pod, "metadata", "labels", "any-key").type == "string"
    managed = walk(pod, "metadata", "managedFields")
    assert walk(managed.items, "fieldsV1").free_form
    assert not walk(pod, "metadata").free_form
    assert schema_for("", "v1", "NoSuchKind") is None


def walk(node: SchemaNode | None, *keys: str) -> SchemaNode:
    """Follow `keys` through `node`, failing the test at the first missing step."""
    assert node is not None
    for key in keys:
        found = node.field(key)
        assert found is not None, f"{node} has no field {key}"
        node = found
    return node


def _param(operation: dict[str, Any], name: str) -> dict[str, Any]:
    found = [p for p in operation.get("parameters", []) if p.get("name") == name]
    assert len(found) == 1, f"{operation['operationId']} has no single {name} parameter"
    return found[0]


def _types(node: Any) -> Iterator[Any]:
    """Every schema `type` value (a property named "type" is a schema, not a type)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "type":
                yield value
            children = value.values() if key == "properties" else [value]
            for child in children:
                yield from _types(child)
    elif isinstance(node, list):
        for value in node:
            yield from _types(value)
