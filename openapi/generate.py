"""Generate the OpenAPI documents kube-shim serves and validates with.

Run from the repository root:

    python openapi/generate.py

Source: the schemas the `kubernetes-validate` package ships for Kubernetes v1.33
(`kubernetes-json-schema/v1.33.0-local/_definitions.json`, JSON Schema `$defs` generated from the
upstream OpenAPI, with descriptions, merge keys and list types). The script keeps only what the
kinds the API server's registry serves need (their List kinds, subresource kinds, the meta types the paths return, and
everything those reference), turns the JSON Schema dialect back into the OpenAPI dialect
kube-apiserver serves (`type: [string, null]` -> `type: string`, no `enum` on apiVersion/kind,
`int-or-string` and Quantity as strings), and adds kube-apiserver-shaped `paths`.

Output, deterministic (sorted keys, compact, gzip without a timestamp):
- `shim/apiserver/openapi_documents/v3/<gv>.json.gz`, one OpenAPI 3.0 document per group-version, `<gv>` being the
  `/openapi/v3` index key with `/` replaced by `__` (`api__v1`, `apis__apps__v1`, ...).
- `shim/apiserver/openapi_documents/v2/swagger.json.gz`, one Swagger 2.0 document for all served group-versions.
They are gzipped (about 1.6 MB of JSON today, 230 kB gzipped, and more with every kind); the
server decompresses them once and serves plain JSON. `zcat` them to read or diff.

The kinds, their subresources and verbs come from the API server's registry
(`shim.apiserver.resources.build_registry`), the one list the server serves from: adding a kind there and
running this script is all it takes (its schema must exist in the source).
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.apiserver.registry import Subresource
from shim.apiserver.resources import build_registry

KUBE_VERSION = "v1.33.0"
SOURCE = ("kubernetes-json-schema", "v1.33.0-local", "_definitions.json")
OUT_DIR = Path(__file__).resolve().parents[1] / "shim" / "apiserver" / "openapi_documents"  # shipped in the wheel


@dataclass(frozen=True)
class Kind:
    """One served resource: its group/version/plural/Kind, scope and subresources."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[Subresource, ...]
    deletecollection: bool


def served_kinds() -> tuple[Kind, ...]:
    """Every resource the API server serves, read from its registry."""
    return tuple(
        Kind(
            rt.group,
            rt.version,
            rt.plural,
            rt.kind,
            rt.namespaced,
            rt.subresources,
            "deletecollection" in rt.verbs,
        )
        for rt in build_registry().resources
    )


SERVED = served_kinds()

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
# Meta types every group-version document carries, as kube-apiserver's do.
META_TYPES = ("Status", "DeleteOptions", "WatchEvent", "APIResourceList", "Patch")


@dataclass(frozen=True)
class Rendering:
    """How the documents describe a subresource beyond its verbs and body kind (the registry's part)."""

    has_schema: bool = True  # the body kind has a schema, used for request and response bodies
    params: tuple[str, ...] = ()
    text_response: bool = False  # log, exec, attach, portforward answer with a string
    connect: bool = False


_STREAM = ("container", "stderr", "stdin", "stdout", "tty")
RENDERINGS: dict[str, Rendering] = {
    "log": Rendering(
        params=(
            "container",
            "follow",
            "insecureSkipTLSVerifyBackend",
            "limitBytes",
            "previous",
            "sinceSeconds",
            "stream",
            "tailLines",
            "timestamps",
        ),
        text_response=True,
    ),
    "exec": Rendering(has_schema=False, params=("command", *_STREAM), text_response=True, connect=True),
    "attach": Rendering(has_schema=False, params=_STREAM, text_response=True, connect=True),
    "portforward": Rendering(has_schema=False, params=("ports",), text_response=True, connect=True),
}
# discovery verb -> HTTP method, in the order the documents list a subresource's operations
VERB_METHODS = (("get", "get"), ("update", "put"), ("patch", "patch"), ("create", "post"))


def _methods(sub: Subresource) -> tuple[str, ...]:
    return tuple(method for verb, method in VERB_METHODS if verb in sub.verbs)


