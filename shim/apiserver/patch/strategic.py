"""Strategic merge patch, `application/strategic-merge-patch+json`.

A port of the apply side of apimachinery's `pkg/util/strategicpatch/patch.go` with the options the
API server uses (`MergeParallelList`, `IgnoreUnmatchedNulls`). The schema says how each field
merges:
- maps merge recursively and `null` deletes a key;
- lists with `x-kubernetes-patch-strategy: merge` merge their elements by
  `x-kubernetes-patch-merge-key` (containers by `name`, ports by `containerPort`), lists of
  scalars with that strategy (finalizers) are unioned; every other list is replaced;
- `x-kubernetes-patch-strategy: replace` replaces a map, `retainKeys` lets `$retainKeys` clear it.
Directives: `$patch: replace|delete` on a map or list element (`merge` is refused, as upstream),
`$setElementOrder/<list>`, `$retainKeys`, `$deleteFromPrimitiveList/<list>`.
Fields the schema does not know merge like a JSON merge patch. Element order follows upstream:
`$setElementOrder` first, then the order in the patch, then the order in the live list. Null
fields are dropped from the result, as kube's round trip through its Go types does.
"""

from __future__ import annotations

from typing import Any

from shim.apiserver.patch.document import deep_copy
from shim.apiserver.patch.errors import PatchError
from shim.apiserver.schema import SchemaNode

DIRECTIVE = "$patch"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"
RETAIN_KEYS = "$retainKeys"

# mergepatch's sentinel errors, with the HTTP status kube-apiserver gives each
BAD_PRIMITIVE_LIST = ("invalid patch format of primitive list", 400)
BAD_RETAIN_KEYS = ("invalid patch format of retainKeys", 400)
BAD_SET_ELEMENT_ORDER = ("invalid patch format of setElementOrder list", 400)
NO_LIST_OF_LISTS = ("lists of lists are not supported", 422)


def strategic_merge_patch(original: dict[str, Any], patch: Any, schema: SchemaNode | None) -> dict[str, Any]:
    """Apply a strategic merge patch to `original` using `schema` (from `schema_for`) for the merge rules."""
    if not isinstance(patch, dict):
        raise PatchError(f"json: cannot unmarshal {_go_kind(patch)} into Go value of type map[string]interface {{}}")
    merged = _merge_map(deep_copy(original), deep_copy(patch), schema)
    # kube round-trips the result through its Go types, which drops every null field
    return _discard_nulls(merged)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: SchemaNode | None) -> dict[str, Any]:
    if DIRECTIVE in patch:
        return _map_directive(patch)
    _apply_retain_keys(original, patch)
    _apply_set_element_orders(original, patch, schema)
    for key, patch_value in patch.items():
        is_delete_list = key.startswith(DELETE_FROM_PRIMITIVE_LIST)
        if is_delete_list:
            key = _directive_target(key, DELETE_FROM_PRIMITIVE_LIST, BAD_PRIMITIVE_LIST)
        if patch_value is None:
            original.pop(key, None)
            continue
        current = original.get(key, _MISSING)
        if current is _MISSING or _kind(current) != _kind(patch_value):
            if not is_delete_list:
                _set_without_directives(original, key, patch_value)
            continue
        field = schema.field(key) if schema is not None else None
        if isinstance(current, dict):
            if _strategy(field) == "replace":
                original[key] = patch_value
            else:
                original[key] = _merge_map(current, patch_value, field)
        elif isinstance(current, list):
            original[key] = _merge_list_field(current, patch_value, field, is_delete_list)
        else:
            _set_without_directives(original, key, patch_value)
    return original


def _map_directive(patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch[DIRECTIVE]
    if directive == "replace":
        del patch[DIRECTIVE]
        return patch
    if directive == "delete":
        return {}
    raise PatchError(f"unknown patch type: {_go_format(directive)} in map: {_go_format(patch)}", 500)


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    retained = patch.pop(RETAIN_KEYS)
    if not isinstance(retained, list):
        raise PatchError(*BAD_RETAIN_KEYS)
    for key, value in patch.items():
        skip = value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER))
        if not skip and key not in retained:
            raise PatchError(*BAD_RETAIN_KEYS)
    for key in [k for k in original if k not in retained]:
        del original[key]


def _apply_set_element_orders(original: dict[str, Any], patch: dict[str, Any], schema: SchemaNode | None) -> None:
    """Merge each list named by a `$setElementOrder/<list>` together with its order, then drop both."""
    for directive in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise _bad_arg_type([], order)
        key = _directive_target(directive, SET_ELEMENT_ORDER, BAD_SET_ELEMENT_ORDER)
        in_original, in_patch = key in original, key in patch
        original_list = _as_list(original.get(key, []))
        patch_list = _as_list(patch.get(key, []))
        field = schema.field(key) if schema is not None else None
        merge_key = field.patch_merge_key if field is not None else None
        _check_order_matches_patch(patch_list, order, merge_key)
        if in_original and in_patch:
            merged = _merge_list_field(original_list, patch_list, field, is_delete_list=False)
        elif in_patch:
            merged = _remove_directives(patch_list)[0]
        elif in_original:
            merged = original_list
        else:
            continue
        patch_items, server_only = _partition(merged, order, merge_key)
        kind = _element_kind(original_list, patch_list)
        original[key] = _normalize_order(patch_items, server_only, order, original_list, merge_key, kind)
        patch.pop(key, None)


