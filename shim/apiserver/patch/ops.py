"""JSON patch (RFC 6902), `application/json-patch+json`, as kube applies it: evanphx/json-patch v4.

kube-apiserver applies JSON patches with `gopkg.in/evanphx/json-patch.v4`, so its leniencies and its
messages are what clients see: `replace` of a missing object key adds it, `test` compares objects one way
only, negative array indices count from the end, and a failing operation reads
`testing value /data/a failed: test failed` or
`error in remove for path: '/data/b': Unable to remove nonexistent key: b: missing value`.
A body that is not a list of objects is a 400; an operation that does not apply is a 422.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from shim.apiserver.bodylimits import MAX_EXPANDED_SIZE, bounds_problem
from shim.apiserver.patch.document import deep_copy
from shim.apiserver.patch.errors import PatchError

MAX_OPERATIONS = 10000  # kube-apiserver's maxJSONPatchOperations
_MISSING_VALUE = "missing value"
_INVALID_INDEX = "invalid index referenced"
_ATOI = re.compile(r"[+-]?[0-9]+")
_ABSENT: Any = object()  # an operation without a `value` member


def json_patch(original: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply a list of RFC 6902 operations to a copy of `original`; kube's 400 and 422 as `PatchError`s."""
    if not isinstance(operations, list):
        raise PatchError(f"json: cannot unmarshal {_go_json_type(operations)} into Go value of type jsonpatch.Patch")
    if len(operations) > MAX_OPERATIONS:
        too_many = f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {len(operations)}"
        raise PatchError(f"Request entity too large: {too_many}", code=413)
    for operation in operations:
        if not isinstance(operation, dict):
            kind = _go_json_type(operation)
            raise PatchError(f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Operation")
    document: dict[str, Any] = deep_copy(original)
    copied = 0
    for operation in operations:
        kind = operation.get("op")
        apply = _OPERATIONS.get(kind) if isinstance(kind, str) else None
        if apply is None:
            raise PatchError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}", code=422)
        try:
            copied += apply(document, operation, MAX_EXPANDED_SIZE - copied) or 0
        except _Failed as failed:
            raise PatchError(str(failed), code=422) from None
    return document


class _Failed(Exception):
    """An operation that does not apply, with evanphx/json-patch's message."""


# -- operations ----------------------------------------------------------------------------------------------


def _add(document: dict[str, Any], operation: dict[str, Any], _budget: int) -> None:
    path = _member(operation, "path", "add operation failed to decode path", missing_only=True)
    container, key = _find(document, path)
    if container is None:
        raise _Failed(f'add operation does not apply: doc is missing path: "{path}": {_MISSING_VALUE}')
    _wrap(f"error in add for path: '{path}'", _put, container, key, _value(operation), insert=True)


def _remove(document: dict[str, Any], operation: dict[str, Any], _budget: int) -> None:
    path = _member(operation, "path", "remove operation failed to decode path", missing_only=True)
    container, key = _find(document, path)
    if container is None:
        raise _Failed(f'remove operation does not apply: doc is missing path: "{path}": {_MISSING_VALUE}')
    _wrap(f"error in remove for path: '{path}'", _delete, container, key)


def _replace(document: dict[str, Any], operation: dict[str, Any], _budget: int) -> None:
    path = _member(operation, "path", "replace operation failed to decode path")
    container, key = _find(document, path)
    if container is None:
        raise _Failed(f"replace operation does not apply: doc is missing path: {path}: {_MISSING_VALUE}")
    try:
        _get(container, key)
    except _Failed:
        raise _Failed(f"replace operation does not apply: doc is missing key: {path}: {_MISSING_VALUE}") from None
    # evanphx's own wording for a failed replace says "remove"
    _wrap(f"error in remove for path: '{path}'", _put, container, key, _value(operation), insert=False)


def _move(document: dict[str, Any], operation: dict[str, Any], _budget: int) -> None:
    source = _member(operation, "from", "move operation failed to decode from")
    container, key = _find(document, source)
    if container is None:
        raise _Failed(f"move operation does not apply: doc is missing from path: {source}: {_MISSING_VALUE}")
    value = _wrap(f"error in move for path: '{key}'", _get, container, key)
    _wrap(f"error in move for path: '{key}'", _delete, container, key)
    path = _member(operation, "path", "move operation failed to decode path")
    container, key = _find(document, path)
    if container is None:
        raise _Failed(f"move operation does not apply: doc is missing destination path: {path}: {_MISSING_VALUE}")
    _wrap(f"error in move for path: '{path}'", _put, container, key, value, insert=True)


def _test(document: dict[str, Any], operation: dict[str, Any], _budget: int) -> None:
    path = _member(operation, "path", "test operation failed to decode path")
    container, key = _find(document, path)
    if container is None:
        raise _Failed(f"test operation does not apply: is missing path: {path}: {_MISSING_VALUE}")
    actual = _wrap(f"error in test for path: '{path}'", _get, container, key)
    wanted = operation.get("value", _ABSENT)
    if actual is None:
        passed = wanted is None or wanted is _ABSENT
    else:
        passed = wanted is not _ABSENT and wanted is not None and _equal(actual, wanted)
    if not passed:
        raise _Failed(f"testing value {path} failed: test failed")


