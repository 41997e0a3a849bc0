"""Request bodies in (JSON, YAML, Kubernetes protobuf) and response negotiation out (JSON, Table, metadata)."""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from aiohttp import web

from shim.apiserver import bodylimits, errors
from shim.apiserver.schema import SchemaNode
from shim.machinery.timefmt import normalize_time

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's limit for a single object

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def media_type(request: web.Request) -> str:
    """The request's Content-Type without parameters; none means JSON (the Python client sends none)."""
    raw = request.headers.get("Content-Type", "")
    return raw.split(";", 1)[0].strip().lower() or JSON


async def read_body(request: web.Request) -> bytes:
    """The raw body, refusing anything over the size limit with 413 before reading it all."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise _too_large()
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> errors.ApiError:
    return errors.ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")


async def read_object(request: web.Request) -> dict[str, Any]:
    """Decode an object body (POST/PUT) by its Content-Type."""
    return decode_object(media_type(request), await read_body(request))


def decode_object(kind: str, body: bytes) -> dict[str, Any]:
    """Decode an object body of media type `kind`; anything but a JSON object is a 400."""
    if kind == PROTOBUF:
        from shim.apiserver.protobuf import ProtobufDecodeError, decode_object

        try:
            obj: Any = decode_object(body)
        except ProtobufDecodeError as exc:
            raise errors.bad_request(f"unable to decode protobuf body: {exc}") from None
        bodylimits.check_json_value(obj, "protobuf")
    elif kind in (JSON, "*/*", "application/x-www-form-urlencoded"):
        obj = parse_json(body)
    elif kind in (YAML, "application/x-yaml", "text/yaml"):
        obj = parse_yaml(body)
    else:
        raise unsupported_media_type(kind, (JSON, YAML, PROTOBUF))
    if not isinstance(obj, dict):
        raise errors.bad_request("the object provided is unrecognized (must be of type object): " + type(obj).__name__)
    return obj


def drop_what_go_drops(value: Any, node: SchemaNode) -> None:
    """Remove in place what decoding into kube's Go types loses: fields the schema does not have, and
    nulls (Go's zero value, which the omitempty encoding leaves out). Timestamps stay null, as Go writes
    them; a null list item or map value becomes the zero value of its type."""
    if isinstance(value, dict):
        if node.properties:
            for key in list(value):
                field = node.properties.get(key)
                item = value[key]
                if field is None or (item is None and field.format != "date-time"):
                    del value[key]
                elif item is None:
                    continue
                elif field.format == "date-time" and isinstance(item, str):
                    value[key] = normalize_time(item, micro=field.name == MICRO_TIME)
                elif item in ({}, []) and _omitted_when_empty(node, key, field):
                    del value[key]  # omitempty leaves out an empty map or slice (not an empty struct)
                else:
                    drop_what_go_drops(item, field)
        elif node.additional_properties is not None:
            _zero_nulls(value, value.keys(), node.additional_properties)
    elif isinstance(value, list) and node.items is not None:
        _zero_nulls(value, range(len(value)), node.items)


MICRO_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"


# optional fields whose Go tag has no omitempty (the schemas do not say so; required fields never have it)
_KEPT_WHEN_EMPTY = frozenset({("io.k8s.api.discovery.v1.EndpointSlice", "ports")})


def _omitted_when_empty(parent: SchemaNode, key: str, field: SchemaNode) -> bool:
    """Whether Go's encoding leaves out this field when it is an empty map or slice."""
    if key in parent.required or (parent.name, key) in _KEPT_WHEN_EMPTY:
        return False
    return field.type == "array" or (field.type == "object" and field.additional_properties is not None)


def _zero_nulls(container: Any, keys: Any, node: SchemaNode) -> None:
    for key in keys:
        if container[key] is None:
            container[key] = {} if node.type == "object" else [] if node.type == "array" else _ZERO.get(node.type)
        else:
            drop_what_go_drops(container[key], node)


_ZERO: dict[str | None, Any] = {"string": "", "integer": 0, "number": 0, "boolean": False}


def parse_json(body: bytes) -> Any:
    """JSON, with kube's wording for a syntax error."""
    if not body.strip():
        raise errors.bad_request(
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml, application/vnd.kubernetes.protobuf"
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"json: cannot parse request body: {exc}") from None
    bodylimits.check_json_value(value, "json")
    return value


def parse_yaml(body: bytes) -> Any:
    """YAML (JSON is YAML too); one document only, within the nesting and alias bounds."""
    try:
        return bodylimits.load_yaml(body)
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer too long to convert, bad UTF-8
        raise errors.bad_request(f"yaml: cannot parse request body: {exc}") from None


def parse_json_or_yaml(body: bytes) -> Any:
    """Apply bodies: kubectl sends JSON under the `+yaml` type, users may send YAML."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return parse_yaml(body)
    bodylimits.check_json_value(value, "json")
    return value


def unsupported_media_type(kind: str, supported: tuple[str, ...]) -> errors.ApiError:
    return errors.ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(supported)}"
        if kind
        else "missing content type",
    )


# -- responses --------------------------------------------------------------------------------------------------


# what kube-apiserver serves a built-in resource as (CBOR is off by default in 1.33)
_SERVED_MEDIA_TYPES = (JSON, YAML, PROTOBUF)
_ACCEPTABLE_RANGES = frozenset({"*/*", "application/*", *_SERVED_MEDIA_TYPES})


def check_acceptable(request: web.Request) -> None:
    """406 when the Accept header names no media type a resource is served as (kube's NegotiateOutputMediaType);
    the answer itself is JSON whatever was accepted, which every client reads."""
    accept = request.headers.get("Accept", "").strip()
    if not accept:
        return
    ranges = {clause.split(";", 1)[0].strip().lower() for clause in accept.split(",")}
    if ranges & _ACCEPTABLE_RANGES or ranges <= {""}:
        return
    raise errors.ApiError(
        406, "NotAcceptable", "only the following media types are accepted: " + ", ".join(_SERVED_MEDIA_TYPES)
    )


def wants_table(request: web.Request) -> bool:
    """kubectl's `Accept: application/json;as=Table;v=v1;g=meta.k8s.io, ...` (v1beta1 also served)."""
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def wants_partial_metadata(request: web.Request) -> bool:
    """`as=PartialObjectMetadata` / `PartialObjectMetadataList` (metadata-only clients, e.g. the GC)."""
    accept = request.headers.get("Accept", "")
    return "as=PartialObjectMetadata" in accept and "g=meta.k8s.io" in accept


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=JSON, headers=headers)


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }
