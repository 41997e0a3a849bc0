"""Field sets in kube's `FieldsV1` form, and the set algebra server-side apply needs.

A set *is* its FieldsV1 JSON: a dict from path element to the node below it, so a set read from
`metadata.managedFields` costs nothing to decode. Path elements are upstream's (structured-merge-diff):

    f:<field>            a field of an object or a key of a map
    k:{"name":"main"}    a list-map item, keys sorted by name, values JSON-encoded as Go does
    v:"value"            a set-list item
    i:3                  an item of a positional list

An element mapped to `{}` is a member with nothing below it; one mapped to `{".": {}, ...}` is a member
with children; one mapped to `{...}` without `"."` is not a member, only the parent of members.
Sets never hold an element that is neither a member nor has members below it, and are immutable:
results share unchanged subtrees with their operands, and a union or difference that changes nothing
returns its first operand itself. Keys are kept in upstream's order ("." first, then fields, keys, values,
indexes, each sorted) so an encoded set is byte-for-byte what kube writes.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

FieldSet = dict[str, Any]  # recursively dict[str, FieldSet]

SELF = "."
_HTML_UNSAFE = re.compile("[<>&\u2028\u2029]")


def is_member(node: FieldSet | None) -> bool:
    """True when the element mapped to `node` belongs to the set itself (not only its children)."""
    return node is not None and (not node or SELF in node)


def union(a: FieldSet, b: FieldSet) -> FieldSet:
    """Every path in `a` or `b`."""
    if not b or a is b:
        return a
    if not a:
        return b
    return _union_entries(a, b)


def difference(a: FieldSet, b: FieldSet) -> FieldSet:
    """The paths of `a` that are not in `b` (a member of `b` does not take away the children of `a`)."""
    if not a or not b:
        return a
    out = _difference_entries(a, b)
    return {} if out is None else out


def intersection(a: FieldSet, b: FieldSet) -> FieldSet:
    """The paths in both `a` and `b`."""
    if not a or not b:
        return {}
    out = _intersection_entries(a, b)
    return {} if out is None else out


def members(fields: FieldSet) -> Iterator[tuple[str, ...]]:
    """Every member as a tuple of path elements, in upstream's order (a node's members, then its children)."""
    yield from _members((), fields)


def path_string(path: Iterable[str]) -> str:
    """A member as kube prints it in conflicts: `.spec.containers[name="main"].image`."""
    return "".join(_element_string(pe) for pe in path)


def key_element(pairs: Iterable[tuple[str, Any]]) -> str:
    """The `k:` element of a list-map item from its (key field, value) pairs sorted by key field."""
    return "k:{" + ",".join(f"{encode_value(name)}:{encode_value(value)}" for name, value in pairs) + "}"


def value_element(value: Any) -> str:
    """The `v:` element of a set-list item."""
    return "v:" + encode_value(value)


def encode_value(value: Any) -> str:
    """Compact JSON as Go's encoder writes it: map keys sorted, HTML characters escaped, unicode kept."""
    if value is None or isinstance(value, str | int | float):
        return _encode_scalar(value)
    return _encode(value)


@functools.lru_cache(maxsize=65536, typed=True)  # typed: True and 1 encode differently
def _encode_scalar(value: Any) -> str:
    return _encode(value)


def _encode(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return _HTML_UNSAFE.sub(_escape, text) if _HTML_UNSAFE.search(text) else text


def ordered(elements: Iterable[str]) -> list[str]:
    """Path elements in upstream's order."""
    return sorted(elements, key=element_order)


@functools.lru_cache(maxsize=65536)
def element_order(pe: str) -> tuple:
    """Sort key of a path element: "." first, then fields, keys, values, indexes."""
    prefix = pe[:2]
    if prefix == "f:":
        return (0, pe[2:])
    if prefix == "k:":
        key = json.loads(pe[2:])
        return (1, tuple((name, _value_order(key[name])) for name in sorted(key)))
    if prefix == "v:":
        return (2, _value_order(json.loads(pe[2:])))
    if prefix == "i:":
        return (3, int(pe[2:]))
    return (-1,)


def _value_order(value: Any) -> tuple:
    """Upstream's total order of values: numbers, strings, booleans, lists, maps, null."""
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, tuple(_value_order(v) for v in value))
    if isinstance(value, dict):
        return (4, tuple((k, _value_order(value[k])) for k in sorted(value)))
    return (5,)


