"""Subresources (status, scale, binding, eviction, finalize) and the write hooks some kinds need.

Each is a small handler over the same `ObjectStore`; node-served ones (log, exec, attach, portforward)
answer what kube answers for a pod that no node serves yet.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from shim.apiserver import codec, errors, query
from shim.apiserver.errors import ApiError
from shim.apiserver.handlers import ResourceHandlers, Target, field_manager, read_typed_object, stale
from shim.apiserver.kinds.eviction import mark_evicting, spend_budget, validate_eviction
from shim.apiserver.objects import DeleteOptions, Obj, now_rfc3339


class Subresources:
    """Dispatch for `<resource>/<name>/<subresource>` requests."""

    def __init__(self, handlers: ResourceHandlers) -> None:
        self.h = handlers
        self.objects = handlers.objects

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        sub = target.subresource
        method = request.method
        if sub == "status":
            if method == "GET":
                return await self.h.get(request, target)
            if method == "PUT":
                return await self.h.update(request, target, "status")
            if method == "PATCH":
                return await self.h.patch(request, target, "status")
        elif sub == "scale":
            if method == "GET":
                return await self.get_scale(request, target)
            if method in ("PUT", "PATCH"):
                return await self.write_scale(request, target)
        elif sub == "ephemeralcontainers":  # the pod itself, of which only spec.ephemeralContainers may change
            if method == "GET":
                return await self.h.get(request, target)
            if method == "PUT":
                return await self.h.update(request, target, "ephemeralcontainers")
            if method == "PATCH":
                return await self.h.patch(request, target, "ephemeralcontainers")
        elif sub == "binding" and method == "POST":
            return await self.bind(request, target)
        elif sub == "eviction" and method == "POST":
            return await self.evict(request, target)
        elif sub == "finalize" and method == "PUT":
            return await self.finalize(request, target)
        elif sub in ("log", "exec", "attach", "portforward"):
            return await self.node_proxy(request, target)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # -- scale -------------------------------------------------------------------------------------------------

    async def get_scale(self, request: web.Request, target: Target) -> web.Response:
        from shim.apiserver.kinds.apps import scale_from

        obj = await self.objects.get(target.rt, target.namespace, target.name or "")
        return codec.json_response(scale_from(obj, target.rt))

    async def write_scale(self, request: web.Request, target: Target) -> web.Response:
        from shim.apiserver.kinds.apps import apply_scale, scale_from
        from shim.apiserver.patch_bodies import apply_patch, parse_patch

        rt = target.rt
        if request.method == "PUT":
            body: Any = await read_typed_object(request, "autoscaling", "v1", "Scale")
            kind = None
        else:
            kind = codec.media_type(request)
            if kind in codec.PATCH_TYPES:
                query.check_patch_options(request.query, kind == codec.APPLY_PATCH)
            body = parse_patch(kind, await codec.read_body(request))
            if kind == codec.APPLY_PATCH:
                return await self.apply_scale(request, target, body)
        scale_rt = self.h.registry.by_kind("autoscaling", "v1", "Scale") or rt

        def rescale(old: Obj) -> Obj:
            scale = scale_from(old, rt)
            wanted = body if kind is None else apply_patch(scale_rt, kind, scale, body)
            wanted_rv = (wanted.get("metadata") or {}).get("resourceVersion")
            if kind is None and wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise stale(rt, target.name or "")
            _check_replicas((wanted.get("spec") or {}).get("replicas", 0), target.name or "")
            apply_scale(old, wanted)
            return old

        # the writer owns spec.replicas through `scale` (kube's managedFields: operation Update, subresource scale)
        updated = await self.objects.update(
            rt,
            target.namespace,
            target.name or "",
            rescale,
            "scale",
            query.dry_run(request.query, options=query.options_kind(request.method)),
            field_manager(request),
        )
        return codec.json_response(scale_from(updated, rt))

    async def apply_scale(self, request: web.Request, target: Target, config: dict[str, Any]) -> web.Response:
        """Server-side apply of a Scale: kube maps it onto the parent, so the applier owns the parent's
        spec.replicas (an Apply entry with subresource `scale`) and taking it from another manager conflicts."""
        from shim.apiserver.fieldmanager import apply
        from shim.apiserver.kinds.apps import scale_from
        from shim.apiserver.schema import schema_for
        from shim.apiserver.typed_patch import check_applied

        rt, name = target.rt, target.name or ""
        manager = _apply_manager(request.query)
        force = query.parse_bool(request.query, "force")
        if (config.get("apiVersion"), config.get("kind")) != ("autoscaling/v1", "Scale"):
            group, _, version = str(config.get("apiVersion") or "").rpartition("/")
            raise errors.bad_request(f"invalid object type: {group}/{version}, Kind={config.get('kind') or ''}")
        check_applied(config, schema_for("autoscaling", "v1", "Scale"), "autoscaling", "v1", "Scale")
        parent: dict[str, Any] = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": {"name": name}}
        spec = config.get("spec") or {}
        if "replicas" in spec:
            _check_replicas(spec["replicas"], name)
            parent["spec"] = {"replicas": spec["replicas"]}
        schema = schema_for(rt.group, rt.version, rt.kind)

        def run(live: Obj) -> Obj:
            return apply(live, parent, manager, force, schema, now_rfc3339(), rt.api_version, "scale")

        dry = query.dry_run(request.query, options="PatchOptions")
        updated = await self.objects.update(rt, target.namespace, name, run, "scale", dry)
        return codec.json_response(scale_from(updated, rt))

    # -- pods --------------------------------------------------------------------------------------------------

    async def bind(self, request: web.Request, target: Target) -> web.Response:
        """`pods/binding`: the scheduler's assignment of a pod to a node."""
        binding = await read_typed_object(request, "", "v1", "Binding")
        node = ((binding.get("target") or {}).get("name")) or ""
        if not node:
            raise errors.invalid(
                "",
                "Binding",
                target.name or "",
                [errors.cause("FieldValueRequired", "target.name", "Required value")],
            )
        name = target.name or ""

        def assign(pod: Obj) -> Obj:
            spec = pod.setdefault("spec", {})
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict(
                    target.rt.group, target.rt.plural, name, "pod is being deleted, cannot be assigned to a host"
                )
            if spec.get("nodeName"):
                why = f'pod {name} is already assigned to node "{spec["nodeName"]}"'
                raise errors.conflict(target.rt.group, target.rt.plural, name, why)
            spec["nodeName"] = node
            conditions = [
                c for c in pod.setdefault("status", {}).get("conditions", []) if c.get("type") != "PodScheduled"
            ]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(),
                }
            )
            pod["status"]["conditions"] = conditions
            return pod

        await self.objects.update(target.rt, target.namespace, name, assign, "binding", query.dry_run(request.query))
        return codec.json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
            status=201,
        )

    async def evict(self, request: web.Request, target: Target) -> web.Response:
        """`pods/eviction`: a delete that respects the eviction's DeleteOptions."""
        eviction = await read_typed_object(request, "policy", "v1", "Eviction")
        validate_eviction(eviction, target.name or "")
        opts = eviction.get("deleteOptions") or {}
        options = DeleteOptions(
            grace_period_seconds=opts.get("gracePeriodSeconds"),
            precondition_uid=(opts.get("preconditions") or {}).get("uid"),
            precondition_resource_version=(opts.get("preconditions") or {}).get("resourceVersion"),
            dry_run=query.dry_run(request.query, opts.get("dryRun")),
        )
        pod = await self.objects.get(target.rt, target.namespace, target.name or "")
        refused = await spend_budget(self.objects, pod, options.dry_run)
        if refused is not None:
            return codec.json_response(refused, status=refused["code"])
        if not options.dry_run:
            mark = functools.partial(mark_evicting, rt=target.rt, options=options)
            await self.objects.update(target.rt, target.namespace, target.name or "", mark, "status")
        await self.objects.delete(target.rt, target.namespace, target.name or "", options)
        return codec.json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
            status=201,
        )

    async def node_proxy(self, request: web.Request, target: Target) -> web.StreamResponse:
        """Logs, exec, attach and port-forward are served by the pod's node."""
        from shim.apiserver.proxy import proxy_to_node

        pod = await self.objects.get(target.rt, target.namespace, target.name or "")
        return await proxy_to_node(request, pod, target.subresource or "", self.objects)

    # -- namespaces --------------------------------------------------------------------------------------------

    async def finalize(self, request: web.Request, target: Target) -> web.Response:
        """`namespaces/NAME/finalize`: the namespace controller removes its spec.finalizers entry here."""
        body = await read_typed_object(request, "", "v1", "Namespace")
        finalizers = (body.get("spec") or {}).get("finalizers") or []

        def set_finalizers(ns: Obj) -> Obj:
            ns.setdefault("spec", {})["finalizers"] = finalizers
            if not finalizers:
                ns["spec"].pop("finalizers")
            return ns

        updated = await self.objects.update(
            target.rt,
            None,
            target.name or "",
            set_finalizers,
            "finalize",
            query.dry_run(request.query, options=query.options_kind(request.method)),
        )
        return codec.json_response(updated)

    # -- server-side apply -------------------------------------------------------------------------------------

    async def server_side_apply(
        self, request: web.Request, target: Target, patch: dict[str, Any], dry: bool
    ) -> web.Response:
        from shim.apiserver.fieldmanager import apply
        from shim.apiserver.schema import schema_for

        rt = target.rt
        q = request.query
        manager = _apply_manager(q)
        force = query.parse_bool(q, "force")
        schema = schema_for(rt.group, rt.version, rt.kind)
        name = target.name or ""

        def run(live: Obj | None) -> Obj:
            return apply(live, patch, manager, force, schema, now_rfc3339(), rt.api_version, target.subresource or "")

        try:
            await self.objects.get(rt, target.namespace, name)
        except ApiError as exc:
            if exc.code != 404:
                raise
            obj = run(None)
            obj.setdefault("metadata", {})["name"] = name
            if rt.namespaced:
                await self.h.require_active_namespace(rt, target.namespace or "", obj)
            created = await self.objects.create(rt, target.namespace, obj, dry)
            return self.h.render(request, rt, created, 201)
        updated = await self.objects.update(rt, target.namespace, name, run, target.subresource, dry)
        return self.h.render(request, rt, updated)


def _apply_manager(q: Any) -> str:
    """The apply's `fieldManager`, which kube requires (ValidatePatchOptions: 422 PatchOptions)."""
    manager = q.get("fieldManager")
    if not manager:
        raise errors.invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            [errors.cause("FieldValueRequired", "fieldManager", "Required value: is required for apply patch")],
        )
    return str(manager)


def _check_replicas(replicas: Any, name: str) -> None:
    """A Scale's spec.replicas must be a count (kube's ValidateScale)."""
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        why = f"Invalid value: {replicas}: must be greater than or equal to 0"
        raise errors.invalid("autoscaling", "Scale", name, [errors.cause("FieldValueInvalid", "spec.replicas", why)])
