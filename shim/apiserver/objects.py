"""Object semantics over the store, written once for every kind (kube's `registry/generic/registry/store.go`).

uid, timestamps, resourceVersion, generation, generateName, compare-and-swap updates with retry,
status/spec split, finalizers, graceful deletion. HTTP lives in `handlers.py`; this module only knows dicts.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shim.apiserver import errors
from shim.apiserver.errors import ApiError
from shim.apiserver.fieldmanager import update_managed_fields
from shim.apiserver.kinds.meta import validate_object_meta, validate_object_meta_update
from shim.apiserver.registry import Registry, ResourceType
from shim.apiserver.schema import schema_for
from shim.machinery.timefmt import format_time, now_rfc3339
from shim.store import (
    CompactedError,
    ConflictError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    Store,
)

Obj = dict[str, Any]
Mutation = Callable[[Obj], Awaitable[Obj] | Obj]

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kube's: no vowels, no look-alikes
_MAX_UPDATE_RETRIES = 20


def decode(kv: KeyValue) -> Obj:
    """A stored object with its resourceVersion (the store revision that last wrote it)."""
    obj = orjson.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode(obj: Obj) -> bytes:
    """Stored form: apiVersion, kind and metadata first (so `raw_with_version` can splice), and no
    resourceVersion (the store revision is the source of truth)."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    ordered = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": meta}
    ordered.update((k, v) for k, v in obj.items() if k not in ordered)
    # orjson returns its whole output buffer (at least 4 KiB, grown by doubling) and the store keeps the
    # value for as long as it is current or in the watch window: a copy of the exact length is 8x smaller
    return bytes(memoryview(orjson.dumps(ordered)))


def decode_as(rt: ResourceType, kv: KeyValue) -> Obj:
    """A stored object as `rt` serves it (converted when `rt` shares another resource's storage)."""
    obj = decode(kv)
    return rt.conversion.from_storage(obj) if rt.conversion is not None else obj


def encode_as(rt: ResourceType, obj: Obj) -> bytes:
    """The stored form of an object of `rt`."""
    return encode(rt.conversion.to_storage(obj) if rt.conversion is not None else obj)


def raw_with_version(kv: KeyValue) -> bytes:
    """The stored JSON with its resourceVersion spliced in, without decoding it (the fast list path)."""
    value = kv.value
    at = value.find(b'"metadata":{') + len(b'"metadata":{')
    # encode() puts metadata third and never empty; anything else is decoded the slow way
    if at < len(b'"metadata":{') or at > 200 or value[at : at + 1] == b"}":
        return orjson.dumps(decode(kv))
    return b'%s"resourceVersion":"%d",%s' % (value[:at], kv.mod_revision, value[at:])


@dataclass
class ListPage:
    items: list[Obj]
    resource_version: int
    continue_token: str | None
    #: objects after this page (kube's remainingItemCount: only for an unfiltered page with a continuation)
    remaining: int | None = None


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False


