"""PATCH bodies: decode by Content-Type and apply JSON patch, merge patch or strategic merge patch."""

from __future__ import annotations

from typing import Any

from shim.apiserver import bodylimits, codec, errors
from shim.apiserver.patch import PatchError, json_merge_patch, json_patch, strategic_merge_patch
from shim.apiserver.registry import ResourceType
from shim.apiserver.schema import schema_for


def parse_patch(kind: str, body: bytes) -> Any:
    """The patch document; 415 for a patch type kube does not know."""
    if kind == codec.APPLY_PATCH:
        patch = codec.parse_json_or_yaml(body)
    elif kind in (codec.JSON_PATCH, codec.MERGE_PATCH, codec.STRATEGIC_PATCH):
        patch = codec.parse_json(body)
    else:
        raise codec.unsupported_media_type(kind, codec.PATCH_TYPES)
    if kind == codec.JSON_PATCH:
        if not isinstance(patch, list):
            raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    elif kind != codec.STRATEGIC_PATCH and not isinstance(patch, dict):  # strategic says it in Go's words
        raise errors.bad_request("the body of a merge or apply patch must be a JSON object")
    return patch


def apply_patch(rt: ResourceType, kind: str, old: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The patched object; a patch that cannot apply is a 422 (kube's wording) or a 400 for bad syntax."""
    try:
        if kind == codec.JSON_PATCH:
            new = json_patch(old, patch)
        elif kind == codec.MERGE_PATCH:
            new = json_merge_patch(old, patch)
        else:
            new = strategic_merge_patch(old, patch, schema_for(rt.group, rt.version, rt.kind))
    except PatchError as exc:
        if exc.code == 422:
            raise unprocessable(str(exc)) from None
        raise errors.ApiError(exc.code, None, str(exc)) from None
    if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
        raise errors.ApiError(422, "Invalid", "the patched object must be an object with metadata")
    # each patch is within bounds, but patches add up (a JSON patch can add a subtree below another)
    problem = bodylimits.bounds_problem(new, bodylimits.MAX_EXPANDED_SIZE)
    if problem is not None:
        raise errors.ApiError(422, "Invalid", f"the patched object {problem}")
    return new


def unprocessable(why: str) -> errors.ApiError:
    """A patch that does not apply, as kube answers it (`NewGenericServerResponse(422, ...)`): a fixed
    message, and the patch library's own words as the one cause."""
    return errors.ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": why}]},
    )
