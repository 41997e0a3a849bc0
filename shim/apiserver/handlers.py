"""The generic REST handlers: one set of verbs for every registered resource.

A request is resolved to (resource type, namespace, name, subresource); the verb handlers below then
do the same thing for every kind, with the strategy supplying what differs.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from aiohttp import web

from shim.apiserver import codec, errors, query
from shim.apiserver.errors import ApiError
from shim.apiserver.kinds.causes import invalid as invalid_value
from shim.apiserver.objects import DeleteOptions, Obj, ObjectStore
from shim.apiserver.registry import Registry, ResourceType
from shim.apiserver.schema import schema_for
from shim.apiserver.tables import build_table
from shim.apiserver.typed_patch import go_sprint
from shim.machinery.resources import NAMESPACES
from shim.machinery.selectors import SelectorError, parse_field_selector, parse_label_selector


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool  # the legacy /watch/ prefix


def resolve(registry: Registry, group: str, version: str, rest: str) -> Target:
    """Parse the part of a resource URL after `/api/v1/` or `/apis/<group>/<version>/`."""
    parts = [p for p in rest.split("/") if p]
    watch_path = bool(parts) and parts[0] == "watch"
    if watch_path:
        parts = parts[1:]
    namespace = None
    if (
        len(parts) >= 3
        and parts[0] == NAMESPACES.plural
        and not (group == NAMESPACES.group and len(parts) == 3 and registry.get(NAMESPACES).subresource(parts[2]))
    ):
        namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        raise errors.not_found_here()
    rt = registry.lookup(group, version, parts[0])
    if rt is None:
        raise errors.not_found_here()
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if namespace is not None and not rt.namespaced:
        raise errors.not_found_here()
    if rt.namespaced and name is not None and namespace is None:
        raise errors.not_found_here()
    if sub is not None and rt.subresource(sub) is None:
        raise errors.not_found_here()
    return Target(rt, namespace, name, sub, watch_path)


class ResourceHandlers:
    """get / list / watch / create / update / patch / delete / deletecollection for every resource."""

    def __init__(self, registry: Registry, objects: ObjectStore, subresources: Any, watcher: Any) -> None:
        self.registry = registry
        self.objects = objects
        self.subresources = subresources
        self.watcher = watcher
        self.namespaces = registry.get(NAMESPACES)

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        q = request.query
        if target.subresource in (None, "status", "scale"):  # objects (logs, exec and the like stream other types)
            codec.check_acceptable(request)
        if target.subresource is not None:
            return await self.subresources.handle(request, target)
        if target.name is None:
            if method == "GET":
                if target.watch_path or query.parse_bool(q, "watch"):
                    return await self.watcher.serve(request, target)
                return await self.list(request, target)
            if method == "POST":
                return await self.create(request, target)
            if method == "DELETE" and "deletecollection" in target.rt.verbs:  # namespaces do not serve it
                return await self.delete_collection(request, target)
        else:
            if method == "GET":
                if target.watch_path or query.parse_bool(q, "watch"):
                    return await self.watcher.serve(request, target)
                return await self.get(request, target)
            if method == "PUT":
                return await self.update(request, target)
            if method == "PATCH":
                return await self.patch(request, target)
            if method == "DELETE":
                return await self.delete(request, target)
        raise errors.ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    # -- reads -------------------------------------------------------------------------------------------------

    async def get(self, request: web.Request, target: Target) -> web.Response:
        rv = request.query.get("resourceVersion")
        if rv and rv != "0":  # not older than asked, as kube's watch cache serves a GET
            try:
                await self.objects.wait_for_revision(int(rv))
            except ValueError:
                raise errors.bad_request(f'invalid resource version "{rv}"') from None
        obj = await self.objects.get(target.rt, target.namespace, target.name or "")
        return self.render(request, target.rt, obj)

    async def list(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        q = request.query
        accept = self.filter_for(request, rt)
        limit = query.parse_int(q, "limit")
        revision = self.list_revision(q, limit)
        if revision is None and (minimum := query.parse_int(q, "resourceVersion")):
            await self.objects.wait_for_revision(minimum)  # NotOlderThan: never older data than asked for
        as_table, as_metadata = codec.wants_table(request), codec.wants_partial_metadata(request)
        raw = accept is None and not as_table and not as_metadata and rt.conversion is None
        page = await self.objects.list(
            rt, target.namespace, accept, limit if limit and limit > 0 else None, q.get("continue"), revision, raw
        )
        list_meta: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            list_meta["continue"] = page.continue_token
        if page.remaining is not None:
            list_meta["remainingItemCount"] = page.remaining
        if as_table:
            return codec.json_response(
                build_table(rt.strategy, page.items, datetime.now(UTC), include_object(request), list_meta)
            )
        if raw:
            head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta})
            body = b'%s,"items":[%s]}' % (head[:-1], b",".join(cast(list[bytes], page.items)))  # raw: stored JSON bytes
            return web.Response(body=body, content_type="application/json")
        if as_metadata:
            return codec.json_response(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": list_meta,
                    "items": [codec.partial_metadata(o) for o in page.items],
                }
            )
        return codec.json_response(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta, "items": page.items}
        )

    def list_revision(self, q: Any, limit: int | None) -> int | None:
        """resourceVersion + resourceVersionMatch: an exact revision only when the client asked for one."""
        query.check_list_options(q)
        rv = q.get("resourceVersion")
        match = q.get("resourceVersionMatch")
        # kube's storage.ValidateListOptions
        if q.get("continue") and rv and rv != "0":
            raise errors.bad_request("specifying resource version is not allowed when using continue")
        if not rv or rv == "0":
            return None
        try:
            revision = int(rv)
        except ValueError:
            raise errors.bad_request(f'invalid resource version "{rv}"') from None
        if match == "Exact" or (match is None and limit):
            return revision
        return None

    def filter_for(self, request: web.Request, rt: ResourceType) -> Any:
        """A predicate for labelSelector/fieldSelector, or None when both are empty."""
        q = request.query
        labels_text = q.get("labelSelector", "")
        fields_text = q.get("fieldSelector", "")
        try:
            labels = parse_label_selector(labels_text) if labels_text.strip() else None
            fields = None
            if fields_text.strip():
                selector = rt.strategy.selectable_fields.convert(parse_field_selector(fields_text))
                fields = rt.strategy.selectable_fields.matcher(selector)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        if labels is None:
            return fields
        if fields is None:
            return lambda obj: labels.matches(obj["metadata"].get("labels"))
        return lambda obj: labels.matches(obj["metadata"].get("labels")) and fields(obj)

    def render(
        self,
        request: web.Request,
        rt: ResourceType,
        obj: Obj,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        """One object as JSON, or as a one-row Table when kubectl asks for it."""
        if codec.wants_table(request):
            table = build_table(
                rt.strategy,
                [obj],
                datetime.now(UTC),
                include_object(request),
                {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")},
            )
            return codec.json_response(table, status, headers)
        if codec.wants_partial_metadata(request):
            return codec.json_response(codec.partial_metadata(obj), status, headers)
        return codec.json_response(obj, status, headers)

    # -- writes ------------------------------------------------------------------------------------------------

    async def create(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        body = await codec.read_body(request)
        obj = codec.decode_object(codec.media_type(request), body)
        check_type_meta(rt, obj, self.registry)
        warnings = self.check_fields(request, rt, obj, body)
        if rt.namespaced:
            body_ns = (obj.get("metadata") or {}).get("namespace")
            if body_ns and body_ns != target.namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            if target.namespace is None:
                raise errors.ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            await self.require_active_namespace(rt, target.namespace, obj)
        dry = query.dry_run(request.query)
        created = await self.objects.create(rt, target.namespace, obj, dry, field_manager(request))
        return self.render(request, rt, created, 201, warning_headers(warnings))

    async def update(self, request: web.Request, target: Target, subresource: str | None = None) -> web.Response:
        rt = target.rt
        body = await codec.read_body(request)
        obj = codec.decode_object(codec.media_type(request), body)
        check_type_meta(rt, obj, self.registry)
        warnings = self.check_fields(request, rt, obj, body)
        check_name(target, obj)
        wanted_rv = (obj.get("metadata") or {}).get("resourceVersion")

        def replace(old: Obj) -> Obj:
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise stale(rt, target.name or "")
            return obj

        dry = query.dry_run(request.query, options=query.options_kind(request.method))
        try:
            updated = await self.objects.update(
                rt, target.namespace, target.name or "", replace, subresource, dry, field_manager(request)
            )
        except ApiError as exc:
            if exc.code != 404 or subresource or wanted_rv or not rt.strategy.allow_create_on_update:
                raise
            if rt.namespaced:
                await self.require_active_namespace(rt, target.namespace or "", obj)
            created = await self.objects.create(rt, target.namespace, obj, dry, field_manager(request))
            return self.render(request, rt, created, 201, warning_headers(warnings))
        return self.render(request, rt, updated, 200, warning_headers(warnings))

    async def patch(self, request: web.Request, target: Target, subresource: str | None = None) -> web.Response:
        from shim.apiserver.patch_bodies import apply_patch, parse_patch

        rt = target.rt
        kind = codec.media_type(request)
        body = await codec.read_body(request)
        q = request.query
        if kind in codec.PATCH_TYPES:  # kube checks the options before it decodes the patch
            query.check_patch_options(q, kind == codec.APPLY_PATCH)
        dry = query.dry_run(q, options=query.options_kind(request.method))
        patch = parse_patch(kind, body)
        warnings: list[str] = []
        if kind == codec.APPLY_PATCH:
            return await self.subresources.server_side_apply(request, target, patch, dry)

        def patched(old: Obj) -> Obj:
            new = apply_patch(rt, kind, old, patch)
            wanted_rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise stale(rt, target.name or "")
            check_name(target, new)
            # kube shows a strategic merge patch as Go prints its map, other patches as the patched JSON
            shown = go_sprint(patch) if kind == codec.STRATEGIC_PATCH else orjson.dumps(new).decode()
            warnings[:] = self.check_fields(request, rt, new, patched=shown)
            return new

        updated = await self.objects.update(
            rt, target.namespace, target.name or "", patched, subresource, dry, field_manager(request)
        )
        return self.render(request, rt, updated, 200, warning_headers(warnings))

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        options = await read_delete_options(request)
        obj, deleted_now = await self.objects.delete(rt, target.namespace, target.name or "", options)
        if deleted_now and not rt.strategy.returns_deleted_object:
            return codec.json_response(success_status(rt, obj))
        return self.render(request, rt, obj)

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        options = await read_delete_options(request)
        page = await self.objects.list(rt, target.namespace, self.filter_for(request, rt))
        deleted = []
        for obj in page.items:
            meta = obj["metadata"]
            try:
                gone, _ = await self.objects.delete(rt, meta.get("namespace"), meta["name"], options)
            except ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(gone)
        return codec.json_response(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(await self.objects.store.current_revision())},
                "items": deleted,
            }
        )

    # -- helpers -----------------------------------------------------------------------------------------------

    async def require_active_namespace(self, rt: ResourceType, namespace: str, obj: Obj) -> None:
        """Namespaced objects need an existing namespace that is not terminating."""
        try:
            ns = await self.objects.get(self.namespaces, None, namespace)
        except ApiError:
            raise errors.not_found(NAMESPACES.group, NAMESPACES.plural, namespace) from None
        if ns.get("status", {}).get("phase") == "Terminating" or ns["metadata"].get("deletionTimestamp"):
            name = (obj.get("metadata") or {}).get("name") or ""
            raise ApiError(
                403,
                "Forbidden",
                f'{rt.qualified} "{name}" is forbidden: unable to create new content in namespace {namespace} '
                "because it is being terminated",
                {
                    "name": name,
                    "group": rt.group,
                    "kind": rt.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def check_fields(
        self, request: web.Request, rt: ResourceType, obj: Obj, body: bytes | None = None, patched: str | None = None
    ) -> builtins.list[str]:
        """Decode `obj` as kube decodes into its Go types: wrong types fail; unknown fields (and keys repeated
        in a JSON `body`) fail under fieldValidation=Strict and are returned as warnings under Warn; unknown
        fields and nulls are then dropped from `obj`, whatever the mode. `patched`: `obj` is a patch result,
        which kube reports as an invalid `patch` (showing this text) rather than an undecodable body."""
        from shim.apiserver.validation import duplicate_fields, find_schema_problems, strict_decoding_message

        mode = query.field_validation(request.query, query.options_kind(request.method))
        schema = schema_for(rt.group, rt.version, rt.kind)
        if schema is None:
            return []
        causes, unknown = find_schema_problems(rt.group, rt.version, rt.kind, obj)
        if causes:
            raise cannot_be_handled(rt, "; ".join(f"{c['field']}: {c['message']}" for c in causes))
        problems = [] if mode == "Ignore" else unknown + (duplicate_fields(body) if body else [])
        if problems and mode == "Strict":
            message = strict_decoding_message(problems)
            if patched is not None:
                raise errors.invalid("", "", "", [invalid_value("patch", patched, message)])
            raise cannot_be_handled(rt, message)
        codec.drop_what_go_drops(obj, schema)
        return problems


def field_manager(request: web.Request) -> str:
    """`fieldManager`, or as kube derives it: the User-Agent up to its first `/` (`kubectl`, ...)."""
    manager = request.query.get("fieldManager")
    if manager is None:
        manager = request.headers.get("User-Agent", "").split("/", 1)[0]
    if len(manager) > 128:
        raise errors.invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            [errors.cause("FieldValueTooLong", "fieldManager", "Too long: may not be more than 128 bytes")],
        )
    return manager


def include_object(request: web.Request) -> str:
    value = request.query.get("includeObject") or "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise errors.bad_request(
            "Unable to convert to Table as requested: includeObject: Invalid value: "
            f"\"{value}\": must be 'Metadata', 'Object', 'None', or empty"
        )
    return value


def cannot_be_handled(rt: ResourceType, why: str) -> ApiError:
    """400 for a body that does not decode into the kind's type, worded as kube's transformDecodeError."""
    return _cannot_decode(rt.kind, rt.version, why)


def _cannot_decode(kind: str, version: str, why: str) -> ApiError:
    return errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {why}')


async def read_typed_object(request: web.Request, group: str, version: str, kind: str) -> Obj:
    """A subresource's body (Binding, Eviction, Scale, ...): decoded, and each value's type checked against
    the kind's schema as kube's decoding into Go types does (400), so the handler can trust the types."""
    from shim.apiserver.validation import find_schema_problems

    obj = await codec.read_object(request)
    causes, _ = find_schema_problems(group, version, kind, obj)
    if causes:
        raise _cannot_decode(kind, version, "; ".join(f"{c['field']}: {c['message']}" for c in causes))
    return obj


def check_name(target: Target, obj: Obj) -> None:
    """A PUT body or a patch result must name the object of the URL (kube's checkName)."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name, namespace = meta.get("name") or "", meta.get("namespace")
    if name != target.name:
        raise errors.bad_request(f"the name of the object ({name}) does not match the name on the URL ({target.name})")
    if target.namespace and namespace and namespace != target.namespace:
        raise errors.bad_request(
            f"the namespace of the object ({namespace}) does not match the namespace on the request "
            f"({target.namespace})"
        )


def check_type_meta(rt: ResourceType, obj: Obj, registry: Registry) -> None:
    """A body may omit kind/apiVersion; when it has them they must match the URL."""
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if api_version and api_version != rt.api_version:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version ({rt.api_version})"
        )
    if kind and kind != rt.kind:
        if isinstance(kind, str) and registry.by_kind(rt.group, rt.version, kind) is None:  # kube knows no such kind
            raise errors.bad_request(
                f'{kind} in version "{rt.version}" cannot be handled as a {rt.kind}: no kind "{kind}" is registered '
                f'for version "{rt.api_version}" in scheme "pkg/api/legacyscheme/scheme.go:30"'
            )
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")


