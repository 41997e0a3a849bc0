"""Kubernetes protobuf bodies built by hand, field by field: what a client sends, without a generated codec, so
tests can also build bodies no codec would."""

from __future__ import annotations

from shim.apiserver.protobuf import MAGIC


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """A k8s protobuf body built by hand: magic + runtime.Unknown{typeMeta, raw}."""
    type_meta = field_bytes(1, api_version.encode()) + field_bytes(2, kind.encode())
    return MAGIC + field_bytes(1, type_meta) + field_bytes(2, raw)


def field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number: int, value: int) -> bytes:
    """A varint field (wire type 0); negative numbers as 64-bit two's complement, as Go writes them."""
    return varint(number << 3) + varint(value % (1 << 64))


def varint(value: int) -> bytes:
    """The base-128 varint encoding of a non-negative number."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