# Query and path parameters: name -> (type, description).
PARAMS: dict[str, tuple[str, str]] = {
    "allowWatchBookmarks": ("boolean", "Ask for BOOKMARK watch events. Ignored if this is not a watch."),
    "command": ("string", "Command to run in the container; repeat the parameter for each argument."),
    "container": ("string", "The container to use. Defaults to the only container if there is one."),
    "continue": ("string", "The continue token from a previous chunked list."),
    "dryRun": ("string", "When present (All), run every stage of the request but persist nothing."),
    "fieldManager": ("string", "Name of the actor making these changes."),
    "fieldSelector": ("string", "Restrict the returned objects by their fields. Defaults to everything."),
    "fieldValidation": (
        "string",
        "How to treat unknown or duplicate fields in the request body: Ignore, Warn or Strict.",
    ),
    "follow": ("boolean", "Follow the log stream of the pod."),
    "force": ("boolean", "Force an apply request, taking over conflicting fields. Only for apply patches."),
    "gracePeriodSeconds": ("integer", "Seconds before the object should be deleted; zero deletes at once."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "boolean",
        "Delete an object that cannot be read from storage. Dangerous.",
    ),
    "insecureSkipTLSVerifyBackend": ("boolean", "Skip verifying the serving certificate of the kubelet."),
    "labelSelector": ("string", "Restrict the returned objects by their labels. Defaults to everything."),
    "limit": ("integer", "Maximum number of objects to return in one chunk of a list."),
    "limitBytes": ("integer", "Stop after this many bytes of log output."),
    "name": ("string", "name of the {kind}"),
    "namespace": ("string", "object name and auth scope, such as for teams and projects"),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy."),
    "ports": ("integer", "Pod ports to forward; repeat the parameter for each port."),
    "pretty": ("string", "If 'true', then the output is pretty printed."),
    "previous": ("boolean", "Return the log of the previous, terminated container."),
    "propagationPolicy": (
        "string",
        "How dependents are garbage collected: Orphan, Background or Foreground.",
    ),
    "resourceVersion": ("string", "Constrains which resource versions the request may be served from."),
    "resourceVersionMatch": ("string", "How resourceVersion applies to a list: Exact or NotOlderThan."),
    "sendInitialEvents": ("boolean", "Start a watch with synthetic events for the current state."),
    "sinceSeconds": ("integer", "Only return log lines newer than this many seconds."),
    "stderr": ("boolean", "Redirect the standard error stream of the command."),
    "stdin": ("boolean", "Redirect the standard input stream of the command."),
    "stdout": ("boolean", "Redirect the standard output stream of the command."),
    "stream": ("string", "Which log stream to return: Stdout, Stderr or All."),
    "tailLines": ("integer", "Number of lines from the end of the log to show."),
    "timeoutSeconds": ("integer", "Timeout for the list or watch call."),
    "timestamps": ("boolean", "Prefix every log line with an RFC3339 timestamp."),
    "tty": ("boolean", "Allocate a terminal for the command."),
    "watch": ("boolean", "Watch for changes to the described resources instead of listing them."),
}

LIST_PARAMS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
PATCH_PARAMS = ("dryRun", "force", "fieldManager", "fieldValidation")
DELETE_PARAMS = (
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
)
DELETECOLLECTION_PARAMS = DELETE_PARAMS + tuple(p for p in LIST_PARAMS if p not in ("allowWatchBookmarks", "watch"))
PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
REF_PREFIX = {"v2": "#/definitions/", "v3": "#/components/schemas/"}
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# The source writes these two as `oneOf`; kube-apiserver serves them as strings.
UPSTREAM_SHAPES: dict[str, dict[str, Any]] = {
    INT_OR_STRING: {
        "description": "IntOrString is a type that can hold an int32 or a string.",
        "format": "int-or-string",
        "type": "string",
    },
    QUANTITY: {
        "description": "Quantity is a fixed-point representation of a number, such as 100m, 1.5 or 2Gi.",
        "type": "string",
    },
}


