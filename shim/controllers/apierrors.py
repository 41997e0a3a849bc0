"""Answers a controller may shrug off: the object it acts on is already gone."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from shim.client import ApiException


@contextlib.contextmanager
def missing_ok() -> Iterator[None]:
    """Swallow a 404 NotFound from the calls inside (deleting or patching what someone else removed)."""
    try:
        yield
    except ApiException as exc:
        if exc.status != 404:
            raise
