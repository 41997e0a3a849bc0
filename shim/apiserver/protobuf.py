"""Decode `application/vnd.kubernetes.protobuf` request bodies into the JSON dicts the API works with.

kubectl >= 1.32 sends typed creates (`kubectl create deployment|configmap|...`) as protobuf. A body is the
magic `k8s\\0` followed by a `runtime.Unknown` envelope: typeMeta{apiVersion, kind}, raw (the typed message),
contentEncoding, contentType. The typed message is decoded by hand from the field table in
`protobuf_schema.json` (generated from upstream .proto files by `protobuf_schema_gen.py`).

The result is what a JSON client would have sent: Kubernetes JSON names, inline structs flattened, times as
RFC3339 strings, IntOrString as int or str, Quantity as str, []byte as base64, embedded JSON parsed. gogo
protobuf writes non-pointer fields even when empty, so singular empty strings, empty bytes and zero times
are dropped (as `omitempty` would). A false or 0 is dropped too unless the field is required (no
`omitempty`: PriorityClass.value) or one of the pointer fields where zero means something (replicas: 0,
runAsUser: 0): on the wire a pointer set to 0 looks like a non-pointer zero, and keeping every zero
(`stdin: false`, `hostPort: 0`) makes a template differ from the same one sent as JSON.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from shim.machinery.timefmt import format_micro_time, format_time

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ProtobufDecodeError(ValueError):
    """The body is not a Kubernetes protobuf object this server can decode (malformed, or an unknown kind)."""


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON form of one protobuf-encoded Kubernetes object, with apiVersion and kind first."""
    if not body.startswith(MAGIC):
        raise ProtobufDecodeError("protobuf body does not start with the k8s\\0 magic prefix")
    envelope = _read_fields(memoryview(body)[len(MAGIC) :], _UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if envelope.get("contentEncoding"):
        raise ProtobufDecodeError(f"unsupported protobuf content encoding {envelope['contentEncoding']!r}")
    if envelope.get("contentType", CONTENT_TYPE) != CONTENT_TYPE:
        raise ProtobufDecodeError(f"unsupported protobuf content type {envelope['contentType']!r}")
    message = _schema().kinds.get(api_version, {}).get(kind)
    if message is None:
        raise ProtobufDecodeError(f"no protobuf decoding for kind {kind!r} in {api_version!r}")
    raw = base64.b64decode(envelope.get("raw", ""))  # the envelope was decoded to JSON form, bytes as base64
    return {"apiVersion": api_version, "kind": kind, **_read_fields(memoryview(raw), message)}


class _Field(NamedTuple):
    name: str
    type: str
    cardinality: str  # "one", "many", "map" or "inline"


class _Schema(NamedTuple):
    kinds: dict[str, dict[str, str]]
    messages: dict[str, dict[int, _Field]]


@functools.cache
def _schema() -> _Schema:
    data = json.loads(Path(__file__).with_name("protobuf_schema.json").read_text())
    messages = {
        full: {int(number): _Field(*field) for number, field in fields.items()}
        for full, fields in data["messages"].items()
    }
    return _Schema(data["kinds"], messages)


def _read_fields(data: memoryview, message: str) -> dict[str, Any]:
    """One message's fields in JSON form; unknown field numbers are skipped, as the real API server does."""
    fields = _schema().messages[message]
    out: dict[str, Any] = {}
    for number, wire_type, raw in _wire_fields(data):
        field = fields.get(number)
        if field is None:
            continue
        if field.cardinality == "map":
            key, value = _read_map_entry(raw, wire_type, field)
            out.setdefault(field.name, {})[key] = value
        elif field.cardinality == "many" and wire_type == 2 and field.type in _PACKABLE:
            out.setdefault(field.name, []).extend(_read_packed(raw, field.type))
        elif field.cardinality == "many":
            out.setdefault(field.name, []).append(_read_value(raw, wire_type, field.type))
        elif field.cardinality == "inline":
            out.update(_read_value(raw, wire_type, field.type))
        else:
            out[field.name] = _read_value(raw, wire_type, field.type)
    converter = _CONVERTERS.get(message)
    if converter is not None:
        return converter(out)
    unset_when_zero = _omitempty_scalars(message)
    return {
        name: value
        for name, value in out.items()
        if value not in ("", None)
        and not (name in unset_when_zero and (value is False or (type(value) is int and value == 0)))
    }


# Pointer fields of the decoded kinds whose zero value is meaningful (Go `*int32`, `*bool`, `*IntOrString`)
_POINTER_SCALARS = frozenset({
    "replicas", "revisionHistoryLimit", "progressDeadlineSeconds", "terminationGracePeriodSeconds",
    "activeDeadlineSeconds", "runAsUser", "runAsGroup", "fsGroup", "runAsNonRoot", "privileged",
    "readOnlyRootFilesystem", "allowPrivilegeEscalation", "automountServiceAccountToken", "enableServiceLinks",
    "shareProcessNamespace", "hostUsers", "setHostnameAsFQDN", "defaultMode", "mode", "optional", "immutable",
    "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes", "completions", "parallelism",
    "ttlSecondsAfterFinished", "suspend", "startingDeadlineSeconds", "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit", "priority", "deletionGracePeriodSeconds", "expirationSeconds", "tolerationSeconds",
    "allocateLoadBalancerNodePorts", "maxUnavailable", "maxSurge", "minAvailable", "minDomains",
    "manualSelector", "podFailurePolicy", "sizeLimit",
})  # fmt: skip


@functools.cache
def _omitempty_scalars(message: str) -> frozenset[str]:
    """Fields of `message` whose zero value JSON would omit: optional, not a pointer, not required."""
    from shim.apiserver.schema import schema_named

    node = schema_named("io.k8s." + message.removeprefix("k8s.io."))
    required = node.required if node is not None else frozenset()
    return frozenset(
        f.name
        for f in _schema().messages[message].values()
        if f.cardinality == "one" and f.type in _VARINT and f.name not in required and f.name not in _POINTER_SCALARS
    )


def _read_map_entry(raw: Any, wire_type: int, field: _Field) -> tuple[str, Any]:
    """A map entry is a nested message with the key as field 1 and the value as field 2."""
    _expect(wire_type, 2, field.name)
    key, value = "", None
    for number, entry_wire_type, entry_raw in _wire_fields(raw):
        if number == 1:
            key = _read_value(entry_raw, entry_wire_type, "string")
        elif number == 2:
            value = _read_value(entry_raw, entry_wire_type, field.type)
    if value is None:  # an absent value is the zero value; every map value type is length-delimited
        value = _read_value(memoryview(b""), 2, field.type)
    return key, value


def _read_value(raw: Any, wire_type: int, type_name: str) -> Any:
    """One scalar or message value; `raw` is an int for the varint wire type, else the bytes."""
    if type_name in _VARINT:
        _expect(wire_type, 0, type_name)
        return _VARINT[type_name](raw)
    _expect(wire_type, 2, type_name)
    if type_name == "string":
        try:
            return bytes(raw).decode()
        except UnicodeDecodeError as err:
            raise ProtobufDecodeError(f"string field is not UTF-8: {err}") from None
    if type_name == "bytes":
        return base64.b64encode(raw).decode()
    return _read_fields(raw, type_name)


def _read_packed(raw: memoryview, type_name: str) -> list[Any]:
    values: list[Any] = []
    pos = 0
    while pos < len(raw):
        value, pos = _varint(raw, pos)
        values.append(_VARINT[type_name](value))
    return values


def _wire_fields(data: memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) for each field; the value is an int or a memoryview slice."""
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        value: int | memoryview
        if number == 0:
            raise ProtobufDecodeError("protobuf field number 0")
        if wire_type == 0:
            value, pos = _varint(data, pos)
        elif wire_type == 1:
            value, pos = int.from_bytes(_take(data, pos, 8), "little"), pos + 8
        elif wire_type == 5:
            value, pos = int.from_bytes(_take(data, pos, 4), "little"), pos + 4
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            value, pos = _take(data, pos, length), pos + length
        else:
            raise ProtobufDecodeError(f"unsupported protobuf wire type {wire_type} (field {number})")
        yield number, wire_type, value


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while pos < len(data) and shift < 70:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise ProtobufDecodeError("truncated or overlong protobuf varint")


def _take(data: memoryview, pos: int, length: int) -> memoryview:
    if pos + length > len(data):
        raise ProtobufDecodeError("protobuf field runs past the end of its message")
    return data[pos : pos + length]


def _expect(wire_type: int, wanted: int, what: str) -> None:
    if wire_type != wanted:
        raise ProtobufDecodeError(f"wire type {wire_type} where {what} needs {wanted}")


def _signed(value: int) -> int:
    """int32/int64 are sent as two's complement in 64 bits (negative int32s are sign-extended)."""
    return value - (1 << 64) if value >= 1 << 63 else value


# with string and bytes: every scalar k8s uses
_VARINT: dict[str, Callable[[int], Any]] = {"bool": bool, "int32": _signed, "int64": _signed}
_PACKABLE = frozenset(_VARINT)


# Types whose JSON form is not an object of their protobuf fields (custom MarshalJSON in Go).
def _time(fields: dict[str, Any]) -> str | None:
    if not fields.get("seconds") and not fields.get("nanos"):
        return None  # metav1.Time marshals the zero time as an empty message; JSON has it as null
    return format_time(_moment(fields))


def _micro_time(fields: dict[str, Any]) -> str | None:
    if not fields.get("seconds") and not fields.get("nanos"):
        return None
    return format_micro_time(_moment(fields))


def _moment(fields: dict[str, Any]) -> datetime:
    seconds, nanos = fields.get("seconds", 0), fields.get("nanos", 0)
    try:
        return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise ProtobufDecodeError(f"timestamp out of range: {fields}") from None


def _int_or_string(fields: dict[str, Any]) -> int | str:
    return fields.get("strVal", "") if fields.get("type") == 1 else fields.get("intVal", 0)


def _quantity(fields: dict[str, Any]) -> str | None:
    return fields.get("string") or None


def _embedded_json(field: str) -> Callable[[dict[str, Any]], Any]:
    """RawExtension.raw and FieldsV1.Raw carry JSON text; the JSON form embeds it as a value."""

    def convert(fields: dict[str, Any]) -> Any:
        raw = base64.b64decode(fields.get(field, ""))
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise ProtobufDecodeError(f"embedded {field} is not JSON: {err}") from None

    return convert


def _string_list(fields: dict[str, Any]) -> list[str]:
    return fields.get("items", [])


_CONVERTERS = {
    _META + "Time": _time,
    _META + "MicroTime": _micro_time,
    _META + "FieldsV1": _embedded_json("Raw"),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _embedded_json("raw"),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _quantity,
    "k8s.io.api.authentication.v1.ExtraValue": _string_list,
    "k8s.io.api.authorization.v1.ExtraValue": _string_list,
}