def _union_entries(a: FieldSet, b: FieldSet) -> FieldSet:
    if b.keys() <= a.keys():
        out = a
        for pe, sb in b.items():
            sa = a[pe]
            node = _node_union(sa, sb)
            if node is not sa:
                out = dict(a) if out is a else out
                out[pe] = node
        return out
    out = {}
    for pe in ordered(a.keys() | b.keys()):
        sa, sb = a.get(pe), b.get(pe)
        out[pe] = sb if sa is None else sa if sb is None else _node_union(sa, sb)
    return out


def _node_union(a: FieldSet, b: FieldSet) -> FieldSet:
    if a is b:
        return a
    if not b:
        return _as_member(a)
    if not a:
        return _as_member(b)
    return _union_entries(a, b)


def _as_member(node: FieldSet) -> FieldSet:
    return node if not node or SELF in node else {SELF: {}, **node}


def _difference_entries(a: FieldSet, b: FieldSet) -> FieldSet | None:
    """`a` minus `b` for two nodes with entries; `a` itself when nothing goes, None when all does."""
    out = a
    for pe, sb in b.items():
        sa = a.get(pe)
        if sa is None:
            continue
        node = None if pe == SELF else _node_difference(sa, sb)
        if node is not sa:
            out = dict(a) if out is a else out
            if node is None:
                del out[pe]
            else:
                out[pe] = node
    if not out:
        return None
    return {} if len(out) == 1 and SELF in out else out


def _node_difference(a: FieldSet, b: FieldSet) -> FieldSet | None:
    if not b:  # b is a member with nothing below: only a's membership goes
        if not a:
            return None
        return {pe: sub for pe, sub in a.items() if pe != SELF} if SELF in a else a
    if not a:
        return None if SELF in b else a
    return _difference_entries(a, b)


def _intersection_entries(a: FieldSet, b: FieldSet) -> FieldSet | None:
    out = {}
    for pe, sa in a.items():
        sb = b.get(pe)
        if sb is None:
            continue
        node = {} if pe == SELF else _node_intersection(sa, sb)
        if node is not None:
            out[pe] = node
    if not out:
        return None
    return {} if len(out) == 1 and SELF in out else out


def _node_intersection(a: FieldSet, b: FieldSet) -> FieldSet | None:
    if not a:
        return {} if is_member(b) else None
    if not b:
        return {} if SELF in a else None
    return _intersection_entries(a, b)


def _members(prefix: tuple[str, ...], fields: FieldSet) -> Iterator[tuple[str, ...]]:
    for pe, sub in fields.items():
        if pe != SELF and is_member(sub):
            yield (*prefix, pe)
    for pe, sub in fields.items():
        if pe != SELF and sub and (len(sub) > 1 or SELF not in sub):
            yield from _members((*prefix, pe), sub)


def _element_string(pe: str) -> str:
    prefix, rest = pe[:2], pe[2:]
    if prefix == "f:":
        return "." + rest
    if prefix == "k:":
        key = json.loads(rest)
        return "[" + ",".join(f"{name}={_go_string(key[name])}" for name in key) + "]"
    if prefix == "v:":
        return "[=" + _go_string(json.loads(rest)) + "]"
    return "[" + rest + "]"


def _go_string(value: Any) -> str:
    """A value as structured-merge-diff's `value.ToString` prints it (strings quoted)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(_go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_go_string(value[k])}" for k in sorted(value)) + "}"
    return str(value)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"