class ObjectStore:
    """Create, read, update and delete Kubernetes objects of any registered kind."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._write_locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _write_lock(self, rt: ResourceType) -> contextlib.AbstractAsyncContextManager[Any]:
        """The lock that serialises writes of a kind whose strategy asks for it, else a no-op."""
        if not rt.strategy.serialize_writes:
            return contextlib.nullcontext()
        return self._write_locks.setdefault((rt.group, rt.plural), asyncio.Lock())

    async def list_all(self, group: str, version: str, plural: str) -> list[Obj]:
        """Every stored object of a resource (for admission)."""
        return (await self.list(self._resource(group, version, plural), None)).items

    async def get_object(self, group: str, version: str, plural: str, namespace: str | None, name: str) -> Obj:
        """One stored object of a resource named by its URL parts (for admission); 404 when there is none."""
        return await self.get(self._resource(group, version, plural), namespace, name)

    def _resource(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.lookup(group, version, plural)
        if rt is None:
            raise errors.not_found(group, plural, "")
        return rt

    # -- reads -----------------------------------------------------------------------------------------------

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        kv = await self.store.get(rt.key(namespace, name))
        if kv is None:
            raise errors.not_found(rt.group, rt.plural, name)
        return decode_as(rt, kv)

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        accept: Callable[[Obj], bool] | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        revision: int | None = None,
        raw: bool = False,
    ) -> ListPage:
        """A page of matching objects, consistent at one revision; `accept` filters (selectors).

        With `raw` (and no filter) the items are stored JSON bytes, never decoded: listing is then a byte
        copy. Only for resources served in their stored form (no conversion)."""
        prefix = rt.key_prefix(namespace if rt.namespaced else None)
        start = None
        if continue_token:
            revision, resume_after = _decode_continue(continue_token)
            start = prefix + resume_after + "\x00"  # the token names the last key returned
        items: list[Any] = []
        # with a filter, read ahead in bigger pages: most stored objects may not match
        batch = (limit if accept is None else max(limit, 256)) if limit else None
        while True:
            try:
                page = await self.store.list(prefix, revision=revision, limit=batch, continue_from=start)
            except CompactedError as exc:
                if continue_token:
                    # kube's handleCompactedErrorForPaging: a token for the rest of the list at the latest revision
                    fresh = _encode_continue(_LATEST, resume_after)
                    raise errors.expired(_CONTINUE_EXPIRED, list_meta={"continue": fresh}) from exc
                raise errors.expired("The resourceVersion for the provided list is too old.") from exc
            except FutureRevisionError as exc:
                raise errors.too_large_resource_version(exc.requested, exc.current) from exc
            revision = page.revision
            for i, kv in enumerate(page.items):
                if raw and accept is None:
                    items.append(raw_with_version(kv))
                else:
                    obj = decode_as(rt, kv)
                    if accept is not None and not accept(obj):
                        continue
                    items.append(obj)
                if limit and len(items) == limit:
                    if page.more or i < len(page.items) - 1:
                        last = kv.key[len(prefix) :]
                        token = _encode_continue(revision, last)
                        if accept is not None:  # kube counts keys, not matches: no count for a filtered list
                            return ListPage(items, revision, token)
                        return ListPage(items, revision, token, await self._count_after(kv.key, prefix, revision))
                    return ListPage(items, revision, None)
            if not page.more:
                return ListPage(items, revision, None)
            start = page.items[-1].key + "\x00"

    async def _count_after(self, key: str, prefix: str, revision: int) -> int | None:
        """How many keys under `prefix` follow `key` at `revision` (read in bounded pages); None when
        `revision` was compacted meanwhile (the count is optional, the page is not)."""
        count, start = 0, key + "\x00"
        while True:
            try:
                page = await self.store.list(prefix, revision=revision, limit=_COUNT_BATCH, continue_from=start)
            except CompactedError:
                return None
            count += len(page.items)
            if not page.more or not page.items:
                return count
            start = page.items[-1].key + "\x00"

    async def wait_for_revision(self, revision: int) -> None:
        """Return once the store has reached `revision`; after kube's watch-cache wait (3 s), 504
        `Too large resource version` (a NotOlderThan read may not serve older data)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _FRESHNESS_WAIT
        while (current := await self.store.current_revision()) < revision:
            if loop.time() >= deadline:
                raise errors.too_large_resource_version(revision, current)
            await asyncio.sleep(_FRESHNESS_POLL)

    # -- create ------------------------------------------------------------------------------------------------

    async def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        obj: Obj,
        dry_run: bool = False,
        manager: str | None = None,
    ) -> Obj:
        """Stamp and store a new object: the strategy's create admission runs after defaulting and before
        validation; `manager` owns the fields set (None: the caller maintains managedFields, as apply does)."""
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            # kube's storage refuses it (as a 500 with no reason, an accident of its error mapping; 400 here)
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        for transient in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(transient, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.strategy.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        rt.strategy.default(obj)
        if manager is not None:
            update_managed_fields(
                None,
                obj,
                manager,
                schema=schema_for(rt.group, rt.version, rt.kind),
                now=meta["creationTimestamp"],
                api_version=rt.api_version,
            )
        await rt.strategy.admit_create(obj, self)
        # named after admission, as kube's BeforeCreate does (admission errors show the generateName)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
        rt.strategy.prepare_for_create(obj)
        key = rt.key(namespace, meta.get("name") or "")  # a missing name fails validation below
        async with self._write_lock(rt):
            await rt.strategy.admit(obj, None, self)
            causes = validate_object_meta(obj, rt.namespaced, rt.strategy.name_rule)
            self.validate(rt, obj, causes + rt.strategy.validate(obj))
            if dry_run:
                if await self.store.get(key) is not None:  # a dry run answers what the real create would
                    raise errors.already_exists(rt.group, rt.plural, meta["name"])
                return obj
            try:
                kv = await self.store.create(key, encode_as(rt, obj))
            except KeyExistsError:
                raise errors.already_exists(rt.group, rt.plural, meta["name"]) from None
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    def validate(self, rt: ResourceType, obj: Obj, causes: builtins.list[dict[str, str]]) -> None:
        """Raise 422 Invalid when there are causes, worded like kube."""
        if causes:
            name = obj.get("metadata", {}).get("name") or ""
            # kube names the stored (internal) type: events.k8s.io Events are core Events inside
            raise errors.invalid(rt.stored_group, rt.kind, name, causes)

    # -- update ------------------------------------------------------------------------------------------------

    async def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        mutate: Mutation,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str | None = None,
    ) -> Obj:
        """Read, mutate, validate and compare-and-swap the object, retrying when someone else wrote first.

        `mutate(old)` returns the desired object (it may raise ApiError, e.g. for a stale resourceVersion).
        An update that changes nothing writes nothing and keeps the resourceVersion, as kube does.
        """
        key = rt.key(namespace, name)
        async with self._write_lock(rt):
            kv = await self.store.get(key)
            for _ in range(_MAX_UPDATE_RETRIES):
                if kv is None:
                    raise errors.not_found(rt.group, rt.plural, name)
                old = decode_as(rt, kv)
                new = mutate(orjson.loads(orjson.dumps(old)))
                if not isinstance(new, dict):
                    new = await new
                await self._prepare_update(rt, new, old, subresource)
                if manager is not None:
                    update_managed_fields(
                        old,
                        new,
                        manager,
                        "Update",
                        subresource,
                        schema=schema_for(rt.group, rt.version, rt.kind),
                        now=now_rfc3339(),
                        api_version=rt.api_version,
                    )
                if _same_content(new, old):
                    return old
                if dry_run:
                    return new
                meta = new["metadata"]
                # kube's ShouldDeleteDuringUpdate: the last finalizer gone and no grace period still running
                # (a terminating pod stays until its node's final DELETE, whatever its status says)
                if (
                    meta.get("deletionTimestamp")
                    and not meta.get("finalizers")
                    and not rt.strategy.deletion_blocked(new)
                    and not old["metadata"].get("deletionGracePeriodSeconds")
                ):
                    try:
                        await self.store.delete(key, kv.mod_revision)
                    except ConflictError as exc:
                        kv = exc.actual  # retry on top of the version that won (it may still be committing)
                        continue
                    return new
                try:
                    written = await self.store.update(key, encode_as(rt, new), kv.mod_revision)
                except ConflictError as exc:
                    kv = exc.actual
                    continue
                except KeyNotFoundError:
                    raise errors.not_found(rt.group, rt.plural, name) from None
                meta["resourceVersion"] = str(written.mod_revision)
                return new
        raise errors.conflict(rt.group, rt.plural, name, "too many concurrent updates; please try again")

    async def _prepare_update(self, rt: ResourceType, new: Obj, old: Obj, subresource: str | None) -> None:
        if not isinstance(new.get("metadata"), dict):
            raise errors.bad_request("metadata must be an object")
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        meta, old_meta = new["metadata"], old["metadata"]
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
            # kube's storage checks the body's uid as a precondition; its StorageError shows through the 409
            key = rt.kube_etcd_key(old_meta.get("namespace"), old_meta.get("name", ""))
            why = (
                f"StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: "
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old_meta.get('uid')}"
            )
            raise errors.conflict(rt.group, rt.plural, old_meta.get("name", ""), why)
        for fixed in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        strategy = rt.strategy
        if subresource == "binding":
            return  # the scheduler's assignment: no spec rules apply (kube's binding REST)
        if subresource == "status":
            strategy.prepare_for_status_update(new, old)
        elif subresource == "finalize":
            strategy.prepare_for_finalize(new, old)
        elif subresource == "ephemeralcontainers":
            strategy.prepare_for_ephemeral_containers_update(new, old)
        else:
            if strategy.has_status_subresource:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            strategy.prepare_for_update(new, old)
            strategy.default(new)
            await strategy.admit(new, old, self)
        if strategy.tracks_generation and _spec_changed(new, old):
            meta["generation"] = old_meta.get("generation", 0) + 1
        if subresource == "ephemeralcontainers":
            causes = strategy.validate_ephemeral_containers_update(new, old)
        else:
            causes = strategy.validate_update(new, old)
        self.validate(rt, new, validate_object_meta_update(new, old) + causes)

    # -- delete ------------------------------------------------------------------------------------------------

    async def delete(
        self, rt: ResourceType, namespace: str | None, name: str, options: DeleteOptions
    ) -> tuple[Obj, bool]:
        """Delete now, or mark for deletion (finalizers, graceful pods). Returns (object, deleted now)."""
        key = rt.key(namespace, name)
        kv = await self.store.get(key)
        for _ in range(_MAX_UPDATE_RETRIES):
            if kv is None:
                raise errors.not_found(rt.group, rt.plural, name)
            obj = decode_as(rt, kv)
            meta = obj["metadata"]
            check_preconditions(rt, obj, options)
            rt.strategy.admit_delete(obj)
            finalizers = list(meta.get("finalizers") or [])
            policy = options.propagation_policy
            if policy is None and "foregroundDeletion" not in finalizers:
                policy = rt.strategy.default_propagation_policy
            for wanted, finalizer in (("Orphan", "orphan"), ("Foreground", "foregroundDeletion")):
                if policy == wanted and finalizer not in finalizers:
                    finalizers.append(finalizer)
            grace = rt.strategy.graceful_deletion(obj, options.grace_period_seconds)
            if finalizers or grace > 0 or rt.strategy.deletion_blocked(obj):
                before = encode_as(rt, obj)
                rt.strategy.prepare_for_deletion(obj)
                _mark_for_deletion(obj, finalizers, grace)
                if encode_as(rt, obj) == before:
                    return obj, False
                if options.dry_run:
                    return obj, False
                try:
                    written = await self.store.update(key, encode_as(rt, obj), kv.mod_revision)
                except ConflictError as exc:
                    kv = exc.actual  # retry on top of the version that won (it may still be committing)
                    continue
                meta["resourceVersion"] = str(written.mod_revision)
                return obj, False
            if options.dry_run:
                return obj, True
            try:
                gone = await self.store.delete(key, kv.mod_revision)
            except ConflictError as exc:
                kv = exc.actual
                continue
            except KeyNotFoundError:
                raise errors.not_found(rt.group, rt.plural, name) from None
            meta["resourceVersion"] = str(gone.mod_revision)
            return obj, True
        raise errors.conflict(rt.group, rt.plural, name, "too many concurrent updates; please try again")