def _check_order_matches_patch(patch_list: list[Any], order: list[Any], merge_key: str | None) -> None:
    """The patch list must be a subsequence of `$setElementOrder` (deletions and directives aside)."""
    if not order or not patch_list:
        return
    kept = [item for item in patch_list if not _is_delete(item)] if merge_key else patch_list
    at_patch = at_order = 0
    while at_patch < len(kept) and at_order < len(order):
        if _has_directive(kept[at_patch]):
            at_patch += 1
            continue
        if _merge_key_equal(kept[at_patch], order[at_order], merge_key):
            at_patch += 1
        at_order += 1
    if at_patch < len(kept):
        raise PatchError(
            f"The order in patch list:\n{_go_format(patch_list)}\n doesn't match {SET_ELEMENT_ORDER} list:\n"
            f"{_go_format(order)}\n",
            500,
        )


def _merge_list_field(
    original: list[Any], patch: list[Any], field: SchemaNode | None, is_delete_list: bool
) -> list[Any]:
    if _strategy(field) == "merge" or is_delete_list:
        merge_key = field.patch_merge_key if field is not None else None
        items = field.items if field is not None else None
        return _merge_list(original, patch, items, merge_key, is_delete_list)
    return patch


def _merge_list(
    original: list[Any],
    patch: list[Any],
    items: SchemaNode | None,
    merge_key: str | None,
    is_delete_list: bool,
) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        if is_delete_list:
            return [item for item in original if not _contains(patch, item)]
        merged = _dedupe([*original, *patch])
    else:
        if not merge_key:
            raise PatchError("cannot merge lists without merge key", 500)
        original, patch = _apply_element_directives(original, patch, merge_key)
        merged = _merge_elements(original, patch, merge_key, items)
    patch_items, server_only = _partition(merged, patch, merge_key)
    return _normalize_order(patch_items, server_only, patch, original, merge_key, kind)


