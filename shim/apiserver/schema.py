"""A walkable index over the served OpenAPI v3 component schemas, `$ref`s resolved.

Shared by strategic merge patch, server-side apply and validation:

    node = schema_for("apps", "v1", "Deployment")
    containers = node.field("spec").field("template").field("spec").field("containers")
    containers.patch_strategy, containers.patch_merge_key   # "merge", "name"
    containers.items.field("image").type                    # "string"

A property written as `{"allOf": [{"$ref": ...}], "description": ..., "x-kubernetes-patch-strategy": ...}`
(or with the `$ref` beside the annotations) becomes one node: structure from the referenced schema,
annotations from the property (they win).
Nodes are created lazily and cached, so repeated walks cost dictionary lookups.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from shim.apiserver.openapi import component_schemas

REF_PREFIX = "#/components/schemas/"


class SchemaNode:
    """One schema of the tree: its type, children and Kubernetes list/map/patch annotations."""

    def __init__(self, raw: Mapping[str, Any], name: str | None = None, overlay: Mapping[str, Any] | None = None):
        annotated = {**raw, **overlay} if overlay else raw
        self._raw = raw
        self.name = name  # the component name when this node is (a reference to) a named schema
        self.type: str | None = raw.get("type")
        self.format: str | None = raw.get("format")
        self.description: str | None = annotated.get("description")
        self.required: frozenset[str] = frozenset(raw.get("required", ()))
        self.patch_merge_key: str | None = annotated.get("x-kubernetes-patch-merge-key")
        self.patch_strategy: str | None = annotated.get("x-kubernetes-patch-strategy")
        self.list_type: str | None = annotated.get("x-kubernetes-list-type")
        self.list_map_keys: tuple[str, ...] = tuple(annotated.get("x-kubernetes-list-map-keys", ()))
        self.map_type: str | None = annotated.get("x-kubernetes-map-type")

    def __repr__(self) -> str:
        return f"SchemaNode({self.name or self.type})"

    @functools.cached_property
    def properties(self) -> Mapping[str, SchemaNode]:
        """The named fields of an object schema (empty for maps, lists and scalars)."""
        return {key: _node(value) for key, value in self._raw.get("properties", {}).items()}

    @functools.cached_property
    def items(self) -> SchemaNode | None:
        """The element schema of a list, or None."""
        return _node(self._raw["items"]) if "items" in self._raw else None

    @functools.cached_property
    def additional_properties(self) -> SchemaNode | None:
        """The value schema of a map (`additionalProperties`), or None."""
        value = self._raw.get("additionalProperties")
        return _node(value) if isinstance(value, Mapping) else None

    @functools.cached_property
    def free_form(self) -> bool:
        """True for an object that accepts any content (RawExtension, FieldsV1): no fields, no map type."""
        return self.type == "object" and not self.properties and self.additional_properties is None

    @functools.cached_property
    def patch_strategies(self) -> tuple[str, ...]:
        """`x-kubernetes-patch-strategy` split on commas (`merge,retainKeys` -> both)."""
        return tuple(self.patch_strategy.split(",")) if self.patch_strategy else ()

    def field(self, key: str) -> SchemaNode | None:
        """The schema of `key` inside this object: its property, else the map value schema, else None."""
        found = self.properties.get(key)
        return found if found is not None else self.additional_properties


def schema_for(group: str, version: str, kind: str) -> SchemaNode | None:
    """The schema of a served kind (`"", "v1", "Pod"`), or None when the documents have none."""
    name = _names_by_gvk().get((group, version, kind))
    return None if name is None else _named(name)


def schema_named(name: str) -> SchemaNode | None:
    """The component schema called `name` (`io.k8s.api.core.v1.PodSpec`), or None."""
    return _named(name) if name in component_schemas() else None


@functools.cache
def _names_by_gvk() -> dict[tuple[str, str, str], str]:
    found: dict[tuple[str, str, str], str] = {}
    for name, schema in component_schemas().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            found.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return found


@functools.cache
def _named(name: str) -> SchemaNode:
    return SchemaNode(component_schemas()[name], name)


def _node(raw: Mapping[str, Any]) -> SchemaNode:
    ref = raw.get("$ref")
    wrapped = raw.get("allOf")
    if ref is None and wrapped and len(wrapped) == 1:
        ref = wrapped[0].get("$ref")
    if ref is None:
        return SchemaNode(raw)
    name = ref.removeprefix(REF_PREFIX)
    overlay = {k: v for k, v in raw.items() if k not in ("$ref", "allOf")}
    # annotations beside the reference belong to this use of the schema, not to the schema itself
    return SchemaNode(component_schemas()[name], name, overlay) if overlay else _named(name)
