"""Kubernetes' time formats: `metav1.Time` (RFC 3339, UTC, whole seconds, `Z`) and `metav1.MicroTime` (six decimals).

One place for "now" as the API writes it, so the server and every component stamp objects alike.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # metav1.Time
MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # metav1.MicroTime


def format_time(moment: datetime) -> str:
    """A `metav1.Time`: the moment in UTC, to the second, with `Z`."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def format_micro_time(moment: datetime) -> str:
    """A `metav1.MicroTime`: the moment in UTC with six fractional digits and `Z`."""
    return moment.astimezone(UTC).strftime(MICRO_TIME_FORMAT)


def now_rfc3339() -> str:
    """The current time as a `metav1.Time` (creationTimestamp, lastTransitionTime, ...)."""
    return datetime.now(UTC).strftime(TIME_FORMAT)


def now_rfc3339_micro() -> str:
    """The current time as a `metav1.MicroTime` (a Lease's renewTime, an event's eventTime)."""
    return datetime.now(UTC).strftime(MICRO_TIME_FORMAT)


@functools.lru_cache(maxsize=8192)
def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp (`Z` or an offset) as an aware datetime; ValueError if it is none.

    Cached: controllers compare the same few timestamps of every object on every sync.
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def normalize_time(text: str, micro: bool) -> str:
    """A timestamp as kube writes it back: UTC, `Z`, whole seconds (`metav1.Time`) or six decimals
    (`metav1.MicroTime`); text that is no RFC 3339 time with a zone stays for validation to judge."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    if parsed.tzinfo is None:
        return text
    return format_micro_time(parsed) if micro else format_time(parsed)
