"""Every patch kind the API server accepts, applied to plain JSON dicts.

| Content-Type                               | function                 |
|--------------------------------------------|--------------------------|
| application/json-patch+json                | `json_patch`             |
| application/merge-patch+json               | `json_merge_patch`       |
| application/strategic-merge-patch+json     | `strategic_merge_patch`  |

None of them mutates its arguments. All raise `PatchError` (with the HTTP `code` kube uses).
"""

from shim.apiserver.patch.errors import PatchError
from shim.apiserver.patch.merge import json_merge_patch
from shim.apiserver.patch.ops import json_patch
from shim.apiserver.patch.strategic import strategic_merge_patch

__all__ = ["PatchError", "json_merge_patch", "json_patch", "strategic_merge_patch"]
