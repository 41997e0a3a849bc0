"""Which resources the server serves, from its legacy discovery documents."""

from __future__ import annotations

from shim.client.api import ApiClient, Resource


async def served_resources(client: ApiClient) -> list[tuple[Resource, list[str]]]:
    """Every top-level resource (no subresources) with its verbs, core group first."""
    paths = ["/api/v1"]
    groups = await client.request("GET", "/apis")
    for group in groups.get("groups", []):
        paths.append(f"/apis/{group['preferredVersion']['groupVersion']}")
    out = []
    for path in paths:
        listing = await client.request("GET", path)
        group, _, version = listing["groupVersion"].rpartition("/")
        for r in listing.get("resources", []):
            if "/" not in r["name"]:
                out.append((Resource(group, version, r["name"], r["namespaced"]), list(r.get("verbs", []))))
    return out