# ----------------------------------------------------------------------------------------------
# Operations: one neutral description per (path, method), rendered to OpenAPI 3 and Swagger 2.


@dataclass(frozen=True)
class Operation:
    """One HTTP operation of a served path, independent of the OpenAPI dialect."""

    method: str
    operation_id: str
    description: str
    action: str
    gvk: tuple[str, str, str]
    params: tuple[str, ...] = ()
    response: str | None = None  # schema name of the 200 body, None for a plain string
    body: str | None = None  # schema name of the request body
    body_types: tuple[str, ...] = ("application/json",)
    codes: tuple[str, ...] = ("200",)
    watch: bool = False


@dataclass(frozen=True)
class PathItem:
    """A path with its path-level parameters and operations."""

    path: str
    params: tuple[str, ...]
    operations: tuple[Operation, ...]
    kind: str  # the Kind named by the `name` parameter's description


def main(out_dir: Path = OUT_DIR) -> None:
    """Generate every document under `out_dir` (openapi/ by default)."""
    source = _load_source()
    group_versions = sorted({(k.group, k.version) for k in SERVED})
    all_paths: list[PathItem] = []
    all_names: set[str] = set()
    for group, version in group_versions:
        kinds = [k for k in SERVED if (k.group, k.version) == (group, version)]
        paths = [item for k in kinds for item in _PathBuilder(k, source).items()]
        names = _closure(source, _roots(source, kinds))
        _write(
            out_dir / "v3" / f"{_gv_key(group, version).replace('/', '__')}.json.gz",
            _v3(paths, names, source),
        )
        all_paths += paths
        all_names |= names
    _write(out_dir / "v2" / "swagger.json.gz", _v2(all_paths, all_names, source))


def _gv_key(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _load_source() -> dict[str, Any]:
    path = importlib.resources.files("kubernetes_validate").joinpath(*SOURCE)
    return json.loads(path.read_text())["$defs"]


def _write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"{path}: {len(data)} bytes JSON, {path.stat().st_size} gzipped")


# ----------------------------------------------------------------------------------------------
# Schemas


def _schema_name(source: dict[str, Any], group: str, version: str, kind: str) -> str:
    for name, schema in source.items():
        if {"group": group, "version": version, "kind": kind} in schema.get("x-kubernetes-group-version-kind", []):
            return name
    raise SystemExit(f"no schema for {group}/{version} {kind} in the source")


def _roots(source: dict[str, Any], kinds: list[Kind]) -> set[str]:
    roots = {META + t for t in META_TYPES}
    for k in kinds:
        roots.add(_schema_name(source, k.group, k.version, k.kind))
        roots.add(_schema_name(source, k.group, k.version, k.kind + "List"))
        for sub in k.subresources:
            if sub.response_kind and RENDERINGS.get(sub.name, Rendering()).has_schema:
                roots.add(_schema_name(source, *sub.response_kind))
    return roots


