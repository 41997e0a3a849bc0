"""Serve `/openapi/v2` the way kubectl reads it: a gnostic `openapi.v2.Document` protobuf, never JSON.

kubectl <= 1.28 (apply validation, explain) and later kubectl's fallbacks fetch `GET /openapi/v2` with
`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and fail on JSON ("proto: cannot parse
invalid wire-format data"). `encode_swagger_v2` compiles a Swagger 2.0 JSON document into that message the way
gnostic's compiler does: field numbers from google/gnostic `openapiv2/OpenAPIv2.proto` (proto3, so zero values
are not written), JSON maps as repeated Named* pairs in document order, `x-*` keys as NamedAny vendor
extensions, and every free-form value (vendor extensions, default, enum, example) as `Any.yaml` text. The
YAML written is JSON, which YAML parsers read as flow style.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

# kubectl asks for the `@v1.0` media type, but Go's mime parser rejects `@`: kube-openapi answers the `.v1.0`
# spelling to either request.
ACCEPTED_TYPES = (
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
)
CONTENT_TYPE = ACCEPTED_TYPES[1]

# A field codec turns one JSON value into the bytes of protobuf field `number` (b"" when proto3 omits it).
Codec = Callable[[int, Any, str], bytes]


def encode_swagger_v2(swagger: dict[str, Any]) -> bytes:
    """The serialized `openapi.v2.Document` of a Swagger 2.0 document; ValueError names what has no place."""
    return _encode(DOCUMENT, swagger, "#")


@dataclass
class Message:
    """How one gnostic message maps JSON keys to fields; `extensions` is its NamedAny field for `x-*` keys."""

    extensions: int | None
    fields: dict[str, tuple[int, Codec]]


def _encode(message: Message, obj: Any, path: str) -> bytes:
    _require(obj, dict, path)
    out = bytearray()
    for key, value in obj.items():
        if key.startswith("x-") and message.extensions is not None:
            out += _named(_any)(message.extensions, {key: value}, path)
        elif key in message.fields:
            number, codec = message.fields[key]
            out += codec(number, value, f"{path}/{key}")
        else:
            raise ValueError(f"{path}: {key!r} has no place in the gnostic OpenAPI v2 model")
    return bytes(out)


def _require(value: Any, kind: type | tuple[type, ...], path: str) -> None:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"{path}: {value!r} is not of the type the OpenAPI v2 model expects here")


# -- wire format ------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# -- field codecs -----------------------------------------------------------------------------------------


def _string(number: int, value: Any, path: str) -> bytes:
    _require(value, str, path)
    return _length_delimited(number, value.encode()) if value else b""


def _bool(number: int, value: Any, path: str) -> bytes:
    _require(value, bool, path)
    return _varint(number << 3) + b"\x01" if value else b""


def _int64(number: int, value: Any, path: str) -> bytes:
    _require(value, int, path)
    return _varint(number << 3) + _varint(value % (1 << 64)) if value else b""


def _double(number: int, value: Any, path: str) -> bytes:
    _require(value, (int, float), path)
    return _varint(number << 3 | 1) + struct.pack("<d", value) if value else b""


def _any(number: int, value: Any, path: str) -> bytes:
    """gnostic's Any for a free-form value: field 2 (yaml) holds its text."""
    return _length_delimited(number, _length_delimited(2, orjson.dumps(value)))


def _message(message: Message) -> Codec:
    def codec(number: int, value: Any, path: str) -> bytes:
        return _length_delimited(number, _encode(message, value, path))

    return codec


def _repeated(item: Codec) -> Codec:
    def codec(number: int, value: Any, path: str) -> bytes:
        _require(value, list, path)
        # an element is written even when it is a zero value (an empty string in `required`)
        return b"".join(
            item(number, element, f"{path}/{i}") or _length_delimited(number, b"") for i, element in enumerate(value)
        )

    return codec


def _named(value_codec: Codec) -> Codec:
    """A JSON object as gnostic's ordered `repeated Named*{string name = 1; <value> value = 2}`."""

    def codec(number: int, value: Any, path: str) -> bytes:
        _require(value, dict, path)
        return b"".join(
            _length_delimited(number, _string(1, name, path) + value_codec(2, item, f"{path}/{name}"))
            for name, item in value.items()
        )

    return codec


def _named_with_extensions(entries: int, value_codec: Codec, extensions: int) -> Codec:
    """An object whose keys are entries (paths, response codes) except `x-*` keys, which are extensions."""

    def codec(number: int, value: Any, path: str) -> bytes:
        _require(value, dict, path)
        named = {k: v for k, v in value.items() if not k.startswith("x-")}
        vendor = {k: v for k, v in value.items() if k.startswith("x-")}
        payload = _named(value_codec)(entries, named, path) + _named(_any)(extensions, vendor, path)
        return _length_delimited(number, payload)

    return codec


