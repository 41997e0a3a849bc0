"""JSON merge patch (RFC 7386), `application/merge-patch+json`."""

from typing import Any

from shim.apiserver.patch.document import deep_copy
from shim.apiserver.patch.errors import PatchError


def json_merge_patch(original: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch: objects merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        raise PatchError("Invalid JSON Patch")  # evanphx/json-patch's wording, which kube returns
    return _merge(deep_copy(original), deep_copy(patch))


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target
