"""JSON patch (RFC 6902), `application/json-patch+json`, through the `jsonpatch` library."""

from typing import Any

import jsonpatch
import jsonpointer

from shim.apiserver.patch.document import deep_copy
from shim.apiserver.patch.errors import PatchError


def json_patch(original: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply a list of RFC 6902 operations; a malformed list is a 400, an operation that fails a 422."""
    if not isinstance(operations, list):
        raise PatchError(f"json: cannot unmarshal {_go_json_type(operations)} into Go value of type jsonpatch.Patch")
    try:
        patch = jsonpatch.JsonPatch(deep_copy(operations))
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, TypeError) as error:
        raise PatchError(str(error)) from error
    try:
        result = patch.apply(original)  # works on a deep copy of original
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, TypeError) as error:
        raise PatchError(str(error), code=422) from error
    if not isinstance(result, dict):
        raise PatchError("the patch replaced the object with a non-object", code=422)
    return result


def _go_json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "null"
