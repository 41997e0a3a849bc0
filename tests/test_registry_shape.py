"""A kind is one strategy module plus one registry line (issue 9).

Walks `build_registry()` and checks, against the real `kube-shim up`, that every served kind's discovery
entries (legacy and aggregated, with its subresources and verbs), its OpenAPI v3 paths and schema, its Table
columns and its field selectors are exactly what its strategy declares; and, statically, that no generic
module of the API server names a served plural, so none can keep a per-kind table of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from shim.apiserver.registry import ResourceType, Subresource
from shim.apiserver.resources import build_registry
from tests.rawapi import RawApi

REGISTRY = build_registry()
KINDS = REGISTRY.resources
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
APISERVER = Path(__file__).resolve().parents[1] / "shim" / "apiserver"
# string literals that equal a served plural without naming the resource, with the reason
NOT_RESOURCES = {
    ("protobuf_schema_gen.py", "events"): "the k8s.io/api/events Go package, mapped to its API group",
    ("apiserver_endpoints.py", "endpoints"): "the EndpointSlice field `endpoints` of the API server's own slice",
}
# a discovery verb's HTTP method in the OpenAPI documents
METHODS = {"get": "get", "update": "put", "patch": "patch", "create": "post"}


def response_kind(rt: ResourceType, sub: Subresource) -> tuple[str, str, str]:
    return sub.response_kind or (rt.group, rt.version, rt.kind)


def collection_path(rt: ResourceType) -> str:
    """The path listing every object of the kind (across namespaces)."""
    return f"/{rt.group_version}/{rt.plural}"


def test_the_registry_serves_every_kind_once_with_its_own_strategy() -> None:
    assert len({(rt.group, rt.version, rt.plural) for rt in KINDS}) == len(KINDS)
    for rt in KINDS:
        strategy = rt.strategy
        assert type(strategy).__module__.startswith("shim.apiserver.kinds."), rt.qualified
        assert (rt.short_names, rt.categories, rt.subresources) == (
            strategy.short_names,
            strategy.categories,
            strategy.subresources,
        )
        assert len({sub.name for sub in strategy.subresources}) == len(strategy.subresources), rt.qualified


async def test_legacy_discovery_lists_each_kind_as_its_strategy_declares(api: RawApi) -> None:
    for rt in KINDS:
        listed = {entry["name"]: entry for entry in (await api.ok("GET", "/" + rt.group_version))["resources"]}
        entry = listed[rt.plural]
        assert entry["kind"] == rt.kind and entry["namespaced"] == rt.namespaced, rt.qualified
        assert entry["verbs"] == list(rt.verbs), rt.qualified
        assert entry.get("shortNames", []) == list(rt.strategy.short_names), rt.qualified
        assert entry.get("categories", []) == list(rt.strategy.categories), rt.qualified
        subresources = {name for name in listed if name.startswith(rt.plural + "/")}
        assert subresources == {f"{rt.plural}/{sub.name}" for sub in rt.strategy.subresources}, rt.qualified
        for sub in rt.strategy.subresources:
            served = listed[f"{rt.plural}/{sub.name}"]
            group, version, kind = response_kind(rt, sub)
            assert served["verbs"] == list(sub.verbs) and served["kind"] == kind, (rt.qualified, sub.name)
            assert (served.get("group", rt.group), served.get("version", rt.version)) == (group, version)


async def test_aggregated_discovery_lists_each_kind_as_its_strategy_declares(api: RawApi) -> None:
    documents = [await api.ok("GET", path, headers={"Accept": AGGREGATED}) for path in ("/api", "/apis")]
    served = {
        (item["metadata"].get("name", ""), version["version"], resource["resource"]): resource
        for document in documents
        for item in document["items"]
        for version in item["versions"]
        for resource in version["resources"]
    }
    assert set(served) == {(rt.group, rt.version, rt.plural) for rt in KINDS}
    for rt in KINDS:
        entry = served[(rt.group, rt.version, rt.plural)]
        assert entry["responseKind"] == {"group": rt.group, "version": rt.version, "kind": rt.kind}, rt.qualified
        assert entry["verbs"] == list(rt.verbs), rt.qualified
        assert entry.get("shortNames", []) == list(rt.strategy.short_names), rt.qualified
        assert entry.get("categories", []) == list(rt.strategy.categories), rt.qualified
        expected = [
            {
                "subresource": sub.name,
                "verbs": list(sub.verbs),
                "responseKind": dict(zip(("group", "version", "kind"), response_kind(rt, sub), strict=True)),
            }
            for sub in rt.strategy.subresources
        ]
        assert entry.get("subresources", []) == expected, rt.qualified


async def test_the_openapi_documents_describe_each_kind_and_exactly_its_subresources(api: RawApi) -> None:
    index = (await api.ok("GET", "/openapi/v3"))["paths"]
    documents: dict[str, Any] = {}
    for rt in KINDS:
        if rt.group_version not in documents:
            documents[rt.group_version] = await api.ok("GET", index[rt.group_version]["serverRelativeURL"])
        document = documents[rt.group_version]
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        schemas = document["components"]["schemas"].values()
        assert any(gvk in schema.get("x-kubernetes-group-version-kind", []) for schema in schemas), rt.qualified
        scope = f"/{rt.group_version}/namespaces/{{namespace}}" if rt.namespaced else f"/{rt.group_version}"
        collection, item = f"{scope}/{rt.plural}", f"{scope}/{rt.plural}/{{name}}"
        assert ("delete" in document["paths"][collection]) == ("deletecollection" in rt.verbs), rt.qualified
        assert {"get", "put", "patch", "delete"} <= set(document["paths"][item]), rt.qualified
        subresources = {path for path in document["paths"] if path.startswith(item + "/")}
        assert subresources == {f"{item}/{sub.name}" for sub in rt.strategy.subresources}, rt.qualified
        for sub in rt.strategy.subresources:
            methods = set(document["paths"][f"{item}/{sub.name}"]) - {"parameters"}
            assert methods == {METHODS[verb] for verb in sub.verbs}, (rt.qualified, sub.name)


async def test_tables_print_each_kinds_strategy_columns(api: RawApi) -> None:
    for rt in KINDS:
        table = await api.ok("GET", collection_path(rt), headers={"Accept": TABLE})
        assert table["columnDefinitions"] == rt.strategy.table_columns, rt.qualified
        for row in table["rows"]:
            assert len(row["cells"]) == len(rt.strategy.table_columns), rt.qualified


async def test_field_selectors_accept_each_kinds_strategy_fields_and_refuse_others(api: RawApi) -> None:
    for rt in KINDS:
        fields = rt.strategy.selectable_fields
        for label in sorted(fields.supported()):
            reply = await api.call("GET", collection_path(rt), params={"fieldSelector": f"{label}=none"})
            assert reply.status == 200, (rt.qualified, label, reply.body)
        reply = await api.call("GET", collection_path(rt), params={"fieldSelector": "no.such.field=x"})
        assert reply.status == 400, (rt.qualified, reply.body)
        assert reply.json()["message"] == fields.unsupported("no.such.field"), rt.qualified


def served_plurals_named_in(path: Path) -> list[tuple[int, str]]:
    plurals = {rt.plural for rt in KINDS}
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and node.value in plurals and (path.name, node.value) not in NOT_RESOURCES
    ]


def test_no_generic_api_server_module_names_a_served_plural() -> None:
    generic = sorted(p for p in APISERVER.glob("*.py") if p.name != "resources.py")
    assert len(generic) > 20  # the glob found the modules
    named = {p.name: found for p in generic if (found := served_plurals_named_in(p))}
    assert named == {}, f"per-kind code outside the kind's strategy: {named}"


def test_the_static_check_sees_a_plural_and_knows_each_exception(tmp_path: Path) -> None:
    module = tmp_path / "handlers.py"
    module.write_text('if rt.plural == "pods":\n    pass\nLABEL = "pods-are-fine-inside-words"\n')
    assert served_plurals_named_in(module) == [(1, "pods")]
    for (name, literal), why in NOT_RESOURCES.items():
        assert literal in (APISERVER / name).read_text(), why
