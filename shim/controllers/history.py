"""Controller history: the ControllerRevisions a DaemonSet or a StatefulSet keeps of its pod templates.

Follows `pkg/controller/history/controller_history.go` and the DaemonSet controller's `update.go`: a revision's
`data` is the patch that puts its template back (`{"spec": {"template": {..., "$patch": "replace"}}}`, which
`kubectl rollout undo` applies as a strategic merge patch), its name is `<owner>-<hash of the template>`, its
labels the template's plus `controller-revision-hash`, and its `revision` one more than the newest. Old
revisions beyond `revisionHistoryLimit` go, oldest first, unless a live pod still has their hash.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import orjson

from shim.client import ApiClient, ApiException, Resource, SharedInformer
from shim.controllers.apierrors import missing_ok
from shim.controllers.deploymentutil import compute_hash, equal_ignore_hash
from shim.controllers.ownership import controller_ref
from shim.machinery.resources import CONTROLLER_REVISIONS

Obj = dict[str, Any]

REVISION_HASH_LABEL = "controller-revision-hash"  # kube's ControllerRevisionHashLabelKey


class RevisionCollision(Exception):
    """A revision of another template already has this name: the owner's collisionCount must go up."""


def revision_data(template: Obj) -> Obj:
    """The patch that restores `template` (kube's getPatch): what a revision stores and rollback applies.

    Keys are sorted as Go marshals maps: `kubectl rollout undo` compares these bytes with the patch it makes of
    the current object to tell that the template already matches."""
    return orjson.loads(
        orjson.dumps({"spec": {"template": {**template, "$patch": "replace"}}}, option=orjson.OPT_SORT_KEYS)
    )


def revision_matches(revision: Obj, template: Obj) -> bool:
    """The revision records this template (kube compares the patch bytes; here the values, nulls aside)."""
    restored = ((revision.get("data") or {}).get("spec") or {}).get("template")
    if not isinstance(restored, dict):
        return False
    restored = {key: value for key, value in restored.items() if key != "$patch"}
    return equal_ignore_hash(restored, template)


def revision_number(revision: Obj) -> int:
    """The revision's `revision` (0 when absent)."""
    value = revision.get("revision", 0)
    return value if isinstance(value, int) else 0


def next_revision(revisions: Iterable[Obj]) -> int:
    """One more than the newest revision (1 for the first)."""
    return max((revision_number(r) for r in revisions), default=0) + 1


def new_revision(owner: Obj, kind: str, template: Obj, hash_: str, number: int) -> Obj:
    """A ControllerRevision of `owner` (a `kind` of apps/v1) recording `template` (kube's snapshot)."""
    meta = owner["metadata"]
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[REVISION_HASH_LABEL] = hash_
    revision_meta: Obj = {
        "name": f"{meta['name']}-{hash_}",
        "namespace": meta["namespace"],
        "labels": labels,
        "ownerReferences": [controller_ref(owner, "apps/v1", kind)],
    }
    if meta.get("annotations"):
        revision_meta["annotations"] = dict(meta["annotations"])
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": revision_meta,
        "data": revision_data(template),
        "revision": number,
    }


async def create_revision(client: ApiClient, revision: Obj, template: Obj) -> Obj:
    """Create `revision`; if its name is taken by a revision of the same template, that one is returned, if by
    another template, RevisionCollision is raised."""
    namespace, name = revision["metadata"]["namespace"], revision["metadata"]["name"]
    try:
        return await client.create(CONTROLLER_REVISIONS, revision, namespace)
    except ApiException as exc:
        if exc.status != 409:
            raise
    existing = await client.get(CONTROLLER_REVISIONS, name, namespace)
    if revision_matches(existing, template):
        return existing
    raise RevisionCollision(f"controller revision {namespace}/{name} records another template")


async def renumber(client: ApiClient, revision: Obj, number: int) -> Obj:
    """Make an existing revision the newest again (a rollback to it)."""
    body = copy.deepcopy(revision)
    body["revision"] = number
    meta = body["metadata"]
    return await client.replace(CONTROLLER_REVISIONS, body, meta["namespace"])


async def truncate(client: ApiClient, old: list[Obj], limit: int, live_hashes: set[str]) -> None:
    """Delete the oldest of `old` revisions beyond `limit`, skipping those a live pod still runs."""
    excess = len(old) - limit
    for revision in sorted(old, key=revision_number):
        if excess <= 0:
            return
        if (revision["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL) in live_hashes:
            continue
        meta = revision["metadata"]
        with missing_ok():
            await client.delete(CONTROLLER_REVISIONS, meta["name"], meta["namespace"])
        excess -= 1


async def construct_history(
    client: ApiClient, owner: Obj, resource: Resource, kind: str, revisions: list[Obj], cache: SharedInformer
) -> tuple[Obj, list[Obj]]:
    """kube's constructHistory for `owner` (a `kind` served as `resource`) and the `revisions` it controls:
    (the revision of its current template, the older ones), creating it or renumbering it (a rollback) as
    needed; duplicates of the current one go (dedupCurHistories). What it writes is observed into `cache`.
    On a name collision the owner's `status.collisionCount` goes up and RevisionCollision is raised."""
    template = owner["spec"].get("template") or {}
    current = [r for r in revisions if revision_matches(r, template)]
    old = [r for r in revisions if not revision_matches(r, template)]
    number = next_revision(old)
    if not current:
        hash_ = compute_hash(template, (owner.get("status") or {}).get("collisionCount"))
        try:
            created = await create_revision(client, new_revision(owner, kind, template, hash_, number), template)
        except RevisionCollision:
            await _bump_collision_count(client, owner, resource)
            raise
        cache.observe(created)
        return created, old
    current.sort(key=revision_number)
    keep = current[-1]
    for duplicate in current[:-1]:
        with missing_ok():
            meta = duplicate["metadata"]
            await client.delete(CONTROLLER_REVISIONS, meta["name"], meta["namespace"])
    if revision_number(keep) < number:  # a rollback: the old template is the newest revision again
        keep = await renumber(client, keep, number)
        cache.observe(keep)
    return keep, old


async def _bump_collision_count(client: ApiClient, owner: Obj, resource: Resource) -> None:
    meta = owner["metadata"]
    fresh = await client.get(resource, meta["name"], meta["namespace"])
    status = fresh.setdefault("status", {})
    if status.get("collisionCount") != (owner.get("status") or {}).get("collisionCount"):
        return  # the cache was behind: the retry hashes with the newer count
    status["collisionCount"] = status.get("collisionCount", 0) + 1
    await client.replace(resource, fresh, meta["namespace"], "status")
