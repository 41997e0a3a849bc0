"""kube's time formats from the one shared helper: metav1.Time, metav1.MicroTime, and "now" in each."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from shim.machinery.timefmt import (
    format_micro_time,
    format_time,
    normalize_time,
    now_rfc3339,
    now_rfc3339_micro,
    parse_time,
)


def test_now_is_utc_to_the_second_or_the_microsecond() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now_rfc3339())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", now_rfc3339_micro())
    assert abs(parse_time(now_rfc3339()) - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_moment_in_another_zone_is_written_in_utc() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-01-02T01:04:05Z"
    assert format_micro_time(moment) == "2026-01-02T01:04:05.678901Z"
    assert parse_time("2026-01-02T01:04:05Z") == moment.replace(microsecond=0)


def test_normalize_time_rewrites_rfc3339_and_leaves_the_rest_for_validation() -> None:
    assert normalize_time("2026-01-02T03:04:05.5+02:00", micro=False) == "2026-01-02T01:04:05Z"
    assert normalize_time("2026-01-02T03:04:05+02:00", micro=True) == "2026-01-02T01:04:05.000000Z"
    assert normalize_time("2026-01-02T03:04:05", micro=False) == "2026-01-02T03:04:05"  # no zone: not kube's
    assert normalize_time("yesterday", micro=False) == "yesterday"