def stale(rt: ResourceType, name: str) -> ApiError:
    return errors.conflict(
        rt.group,
        rt.plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )


def success_status(rt: ResourceType, obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {  # Go's omitempty: no group for core objects
            "name": meta.get("name"),
            **({"group": rt.group} if rt.group else {}),
            "kind": rt.plural,
            "uid": meta.get("uid"),
        },
    }


def warning_headers(warnings: list[str]) -> dict[str, str] | None:
    """`Warning: 299 - "..."` (aiohttp joins one header; several warnings go comma-separated as Go allows)."""
    values = [value for value in map(errors.warning_value, warnings) if value]
    return {"Warning": ", ".join(values)} if values else None


async def read_delete_options(request: web.Request) -> DeleteOptions:
    """DeleteOptions from the body (kubectl) and/or the query (the Python client)."""
    q = request.query
    body: dict[str, Any] = {}
    raw = await codec.read_body(request)
    if raw.strip():
        parsed = codec.parse_json(raw) if codec.media_type(request) != codec.YAML else codec.parse_yaml(raw)
        if not isinstance(parsed, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        body = parsed
        _check_delete_option_types(body)
    grace = body.get("gracePeriodSeconds")
    if grace is None:
        grace = query.parse_int(q, "gracePeriodSeconds")
    policy = body.get("propagationPolicy") or q.get("propagationPolicy")
    orphan = body.get("orphanDependents")
    if orphan is None and q.get("orphanDependents"):
        orphan = query.parse_bool(q, "orphanDependents")
    if policy is not None and orphan is not None:
        raise _invalid_delete_options(
            "FieldValueInvalid",
            f'Invalid value: "{policy}": orphanDependents and deletionPropagation cannot be both set',
        )
    if policy not in (None, "Orphan", "Background", "Foreground"):
        raise _invalid_delete_options(
            "FieldValueNotSupported",
            f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
        )
    pre = body.get("preconditions") or {}
    return DeleteOptions(
        grace_period_seconds=grace,
        # orphanDependents=false asks for no orphaning, whatever the kind's default
        propagation_policy=policy if orphan is None else ("Orphan" if orphan else "Background"),
        precondition_uid=pre.get("uid"),
        precondition_resource_version=pre.get("resourceVersion"),
        dry_run=query.dry_run(q, body.get("dryRun"), query.options_kind(request.method)),
    )


# DeleteOptions fields: the JSON type each must have, and its Go type (for the decoding error's wording)
_DELETE_OPTION_TYPES: dict[str, tuple[type, str]] = {
    "gracePeriodSeconds": (int, "int64"),
    "propagationPolicy": (str, "v1.DeletionPropagation"),
    "orphanDependents": (bool, "bool"),
    "preconditions": (dict, "v1.Preconditions"),
    "dryRun": (list, "[]string"),
}
_JSON_TYPE_NAMES = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}