def _closure(source: dict[str, Any], roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += _refs(source[name])
    return seen


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _openapi_schema(name: str, schema: dict[str, Any], dialect: str) -> dict[str, Any]:
    """Rewrite one source definition into the OpenAPI dialect (`v2` or `v3`) kube-apiserver serves."""
    if name in UPSTREAM_SHAPES:
        return dict(UPSTREAM_SHAPES[name])
    return _convert(schema, dialect)


def _convert(node: Any, dialect: str, field: str = "") -> Any:
    if isinstance(node, list):
        return [_convert(v, dialect) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = REF_PREFIX[dialect] + value.rsplit("/", 1)[1]
        elif key == "type" and isinstance(value, list):
            out[key] = next(t for t in value if t != "null")
        elif key == "enum" and field in ("apiVersion", "kind"):
            continue  # added by the JSON Schema conversion; kube-apiserver has no enum here
        elif key == "properties":
            out[key] = {name: _convert(prop, dialect, name) for name, prop in value.items()}
        else:
            out[key] = _convert(value, dialect)
    if dialect == "v3" and "$ref" in out and len(out) > 1:
        # kube-apiserver's v3 wraps a $ref that has siblings in allOf; explain then prints both descriptions
        return {"allOf": [{"$ref": out.pop("$ref")}], **out}
    return out


# ----------------------------------------------------------------------------------------------
# Paths


class _PathBuilder:
    """Builds the kube-apiserver-shaped paths of one kind."""

    def __init__(self, k: Kind, source: dict[str, Any]) -> None:
        self.k = k
        self.source = source
        self.prefix = "/" + _gv_key(k.group, k.version)
        self.scope = f"{self.prefix}/namespaces/{{namespace}}" if k.namespaced else self.prefix
        self.scope_params: tuple[str, ...] = ("namespace",) if k.namespaced else ()
        self.gvk = (k.group, k.version, k.kind)
        self.own = _schema_name(source, *self.gvk)
        # operationId parts, as upstream: list + CoreV1 + Namespaced + Pod
        self.gv = _operation_group(k.group) + k.version.capitalize()
        self.ns = "Namespaced" if k.namespaced else ""

    def items(self) -> list[PathItem]:
        k, gv, ns, own = self.k, self.gv, self.ns, self.own
        collection = [
            self._op(
                "get",
                "list",
                f"list{gv}{ns}{k.kind}",
                f"list or watch objects of kind {k.kind}",
                params=LIST_PARAMS,
                response=own + "List",
                watch=True,
            ),
            self._op(
                "post",
                "post",
                f"create{gv}{ns}{k.kind}",
                f"create a {k.kind}",
                params=WRITE_PARAMS,
                response=own,
                body=own,
                codes=("200", "201", "202"),
            ),
        ]
        if k.deletecollection:
            collection.append(
                self._op(
                    "delete",
                    "deletecollection",
                    f"delete{gv}Collection{ns}{k.kind}",
                    f"delete collection of {k.kind}",
                    params=DELETECOLLECTION_PARAMS,
                    response=META + "Status",
                    body=META + "DeleteOptions",
                )
            )
        item = (
            self._op("get", "get", f"read{gv}{ns}{k.kind}", f"read the specified {k.kind}", response=own),
            self._op(
                "put",
                "put",
                f"replace{gv}{ns}{k.kind}",
                f"replace the specified {k.kind}",
                params=WRITE_PARAMS,
                response=own,
                body=own,
                codes=("200", "201"),
            ),
            self._patch(f"patch{gv}{ns}{k.kind}", f"partially update the specified {k.kind}", own, self.gvk),
            self._op(
                "delete",
                "delete",
                f"delete{gv}{ns}{k.kind}",
                f"delete a {k.kind}",
                params=DELETE_PARAMS,
                response=META + "Status",
                body=META + "DeleteOptions",
                codes=("200", "202"),
            ),
        )
        named = ("name", *self.scope_params, "pretty")
        watch_scope = f"{self.prefix}/watch/namespaces/{{namespace}}" if k.namespaced else f"{self.prefix}/watch"
        items = [
            PathItem(f"{self.scope}/{k.plural}", (*self.scope_params, "pretty"), tuple(collection), k.kind),
            PathItem(f"{self.scope}/{k.plural}/{{name}}", named, item, k.kind),
            self._watch(f"{watch_scope}/{k.plural}", (*self.scope_params, "pretty"), f"{gv}{ns}{k.kind}List"),
            self._watch(f"{watch_scope}/{k.plural}/{{name}}", named, f"{gv}{ns}{k.kind}"),
        ]
        if k.namespaced:
            listing = self._op(
                "get",
                "list",
                f"list{gv}{k.kind}ForAllNamespaces",
                f"list or watch objects of kind {k.kind}",
                response=own + "List",
                watch=True,
            )
            items.append(PathItem(f"{self.prefix}/{k.plural}", ("pretty", *LIST_PARAMS), (listing,), k.kind))
            items.append(
                self._watch(f"{self.prefix}/watch/{k.plural}", ("pretty",), f"{gv}{k.kind}ListForAllNamespaces")
            )
        return items + [self._subresource(sub) for sub in k.subresources]

    def _watch(self, path: str, params: tuple[str, ...], op_stem: str) -> PathItem:
        """The deprecated /watch/ paths: a GET answering a stream of WatchEvents."""
        is_list = op_stem.endswith(("List", "ListForAllNamespaces"))
        what = f"a list of {self.k.kind}" if is_list else f"an object of kind {self.k.kind}"
        operation = self._op(
            "get",
            "watchlist" if is_list else "watch",
            "watch" + op_stem,
            f"watch changes to {what}",
            response=META + "WatchEvent",
            watch=True,
        )
        return PathItem(path, (*params, *LIST_PARAMS), (operation,), self.k.kind)

    def _subresource(self, sub: Subresource) -> PathItem:
        k, spec, sub_name = self.k, RENDERINGS.get(sub.name, Rendering()), sub.name
        gvk = sub.response_kind or self.gvk
        schema = _schema_name(self.source, *gvk) if spec.has_schema else None
        response = None if spec.text_response else schema
        stem = f"{self.gv}{self.ns}{k.kind}{sub_name.capitalize()}"
        operations = []
        for method in _methods(sub):
            if spec.connect:
                op_id = f"connect{self.gv}{method.capitalize()}{self.ns}{k.kind}{sub_name.capitalize()}"
                text = f"connect {method.upper()} requests to {sub_name} of {k.kind}"
                operations.append(self._op(method, "connect", op_id, text, params=spec.params, gvk=gvk))
            elif method == "get":
                text = f"read {sub_name} of the specified {k.kind}"
                operations.append(
                    self._op("get", "get", "read" + stem, text, params=spec.params, response=response, gvk=gvk)
                )
            elif method == "put":
                text = f"replace {sub_name} of the specified {k.kind}"
                operations.append(
                    self._op(
                        "put",
                        "put",
                        "replace" + stem,
                        text,
                        params=WRITE_PARAMS,
                        response=response,
                        body=schema,
                        codes=("200", "201"),
                        gvk=gvk,
                    )
                )
            elif method == "patch":
                operations.append(
                    self._patch("patch" + stem, f"partially update {sub_name} of the specified {k.kind}", response, gvk)
                )
            else:
                text = f"create {sub_name} of a {k.kind}"
                operations.append(
                    self._op(
                        "post",
                        "post",
                        "create" + stem,
                        text,
                        params=WRITE_PARAMS,
                        response=response,
                        body=schema,
                        codes=("200", "201", "202"),
                        gvk=gvk,
                    )
                )
        path = f"{self.scope}/{k.plural}/{{name}}/{sub_name}"
        return PathItem(path, ("name", *self.scope_params, "pretty"), tuple(operations), k.kind)

    def _patch(self, op_id: str, text: str, response: str | None, gvk: tuple[str, str, str]) -> Operation:
        return self._op(
            "patch",
            "patch",
            op_id,
            text,
            params=PATCH_PARAMS,
            response=response,
            body=META + "Patch",
            body_types=PATCH_TYPES,
            codes=("200", "201"),
            gvk=gvk,
        )

    def _op(self, method: str, action: str, op_id: str, text: str, **fields: Any) -> Operation:
        fields.setdefault("gvk", self.gvk)
        return Operation(method=method, action=action, operation_id=op_id, description=text, **fields)


def _operation_group(group: str) -> str:
    return "Core" if not group else re.sub(r"[^A-Za-z0-9]", "", group.split(".")[0].title())


def _tag(gvk: tuple[str, str, str]) -> str:
    return f"{'core' if not gvk[0] else gvk[0].split('.')[0]}_{gvk[1]}"


# ----------------------------------------------------------------------------------------------
# Rendering


def _v3(paths: list[PathItem], names: set[str], source: dict[str, Any]) -> dict[str, Any]:
    ref = REF_PREFIX["v3"]
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": {item.path: _v3_path(item, ref) for item in paths},
        "components": {
            "schemas": {name: _openapi_schema(name, source[name], "v3") for name in sorted(names)},
            "securitySchemes": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "in": "header",
                    "name": "authorization",
                    "type": "apiKey",
                }
            },
        },
        "security": [{"BearerToken": []}],
    }