# kube's inconsistentContinue (apiserver/pkg/storage/etcd3/errors.go, as expiredList above), sent with a fresh token
_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)
_LATEST = -1  # a continue token's revision meaning "the latest" (kube's, for the token of an expired one)
_COUNT_BATCH = 1000
_FRESHNESS_WAIT = 3.0  # kube's blockTimeout in watchCache.waitUntilFreshAndBlock
_FRESHNESS_POLL = 0.05


def _encode_continue(revision: int, start: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int | None, str]:
    """(revision or None for the latest, the name the previous page ended with)."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        revision, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
    if data.get("v") != "meta.k8s.io/v1" or revision == 0 or revision < _LATEST:
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion")
    return (None if revision == _LATEST else revision), start


def _same_content(new: Obj, old: Obj) -> bool:
    return orjson.dumps(new, option=orjson.OPT_SORT_KEYS) == orjson.dumps(old, option=orjson.OPT_SORT_KEYS)


def _spec_changed(new: Obj, old: Obj) -> bool:
    keys = (set(new) | set(old)) - {"metadata", "status", "apiVersion", "kind"}
    return any(new.get(k) != old.get(k) for k in keys)


def check_preconditions(rt: ResourceType, obj: Obj, options: DeleteOptions) -> None:
    """rest.BeforeDelete's early check (and the eviction's before it marks the pod), worded as kube's: it names
    the stored type's kind, not the resource."""
    meta = obj["metadata"]
    uid = options.precondition_uid
    if uid and uid != meta.get("uid"):
        why = (
            f"the UID in the precondition ({uid}) does not match the UID in record ({meta.get('uid')}). "
            "The object might have been deleted and then recreated"
        )
        raise errors.conflict(rt.stored_group, rt.kind, meta["name"], why)
    rv = options.precondition_resource_version
    if rv and rv != meta.get("resourceVersion"):
        why = (
            f"the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record "
            f"({meta.get('resourceVersion')}). The object might have been modified"
        )
        raise errors.conflict(rt.stored_group, rt.kind, meta["name"], why)


def _mark_for_deletion(obj: Obj, finalizers: list[str], grace: int) -> None:
    """Set finalizers and deletionTimestamp/grace; a repeated delete may only shorten the grace period."""
    meta = obj["metadata"]
    if finalizers:
        meta["finalizers"] = finalizers
    current = meta.get("deletionGracePeriodSeconds")
    if meta.get("deletionTimestamp") is None or (current is not None and grace < current):
        deadline = datetime.now(UTC) + timedelta(seconds=grace)
        meta["deletionTimestamp"] = format_time(deadline)
        meta["deletionGracePeriodSeconds"] = grace


__all__ = ["ApiError", "DeleteOptions", "ListPage", "ObjectStore", "decode", "encode", "now_rfc3339"]