def _apply_element_directives(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Handle `$patch` elements: `delete` removes matching elements, `replace` makes the patch the list."""
    plain = []
    replace = False
    for element in patch:
        if DIRECTIVE not in element:
            plain.append(element)
            continue
        directive = element[DIRECTIVE]
        if directive == "delete":
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
            original = [e for e in original if not _same(_map_or_fail(e).get(merge_key, _MISSING), element[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch", 500)
        else:
            raise PatchError(f"unknown patch type: {_go_format(directive)} in map: {_go_format(element)}", 500)
    return (plain, []) if replace else (original, plain)


def _merge_elements(original: list[Any], patch: list[Any], merge_key: str, items: SchemaNode | None) -> list[Any]:
    merged = list(original)
    for element in patch:
        if merge_key not in element:
            raise _no_merge_key(element, merge_key)
        at = _find(merged, merge_key, element[merge_key])
        if at is None:
            merged.append(element)
        else:
            merged[at] = _merge_map(merged[at], element, items)
    return merged


# ----------------------------------------------------------------------------------------------
# Ordering: `$setElementOrder` or patch order first, then the live order (upstream's algorithm).


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str | None,
    kind: str,
) -> list[Any]:
    patch_items = _sort_by(patch_items, patch_order, merge_key, kind)
    server_only = _sort_by(server_only, server_order, merge_key, kind)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, kind)


def _sort_by(items: list[Any], order: list[Any], merge_key: str | None, kind: str) -> list[Any]:
    to_delete: list[Any] = []
    if kind == "map":
        for element in [*items, *order]:
            if merge_key not in _map_or_fail(element):
                raise _no_merge_key(element, merge_key or "")
        to_delete = [e for e in items if _is_delete(e)]
        items = [e for e in items if not _is_delete(e)]
    items = list(items)

    def less(left: Any, right: Any) -> bool:
        at_left, at_right = _index(order, left, merge_key, kind), _index(order, right, merge_key, kind)
        return at_left < at_right if at_left >= 0 and at_right >= 0 else True

    # Go sort.SliceStable is an insertion sort on short lists; its comparator calls unknown items "less"
    for i in range(1, len(items)):
        j = i
        while j > 0 and less(items[j], items[j - 1]):
            items[j], items[j - 1] = items[j - 1], items[j]
            j -= 1
    return items + to_delete


def _merge_sorted(
    left: list[Any], right: list[Any], server_order: list[Any], merge_key: str | None, kind: str
) -> list[Any]:
    """Insert the server-only items (left) among the patch items (right), keeping both relative orders."""
    merged = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            merged.append(right[j])
            j += 1
        elif j >= len(right):
            merged.append(left[i])
            i += 1
        else:
            at_left = _index(server_order, left[i], merge_key, kind)
            at_right = _index(server_order, right[j], merge_key, kind)
            if at_left >= 0 and at_right >= 0 and at_left < at_right:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
    return merged


def _index(items: list[Any], value: Any, merge_key: str | None, kind: str) -> int:
    if kind == "map":
        wanted = value.get(merge_key) if isinstance(value, dict) else None
        for at, item in enumerate(items):
            if _same(item.get(merge_key) if isinstance(item, dict) else None, wanted):
                return at
        return -1
    for at, item in enumerate(items):
        if _same(item, value):
            return at
    return -1


def _partition(merged: list[Any], by: list[Any], merge_key: str | None) -> tuple[list[Any], list[Any]]:
    """Split `merged` into the items present in `by` and the others (server-only)."""
    present: list[Any] = []
    others: list[Any] = []
    for item in merged:
        if merge_key:
            element = _map_or_fail(item)
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
            found = _find(by, merge_key, element[merge_key]) is not None
        else:
            found = _contains(by, item)
        (present if found else others).append(item)
    return present, others


# ----------------------------------------------------------------------------------------------
# Small helpers


class _Missing:
    pass


_MISSING: Any = _Missing()


def _strategy(field: SchemaNode | None) -> str:
    """The field's patch strategy besides retainKeys: "merge", "replace" or ""."""
    if field is None:
        return ""
    strategies = [s for s in field.patch_strategies if s != "retainKeys"]
    return strategies[0] if strategies else ""


def _directive_target(key: str, prefix: str, error: tuple[str, int]) -> str:
    head, _, target = key.partition("/")
    if head != prefix or not target:
        raise PatchError(*error)
    return target


def _kind(value: Any) -> str:
    return "map" if isinstance(value, dict) else "list" if isinstance(value, list) else "scalar"


def _element_kind(*lists: list[Any]) -> str:
    """The common kind of the elements of `lists`: "map" or "scalar"; mixed kinds or nesting are errors."""
    seen: type | None = None
    for values in lists:
        for value in values:
            if isinstance(value, list):
                raise PatchError(*NO_LIST_OF_LISTS)
            if seen is None:
                seen = type(value)
            elif type(value) is not seen:
                raise PatchError(f"list element types are not identical: {_go_format(list(lists))}", 500)
    if seen is None:
        raise PatchError("no elements in any of the given slices", 500)
    return "map" if seen is dict else "scalar"


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _bad_arg_type([], value)
    return value


def _map_or_fail(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_arg_type({}, value)
    return value


def _same(left: Any, right: Any) -> bool:
    """Go's interface equality: same JSON type and value (so 1, 1.0 and true differ)."""
    return type(left) is type(right) and left == right


def _contains(values: list[Any], wanted: Any) -> bool:
    return any(_same(value, wanted) for value in values)


def _dedupe(values: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for value in values:
        if not _contains(unique, value):
            unique.append(value)
    return unique


def _find(elements: list[Any], merge_key: str, wanted: Any) -> int | None:
    for at, element in enumerate(elements):
        if _same(_map_or_fail(element).get(merge_key, _MISSING), wanted):
            return at
    return None


def _merge_key_equal(left: Any, right: Any, merge_key: str | None) -> bool:
    if not merge_key:
        return _same(left, right)
    left, right = _map_or_fail(left), _map_or_fail(right)
    for element in (left, right):
        if merge_key not in element:
            raise _no_merge_key(element, merge_key)
    return _same(left[merge_key], right[merge_key])


def _is_delete(element: Any) -> bool:
    return _map_or_fail(element).get(DIRECTIVE) == "delete"


def _has_directive(element: Any) -> bool:
    return isinstance(element, dict) and DIRECTIVE in element


def _discard_nulls(value: Any) -> Any:
    """Drop `null` map values at every depth."""
    if isinstance(value, dict):
        return {k: _discard_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_discard_nulls(v) for v in value]
    return value


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """Strip directives from a value being added; a map that is itself a directive is dropped (False)."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        kept = {}
        for key, child in value.items():
            child, keep = _remove_directives(child)
            if keep:
                kept[key] = child
        return kept, True
    if isinstance(value, list):
        return [child for child, keep in map(_remove_directives, value) if keep], True
    return value, True


def _set_without_directives(target: dict[str, Any], key: str, value: Any) -> None:
    value, keep = _remove_directives(value)
    if keep:
        target[key] = value
    else:
        target.pop(key, None)


def _no_merge_key(element: Any, merge_key: str) -> PatchError:
    return PatchError(f"map: {_go_format(element)} does not contain declared merge key: {merge_key}", 500)


def _bad_arg_type(expected: Any, actual: Any) -> PatchError:
    return PatchError(f"expected a {_go_type(expected)}, but received a {_go_type(actual)}", 500)


def _go_type(value: Any) -> str:
    if value is None:
        return "%!s(<nil>)"  # what Go prints for reflect.TypeOf(nil)
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return {bool: "bool", int: "int64", float: "float64", str: "string"}[type(value)]


def _go_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "bool", int: "number", float: "number"}.get(type(value), "null")


def _go_format(value: Any) -> str:
    """A JSON value as Go's `%v` prints it (`map[name:a]`, `[1 2]`, `<nil>`), for upstream's messages."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
