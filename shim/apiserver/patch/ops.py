"""JSON patch (RFC 6902), `application/json-patch+json`, through the `jsonpatch` library."""

from typing import Any

import jsonpatch
import jsonpointer
import orjson

from shim.apiserver.bodylimits import MAX_EXPANDED_SIZE, bounds_problem
from shim.apiserver.patch.document import deep_copy
from shim.apiserver.patch.errors import PatchError

_FAILURES = (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, TypeError)


def json_patch(original: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply a list of RFC 6902 operations; a malformed list is a 400, an operation that fails a 422."""
    if not isinstance(operations, list):
        raise PatchError(f"json: cannot unmarshal {_go_json_type(operations)} into Go value of type jsonpatch.Patch")
    operations = deep_copy(operations)
    try:
        jsonpatch.JsonPatch(operations)  # every operation well-formed before any is applied
    except _FAILURES as error:
        raise PatchError(str(error)) from error
    result: Any = deep_copy(original)
    copied = 0
    try:
        for operation in operations:
            if operation.get("op") == "copy":
                copied += _copy_size(result, operation["from"], MAX_EXPANDED_SIZE - copied)
            result = jsonpatch.JsonPatch([operation]).apply(result, in_place=True)
    except _FAILURES as error:
        raise PatchError(str(error), code=422) from error
    if not isinstance(result, dict):
        raise PatchError("the patch replaced the object with a non-object", code=422)
    return result


def _copy_size(document: Any, source: str, budget: int) -> int:
    """The size a `copy` adds; copies may add up to the request cap in all (as kube bounds them), since each
    one can double the document and a short patch could otherwise grow it without limit."""
    value = jsonpointer.resolve_pointer(document, source, None)
    problem = bounds_problem(value, budget)
    if problem is not None:
        raise PatchError(f"Unable to copy from {source}: the copies of this patch {problem}", code=422)
    return len(orjson.dumps(value))


def _go_json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "null"