def _check_delete_option_types(body: dict[str, Any]) -> None:
    """A DeleteOptions body with a value of the wrong type is a 400, as Go's JSON decoding fails it."""
    fields = [(f"DeleteOptions.{key}", body.get(key), *_DELETE_OPTION_TYPES[key]) for key in _DELETE_OPTION_TYPES]
    pre = body.get("preconditions")
    if isinstance(pre, dict):
        for key, go_type in (("uid", "types.UID"), ("resourceVersion", "string")):
            fields.append((f"Preconditions.preconditions.{key}", pre.get(key), str, go_type))
    dry = body.get("dryRun")
    if isinstance(dry, list):
        fields += [("DeleteOptions.dryRun", value, str, "string") for value in dry]
    for where, value, wanted, go_type in fields:
        # bool is an int in Python, not in JSON
        if value is not None and (not isinstance(value, wanted) or (wanted is int and isinstance(value, bool))):
            got = _JSON_TYPE_NAMES.get(type(value), "value")
            raise errors.bad_request(f"json: cannot unmarshal {got} into Go struct field {where} of type {go_type}")


def _invalid_delete_options(reason: str, message: str) -> ApiError:
    return errors.invalid("meta.k8s.io", "DeleteOptions", "", [errors.cause(reason, "propagationPolicy", message)])