def _v3_path(item: PathItem, ref: str) -> dict[str, Any]:
    out: dict[str, Any] = {"parameters": [_param(p, item.kind, "v3") for p in item.params]}
    for op in item.operations:
        body: dict[str, Any] = {
            "description": op.description,
            "operationId": op.operation_id,
            "responses": {code: _v3_response(op, code, ref) for code in op.codes},
            "tags": [_tag(op.gvk)],
            "x-kubernetes-action": op.action,
            "x-kubernetes-group-version-kind": _gvk(op.gvk),
        }
        if op.params:
            body["parameters"] = [_param(p, item.kind, "v3") for p in op.params]
        if op.body:
            body["requestBody"] = {"content": {t: {"schema": {"$ref": ref + op.body}} for t in op.body_types}}
            if op.method != "delete":
                body["requestBody"]["required"] = True
        out[op.method] = body
    return out


def _param(name: str, kind: str, dialect: str) -> dict[str, Any]:
    """A path or query parameter; v3 puts its type in a schema, v2 beside it."""
    value_type, description = PARAMS[name]
    typed = {"type": value_type, "uniqueItems": True}
    param: dict[str, Any] = {
        "description": description.format(kind=kind),
        "in": "path" if name in ("name", "namespace") else "query",
        "name": name,
        **({"schema": typed} if dialect == "v3" else typed),
    }
    if param["in"] == "path":
        param["required"] = True
    return param


