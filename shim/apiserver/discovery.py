"""Discovery documents: legacy (`APIVersions`, `APIGroupList`, `APIResourceList`) and aggregated v2/v2beta1.

kubectl only trusts an aggregated answer whose Content-Type carries `g`, `v` and `as`, and 1.27 only
understands v2beta1 (kubectl-wire.md G5), so the version is negotiated from the Accept header.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from aiohttp import web

from shim.apiserver import codec
from shim.apiserver.registry import Registry, ResourceType

_AGGREGATED = "application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"


class Discovery:
    """Serves the discovery endpoints from the registry (documents built once)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.groups = registry.group_versions()

    def negotiated_version(self, request: web.Request) -> str | None:
        accept = request.headers.get("Accept", "")
        for version in ("v2", "v2beta1"):
            if f"v={version};" in accept.replace(" ", "") + ";" and "as=APIGroupDiscoveryList" in accept:
                return version
        return None

    async def core(self, request: web.Request) -> web.Response:
        version = self.negotiated_version(request)
        if version:
            return self._aggregated(version, [""])
        return codec.json_response(
            {
                "kind": "APIVersions",
                "versions": self.groups[""],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}],
            }
        )

    async def groups_list(self, request: web.Request) -> web.Response:
        version = self.negotiated_version(request)
        named = [g for g in self.groups if g]
        if version:
            return self._aggregated(version, named)
        return codec.json_response(
            {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group(g) for g in named]}
        )

    async def group(self, request: web.Request) -> web.Response:
        group = request.match_info["group"]
        if group not in self.groups or not group:
            return _not_found()
        return codec.json_response({"kind": "APIGroup", "apiVersion": "v1", **self._group(group)})

    async def resources(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        rows = [r for r in self.registry.resources if r.group == group and r.version == version]
        if not rows:
            return _not_found()
        resources: list[dict[str, Any]] = []
        for r in rows:
            resources.append(_legacy_resource(r, self._storage_version_hash(r)))
            for sub in r.subresources:
                g, v, kind = sub.response_kind or (r.group, r.version, r.kind)
                entry = {
                    "name": f"{r.plural}/{sub.name}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": kind,
                    "verbs": list(sub.verbs),
                }
                if (g, v) != (r.group, r.version):
                    entry["group"], entry["version"] = g, v
                resources.append(entry)
        gv = f"{group}/{version}" if group else version
        return codec.json_response(
            {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
        )

    def _storage_version_hash(self, r: ResourceType) -> str:
        """The hash of the kind objects of `r` are stored as (a resource sharing another's storage, such as
        events.k8s.io Events, hashes that resource's kind: kube's storage version)."""
        stored = r
        if r.stored_as is not None:
            group, plural = r.stored_as
            stored = next(s for s in self.registry.resources if (s.group, s.plural) == (group, plural))
        return storage_version_hash(stored.group, stored.version, stored.kind)

    def _group(self, group: str) -> dict[str, Any]:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.groups[group]]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _aggregated(self, version: str, groups: list[str]) -> web.Response:
        items = []
        for group in groups:
            versions = []
            for v in self.groups[group]:
                rows = [r for r in self.registry.resources if r.group == group and r.version == v]
                versions.append(
                    {
                        "version": v,
                        "resources": [_aggregated_resource(r) for r in rows],
                        "freshness": "Current",
                    }
                )
            items.append({"metadata": {"name": group} if group else {}, "versions": versions})
        body = {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {},
            "items": items,
        }
        response = codec.json_response(body)
        response.headers["Content-Type"] = _AGGREGATED.format(v=version)
        response.headers["Vary"] = "Accept"
        return response


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """kube's discovery.StorageVersionHash: base64 of the first 8 bytes of sha256("<group>/<version>/<kind>")."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _legacy_resource(r: ResourceType, storage_hash: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    entry["storageVersionHash"] = storage_hash  # last, as in Go's APIResource
    return entry


def _aggregated_resource(r: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    subs = []
    for sub in r.subresources:
        g, v, kind = sub.response_kind or (r.group, r.version, r.kind)
        subs.append(
            {
                "subresource": sub.name,
                "verbs": list(sub.verbs),
                "responseKind": {"group": g, "version": v, "kind": kind},
            }
        )
    if subs:
        entry["subresources"] = subs
    return entry


def _not_found() -> web.Response:
    from shim.apiserver.errors import status_response

    return status_response(404, "NotFound", "the server could not find the requested resource", {})