def _copy(document: dict[str, Any], operation: dict[str, Any], budget: int) -> int:
    source = _member(operation, "from", "copy operation failed to decode from")
    container, key = _find(document, source)
    if container is None:
        raise _Failed(f"copy operation does not apply: doc is missing from path: {source}: {_MISSING_VALUE}")
    value = _wrap(f"error in copy for from: '{source}'", _get, container, key)
    path = _member(operation, "path", "copy operation failed to decode path", missing_only=True)
    target, target_key = _find(document, path)
    if target is None:
        raise _Failed(f"copy operation does not apply: doc is missing destination path: {path}: {_MISSING_VALUE}")
    # copies may add up to the request cap in all (as kube bounds them): each one can double the document
    problem = bounds_problem(value, budget)
    if problem is not None:
        raise _Failed(f"Unable to copy from {source}: the copies of this patch {problem}")
    _wrap("error while adding value during copy", _put, target, target_key, deep_copy(value), insert=True)
    return len(orjson.dumps(value))


_OPERATIONS = {"add": _add, "remove": _remove, "replace": _replace, "move": _move, "test": _test, "copy": _copy}


# -- the operation's members -----------------------------------------------------------------------------------


def _member(operation: dict[str, Any], name: str, context: str, missing_only: bool = False) -> str:
    """`path` or `from` as a string; evanphx wraps a missing or undecodable one in `context`."""
    value = operation.get(name)
    if isinstance(value, str):
        return value
    if value is None:
        why = "operation missing path field" if name == "path" else "operation, missing from field"
        cause = f"{why}: {_MISSING_VALUE}"
    else:
        cause = f"json: cannot unmarshal {_go_json_type(value)} into Go value of type string"
    # add, remove and the destination of copy report every decoding problem as a bare missing value
    raise _Failed(f"{context}: {_MISSING_VALUE}" if missing_only else f"{context}: {cause}")


def _value(operation: dict[str, Any]) -> Any:
    """The `value` member (an absent one is null, as evanphx stores a nil node)."""
    return deep_copy(operation.get("value"))


# -- containers: objects and arrays along a JSON pointer -------------------------------------------------------


def _find(document: Any, path: str) -> tuple[Any, str]:
    """evanphx's findObject: the object or array holding the pointer's last token, or None."""
    tokens = path.split("/")
    if len(tokens) < 2:
        return None, ""
    current: Any = document
    for token in tokens[1:-1]:
        try:
            current = _get(current, _unescape(token))
        except _Failed:
            return None, ""
        if not isinstance(current, dict | list):
            return None, ""
    return current, _unescape(tokens[-1])


def _get(container: dict[str, Any] | list[Any], key: str) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    return container[_index(container, key, len(container))]


def _put(container: dict[str, Any] | list[Any], key: str, value: Any, insert: bool) -> None:
    if isinstance(container, dict):
        container[key] = value
    elif not insert:
        container[_index(container, key, len(container))] = value
    elif key == "-":
        container.append(value)
    else:
        if not _ATOI.fullmatch(key):
            raise _Failed(f"value was not a proper array index: '{key}': {_atoi_error(key)}")
        container.insert(_index(container, key, len(container) + 1), value)


def _delete(container: dict[str, Any] | list[Any], key: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise _Failed(f"Unable to remove nonexistent key: {key}: {_MISSING_VALUE}")
        del container[key]
    else:
        del container[_index(container, key, len(container))]


def _index(container: list[Any], key: str, size: int) -> int:
    """An array index as strconv.Atoi reads it; negative ones count from the end (evanphx's default)."""
    if not _ATOI.fullmatch(key):
        raise _Failed(_atoi_error(key))
    index = int(key)
    if index >= size or index < -size:
        raise _Failed(f"Unable to access invalid index: {index}: {_INVALID_INDEX}")
    return index + size if index < 0 else index


def _wrap(context: str, action: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return action(*args, **kwargs)
    except _Failed as failed:
        raise _Failed(f"{context}: {failed}") from None


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _atoi_error(key: str) -> str:
    return f'strconv.Atoi: parsing "{key}": invalid syntax'


def _equal(actual: Any, wanted: Any) -> bool:
    """evanphx's lazyNode.equal: objects compare the live object's keys only, scalars by JSON text."""
    if isinstance(actual, dict):
        if not isinstance(wanted, dict):
            return False
        for key, value in actual.items():
            if key not in wanted:
                return False
            if value is None and wanted[key] is None:
                continue
            if value is None or wanted[key] is None or not _equal(value, wanted[key]):
                return False
        return True
    if isinstance(actual, list):
        return isinstance(wanted, list) and len(actual) == len(wanted) and all(map(_equal, actual, wanted))
    return orjson.dumps(actual) == orjson.dumps(wanted)


def _go_json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "null"