def _v3_response(op: Operation, code: str, ref: str) -> dict[str, Any]:
    schema = {"$ref": ref + op.response} if op.response else {"type": "string"}
    return {"description": _CODE_TEXT[code], "content": {t: {"schema": schema} for t in _produces(op)}}


def _produces(op: Operation) -> tuple[str, ...]:
    if op.response is None:
        return ("*/*",)
    return ("application/json", "application/json;stream=watch") if op.watch else ("application/json",)


_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted", "401": "Unauthorized"}


def _v2(paths: list[PathItem], names: set[str], source: dict[str, Any]) -> dict[str, Any]:
    ref = REF_PREFIX["v2"]
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": {item.path: _v2_path(item, ref) for item in paths},
        "definitions": {name: _openapi_schema(name, source[name], "v2") for name in sorted(names)},
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
            }
        },
        "security": [{"BearerToken": []}],
    }


def _v2_path(item: PathItem, ref: str) -> dict[str, Any]:
    out: dict[str, Any] = {"parameters": [_param(p, item.kind, "v2") for p in item.params]}
    for op in item.operations:
        params = [_param(p, item.kind, "v2") for p in op.params]
        if op.body:
            params.insert(
                0,
                {
                    "in": "body",
                    "name": "body",
                    "required": op.method != "delete",
                    "schema": {"$ref": ref + op.body},
                },
            )
        responses: dict[str, Any] = {}
        for code in op.codes:
            schema = {"$ref": ref + op.response} if op.response else {"type": "string"}
            responses[code] = {"description": _CODE_TEXT[code], "schema": schema}
        responses["401"] = {"description": _CODE_TEXT["401"]}
        body: dict[str, Any] = {
            "consumes": list(op.body_types) if op.body else ["*/*"],
            "description": op.description,
            "operationId": op.operation_id,
            "produces": list(_produces(op)),
            "responses": responses,
            "schemes": ["https"],
            "tags": [_tag(op.gvk)],
            "x-kubernetes-action": op.action,
            "x-kubernetes-group-version-kind": _gvk(op.gvk),
        }
        if params:
            body["parameters"] = params
        out[op.method] = body
    return out


def _gvk(gvk: tuple[str, str, str]) -> dict[str, str]:
    return {"group": gvk[0], "version": gvk[1], "kind": gvk[2]}


if __name__ == "__main__":
    main()
