"""Helpers on JSON documents shared by the patch kinds."""

from typing import Any

import orjson


def deep_copy(value: Any) -> Any:
    """An independent copy of a JSON value (an orjson round trip: much faster than copy.deepcopy)."""
    return orjson.loads(orjson.dumps(value))