def _wrapped(field: int, inner: Codec) -> Codec:
    """A message with one field holding the value (TypeItem, ItemsItem, Properties, Definitions, ...)."""

    def codec(number: int, value: Any, path: str) -> bytes:
        return _length_delimited(number, inner(field, value, path))

    return codec


def _oneof(choose: Callable[[Any], tuple[int, Codec]]) -> Codec:
    """A gnostic `oneof` wrapper message; `choose` picks the branch field and its codec from the value."""

    def codec(number: int, value: Any, path: str) -> bytes:
        branch, inner = choose(value)
        return _length_delimited(number, inner(branch, value, path))

    return codec


def _as_list(item: Codec) -> Codec:
    """`type` and `items` may be one value or a list; gnostic always stores the list."""

    def codec(number: int, value: Any, path: str) -> bytes:
        return _repeated(item)(number, value if isinstance(value, list) else [value], path)

    return codec


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and "$ref" in value


# -- the gnostic model (openapiv2/OpenAPIv2.proto) --------------------------------------------------------

EXTERNAL_DOCS = Message(3, {"description": (1, _string), "url": (2, _string)})
JSON_REFERENCE = Message(None, {"$ref": (1, _string), "description": (2, _string)})
XML = Message(
    6,
    {
        "name": (1, _string),
        "namespace": (2, _string),
        "prefix": (3, _string),
        "attribute": (4, _bool),
        "wrapped": (5, _bool),
    },
)

SCHEMA = Message(31, {})  # filled in below: a Schema contains Schemas
SCHEMA.fields.update(
    {
        "$ref": (1, _string),
        "format": (2, _string),
        "title": (3, _string),
        "description": (4, _string),
        "default": (5, _any),
        "multipleOf": (6, _double),
        "maximum": (7, _double),
        "exclusiveMaximum": (8, _bool),
        "minimum": (9, _double),
        "exclusiveMinimum": (10, _bool),
        "maxLength": (11, _int64),
        "minLength": (12, _int64),
        "pattern": (13, _string),
        "maxItems": (14, _int64),
        "minItems": (15, _int64),
        "uniqueItems": (16, _bool),
        "maxProperties": (17, _int64),
        "minProperties": (18, _int64),
        "required": (19, _repeated(_string)),
        "enum": (20, _repeated(_any)),
        # AdditionalPropertiesItem: oneof schema = 1, boolean = 2
        "additionalProperties": (
            21,
            _oneof(lambda v: (2, _bool) if isinstance(v, bool) else (1, _message(SCHEMA))),
        ),
        "type": (22, _wrapped(1, _as_list(_string))),  # TypeItem
        "items": (23, _wrapped(1, _as_list(_message(SCHEMA)))),  # ItemsItem
        "allOf": (24, _repeated(_message(SCHEMA))),
        "properties": (25, _wrapped(1, _named(_message(SCHEMA)))),  # Properties of NamedSchema
        "discriminator": (26, _string),
        "readOnly": (27, _bool),
        "xml": (28, _message(XML)),
        "externalDocs": (29, _message(EXTERNAL_DOCS)),
        "example": (30, _any),
    }
)

# PrimitivesItems, Header and the non-body parameter sub-schemas share these fields, in this order.
_PRIMITIVE_KEYS = (
    "type",
    "format",
    "items",
    "collectionFormat",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
)
PRIMITIVES_ITEMS = Message(18, {})
_PRIMITIVE_CODECS = {key: SCHEMA.fields[key][1] for key in _PRIMITIVE_KEYS if key in SCHEMA.fields}
_PRIMITIVE_CODECS.update(type=_string, items=_message(PRIMITIVES_ITEMS), collectionFormat=_string)


def _primitive_fields(first: int) -> dict[str, tuple[int, Codec]]:
    return {key: (first + i, _PRIMITIVE_CODECS[key]) for i, key in enumerate(_PRIMITIVE_KEYS)}


PRIMITIVES_ITEMS.fields.update(_primitive_fields(1))
HEADER = Message(19, {**_primitive_fields(1), "description": (18, _string)})


def _parameter_sub_schema(first: int) -> Message:
    """Header and path parameters (first=5), query and formData (first=6, after allowEmptyValue)."""
    fields = {"required": (1, _bool), "in": (2, _string), "description": (3, _string), "name": (4, _string)}
    if first == 6:
        fields["allowEmptyValue"] = (5, _bool)
    return Message(first + len(_PRIMITIVE_KEYS), {**fields, **_primitive_fields(first)})


# NonBodyParameter's oneof branches, by the parameter's `in`.
_NON_BODY_BRANCHES = {
    "header": (1, _message(_parameter_sub_schema(5))),
    "formData": (2, _message(_parameter_sub_schema(6))),
    "query": (3, _message(_parameter_sub_schema(6))),
    "path": (4, _message(_parameter_sub_schema(5))),
}
BODY_PARAMETER = Message(
    6,
    {
        "description": (1, _string),
        "name": (2, _string),
        "in": (3, _string),
        "required": (4, _bool),
        "schema": (5, _message(SCHEMA)),
    },
)


