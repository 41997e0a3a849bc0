"""A server-side apply configuration checked as structured-merge-diff types it, with its wording.

kube converts every apply body to a typed value before merging (`typeConverter.ObjectToTyped`): a field
the schema does not declare, a value of the wrong type, or a list item that is not a valid associative
key fails the whole apply, whatever `fieldValidation` says. The messages are structured-merge-diff's
(`typed/validate.go`, `typed/helpers.go`), wrapped by the field manager (`structuredmerge.go`):

    failed to create typed patch object (default/x; /v1, Kind=ConfigMap): .extra: field not declared in schema

Values are printed as Go prints kube's `value.Value` (`%#v`: `&value.valueUnstructured{Value:5}`, `%v`:
`&{5}`), and several errors as `errors:` followed by one indented line each.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from shim.apiserver import errors
from shim.apiserver.schema import SchemaNode
from shim.apiserver.validation import QUANTITY

_STRING_FORMATS = frozenset({None, "", "byte"})  # schemaconv: other string formats are untyped scalars


def check_applied(applied: dict[str, Any], schema: SchemaNode | None, group: str, version: str, kind: str) -> None:
    """Raise kube's error for an apply configuration that does not fit the kind's schema (none: no check).

    kube answers it as a 500 without a reason (a plain error from the field manager); bad input must never
    be a 5xx here, so it is a 400 BadRequest with kube's message.
    """
    if schema is None:
        return
    found: list[str] = []
    _check(applied, schema, "", found)
    if not found:
        return
    meta = applied.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    gvk = f"{group}/{version}, Kind={kind}"
    where = f"{_text(meta.get('namespace'))}/{_text(meta.get('name'))}; {gvk}"
    detail = found[0] if len(found) == 1 else "errors:\n" + "\n".join("  " + line for line in found)
    raise errors.bad_request(f"failed to create typed patch object ({where}): {detail}")


def _check(value: Any, node: SchemaNode, path: str, found: list[str]) -> None:
    """Append `<path>: <message>` for each problem in `value`, walking as smd's validatingObjectWalker."""
    if value is None:
        return  # null is a valid value of every type
    if node.type == "array" or node.items is not None:
        _check_list(value, node, path, found)
    elif node.properties or node.additional_properties is not None:
        _check_map(value, node, path, found)
    elif node.type == "object":
        return  # free-form (RawExtension, FieldsV1): untyped, anything goes
    else:
        problem = _scalar_problem(value, node)
        if problem:
            found.append(f"{path}: {problem}")


def _check_map(value: Any, node: SchemaNode, path: str, found: list[str]) -> None:
    if not isinstance(value, dict):
        found.append(f"{path}: expected map, got {_go_v(value)}")
        return
    for key in sorted(value):
        field = node.properties.get(key) or node.additional_properties
        if field is None:
            # smd stops walking this map at its first undeclared field
            found.append(f"{path}.{key}: field not declared in schema")
            return
        _check(value[key], field, f"{path}.{key}", found)


def _check_list(value: Any, node: SchemaNode, path: str, found: list[str]) -> None:
    if not isinstance(value, list):
        found.append(f"{path}: expected list, got {_go_v(value)}")
        return
    items = node.items
    keys, associative = _associativity(node)
    seen: set[str] = set()
    for at, item in enumerate(value):
        if not associative:
            element = f"[{at}]"
        else:
            element, problem = _element(item, keys)
            if problem:
                found.append(f"{path}: element {at}: {problem}")
                return  # smd cannot name this item, so it stops checking the list
            if element in seen:
                found.append(f"{path}: duplicate entries for key {element}")
            seen.add(element)
        if items is not None:
            _check(item, items, path + element, found)


def _associativity(node: SchemaNode) -> tuple[tuple[str, ...], bool]:
    """(key fields, associative) as schemaconv reads list-type, or a merge patch strategy without one."""
    if node.list_type == "map":
        return node.list_map_keys, True
    if node.list_type == "set":
        return (), True
    if node.list_type is None and "merge" in node.patch_strategies:
        return ((node.patch_merge_key,) if node.patch_merge_key else ()), True
    return (), False


def _element(item: Any, keys: tuple[str, ...]) -> tuple[str, str | None]:
    """The path element of an associative list item (`[name="c"]`, `[="a"]`), or smd's problem with it."""
    if not keys:
        if item is None:
            return "", "associative list without keys has an element that's an explicit null"
        if isinstance(item, dict):
            return "", "associative list without keys has an element that's a map type"
        if isinstance(item, list):
            return "", "not supported: associative list with lists as elements"
        return f"[={_json(item)}]", None
    if item is None:
        return "", "associative list with keys may not have a null element"
    if not isinstance(item, dict):
        return "", "associative list with keys may not have non-map elements"
    pairs = [f"{key}={_json(item[key])}" for key in keys if key in item]
    if not pairs:
        missing = keys[0]
        return "", f'associative list with keys has an element that omits key field "{missing}"'
    return "[" + ",".join(pairs) + "]", None


def _scalar_problem(value: Any, node: SchemaNode) -> str | None:
    """smd's validateScalar for the scalar kind schemaconv gives this node."""
    kind = node.type
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected numeric (int or float), got {_go_type(value)}"
    elif kind == "string" and node.format in _STRING_FORMATS and node.name != QUANTITY:
        if not isinstance(value, str):
            return f"expected string, got &value.valueUnstructured{{Value:{_go_sharp_v(value)}}}"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return f"expected boolean, got {_go_v(value)}"
    elif isinstance(value, dict | list):
        return f"expected any scalar, got {_go_v(value)}"
    return None


# -- Go's fmt, for the values smd prints -----------------------------------------------------------------------


def _go_v(value: Any) -> str:
    """`%v` of smd's `*valueUnstructured`: `&{5}`, `&{map[a:1]}`."""
    return "&{" + go_sprint(value) + "}"


def go_sprint(value: Any) -> str:
    """Go's `%v` (and `%+v`) of a decoded JSON value: `map[a:1 b:[x y]]`, `<nil>`."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return str(value)


def _go_sharp_v(value: Any) -> str:
    """`%#v` of a decoded JSON value inside an interface: `"x"`, `map[string]interface {}{"a":1}`."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _json(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{_json(k)}:{_go_sharp_v(value[k])}" for k in sorted(value))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_sharp_v(v) for v in value) + "}"
    return str(value)


def _go_type(value: Any) -> str:
    """`%T` of a decoded JSON value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "<nil>" if value is None else "float64" if isinstance(value, float) else "int64"


def _go_float(value: float) -> str:
    """Go's `%v` of a float64 (strconv 'g', shortest): `1.5`, `5`, `1e+06`, `1e-05`."""
    if math.isinf(value) or math.isnan(value):
        return "+Inf" if value > 0 else "-Inf" if value < 0 else "NaN"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)  # digits before the decimal point
    prefix = "-" if sign else ""
    if value == 0:
        return prefix + "0"
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if point - 1 < 0 else '+'}{abs(point - 1):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