def _parameter_branch(value: Any) -> tuple[int, Codec]:
    """Parameter: oneof body_parameter = 1, non_body_parameter = 2 (NonBodyParameter, a oneof by `in`)."""
    where = value.get("in") if isinstance(value, dict) else None
    if where == "body":
        return 1, _message(BODY_PARAMETER)
    if where not in _NON_BODY_BRANCHES:
        raise ValueError(f"parameter {value!r}: 'in' is none of body, header, formData, query, path")
    return 2, _oneof(lambda _: _NON_BODY_BRANCHES[where])


PARAMETER = _oneof(_parameter_branch)
# ParametersItem: oneof parameter = 1, json_reference = 2.
PARAMETERS_ITEM = _oneof(lambda v: (2, _message(JSON_REFERENCE)) if _is_ref(v) else (1, PARAMETER))

RESPONSE = Message(
    5,
    {
        "description": (1, _string),
        "schema": (2, _wrapped(1, _message(SCHEMA))),  # SchemaItem's `schema` branch
        "headers": (3, _wrapped(1, _named(_message(HEADER)))),
        "examples": (4, _wrapped(1, _named(_any))),
    },
)
# ResponseValue: oneof response = 1, json_reference = 2.
RESPONSE_VALUE = _oneof(lambda v: (2, _message(JSON_REFERENCE)) if _is_ref(v) else (1, _message(RESPONSE)))
# SecurityRequirement: repeated NamedStringArray{name, StringArray{repeated string value = 1}}.
SECURITY_REQUIREMENTS = _repeated(_wrapped(1, _named(_wrapped(1, _repeated(_string)))))

OPERATION = Message(
    13,
    {
        "tags": (1, _repeated(_string)),
        "summary": (2, _string),
        "description": (3, _string),
        "externalDocs": (4, _message(EXTERNAL_DOCS)),
        "operationId": (5, _string),
        "produces": (6, _repeated(_string)),
        "consumes": (7, _repeated(_string)),
        "parameters": (8, _repeated(PARAMETERS_ITEM)),
        "responses": (9, _named_with_extensions(1, RESPONSE_VALUE, 2)),  # Responses
        "schemes": (10, _repeated(_string)),
        "deprecated": (11, _bool),
        "security": (12, SECURITY_REQUIREMENTS),
    },
)
PATH_ITEM = Message(
    10,
    {
        "$ref": (1, _string),
        **{verb: (n, _message(OPERATION)) for n, verb in enumerate(("get", "put", "post", "delete"), 2)},
        **{verb: (n, _message(OPERATION)) for n, verb in enumerate(("options", "head", "patch"), 6)},
        "parameters": (9, _repeated(PARAMETERS_ITEM)),
    },
)

# SecurityDefinitionsItem branches by scheme type (Kubernetes publishes only apiKey "BearerToken").
_SECURITY_SCHEMES = {
    "basic": (1, Message(3, {"type": (1, _string), "description": (2, _string)})),
    "apiKey": (
        2,
        Message(5, {"type": (1, _string), "name": (2, _string), "in": (3, _string), "description": (4, _string)}),
    ),
}


def _security_scheme(value: Any) -> tuple[int, Codec]:
    branch = _SECURITY_SCHEMES.get(value.get("type", "") if isinstance(value, dict) else "")
    if branch is None:
        raise ValueError(f"unsupported security definition {value!r}")
    return branch[0], _message(branch[1])


INFO = Message(
    7,
    {
        "title": (1, _string),
        "version": (2, _string),
        "description": (3, _string),
        "termsOfService": (4, _string),
        "contact": (
            5,
            _message(Message(4, {"name": (1, _string), "url": (2, _string), "email": (3, _string)})),
        ),
        "license": (6, _message(Message(3, {"name": (1, _string), "url": (2, _string)}))),
    },
)
TAG = Message(4, {"name": (1, _string), "description": (2, _string), "externalDocs": (3, _message(EXTERNAL_DOCS))})
DOCUMENT = Message(
    16,
    {
        "swagger": (1, _string),
        "info": (2, _message(INFO)),
        "host": (3, _string),
        "basePath": (4, _string),
        "schemes": (5, _repeated(_string)),
        "consumes": (6, _repeated(_string)),
        "produces": (7, _repeated(_string)),
        "paths": (8, _named_with_extensions(2, _message(PATH_ITEM), 1)),  # Paths: x-* = 1, path = 2
        "definitions": (9, _wrapped(1, _named(_message(SCHEMA)))),
        "parameters": (10, _wrapped(1, _named(PARAMETER))),
        "responses": (11, _wrapped(1, _named(_message(RESPONSE)))),
        "security": (12, SECURITY_REQUIREMENTS),
        "securityDefinitions": (13, _wrapped(1, _named(_oneof(_security_scheme)))),
        "tags": (14, _repeated(_message(TAG))),
        "externalDocs": (15, _message(EXTERNAL_DOCS)),
    },
)
