"""Cron schedules as kube's CronJobs read them: `robfig/cron/v3`'s `ParseStandard` and `Schedule.Next`.

kube validates `spec.schedule` with that parser and quotes its error as the validation message, and the
CronJob controller steps through start times with its `Next`. No Python library has that grammar and those
messages (croniter and cronsim accept `L`, `W`, `#` and seconds or year fields, which kube refuses, and word
their errors their own way), so this module follows the Go source: five fields (minute, hour, day of month,
month, day of week) of numbers, names (`jan`, `sun`), `*`/`?`, ranges, steps and lists; the descriptors
`@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly` and `@every <duration>`; and a
leading `TZ=`/`CRON_TZ=` zone (which kube's validation refuses in favour of `spec.timeZone`, but the parser
itself reads). Day of month and day of week match together when either is `*`, else either one matches.
Time zones come from `zoneinfo`, named and refused as Go's `time.LoadLocation` does.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from shim.machinery.gofmt import go_quote

_STAR_BIT = 1 << 63  # the field was `*` or `?` (robfig's starBit)
_YEARS_SEARCHED = 5  # Next gives up after five years without a match


class ScheduleError(ValueError):
    """A schedule (or time zone) the parser refuses; the message is the Go library's."""


class Schedule(Protocol):
    def next(self, moment: datetime) -> datetime | None:
        """The first activation strictly after `moment` (an aware datetime), None when there is none."""
        ...


def parse_standard(spec: str) -> Schedule:
    """`cron.ParseStandard`: a five-field spec or a descriptor, optionally after `TZ=zone `."""
    if not spec:
        raise ScheduleError("empty spec string")
    zone: tzinfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        if space == -1:
            raise ScheduleError(f"invalid location descriptior: {spec}")
        name = spec[spec.find("=") + 1 : space]
        try:
            zone = load_zone(name)
        except ScheduleError as exc:
            raise ScheduleError(f"provided bad location {name}: {exc}") from None
        spec = spec[space:].strip()
    if spec.startswith("@"):
        return _descriptor(spec, zone)
    fields = spec.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    minute, hour, dom, month, dow = fields
    return _spec_schedule(minute, hour, dom, month, dow, zone=zone)


def load_zone(name: str) -> tzinfo:
    """`time.LoadLocation`: "" and "UTC" are UTC, "Local" this process's zone; ScheduleError when unknown."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # a bad key, a directory, ZoneInfoNotFoundError (a KeyError)
        raise ScheduleError(f"unknown time zone {name}") from None


@functools.cache
def local_zone() -> tzinfo:
    """Go's `time.Local`: `$TZ` when set ("" is UTC), else /etc/localtime, else UTC."""
    name = os.environ.get("TZ")
    try:
        if name is not None:
            return ZoneInfo(name.removeprefix(":")) if name else UTC
        with Path("/etc/localtime").open("rb") as data:
            return ZoneInfo.from_file(data, key="Local")
    except (ValueError, OSError, KeyError):
        return UTC


def parse_go_duration(text: str) -> timedelta:
    """`time.ParseDuration`: `1h30m`, `90s`, `1.5h`, `-2m`; ScheduleError worded as Go's."""
    original, rest, negative = text, text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return timedelta(0)
    if not rest:
        raise ScheduleError(f"time: invalid duration {go_quote(original)}")
    total = 0.0
    while rest:
        match = re.match(r"(\d*)(?:\.(\d*))?", rest)
        assert match is not None  # the pattern matches the empty string
        whole, fraction = match.group(1), match.group(2)
        if not whole and not fraction:
            raise ScheduleError(f"time: invalid duration {go_quote(original)}")
        rest = rest[match.end() :]
        unit_match = re.match(r"[^0-9.]*", rest)
        assert unit_match is not None
        unit = unit_match.group(0)
        if not unit:
            raise ScheduleError(f"time: missing unit in duration {go_quote(original)}")
        if unit not in _DURATION_UNITS:
            raise ScheduleError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(original)}")
        rest = rest[len(unit) :]
        total += float(f"{whole or 0}.{fraction or 0}") * _DURATION_UNITS[unit]
        if total > _MAX_DURATION_SECONDS:  # Go's Duration is an int64 of nanoseconds
            raise ScheduleError(f"time: invalid duration {go_quote(original)}")
    return timedelta(seconds=-total if negative else total)


_MAX_DURATION_SECONDS = (2**63 - 1) / 1e9
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# -- schedules -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecSchedule:
    """A five-field schedule as bit sets (bit N: value N matches); `zone` None means this process's zone."""

    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    zone: tzinfo | None = None

    def next(self, moment: datetime) -> datetime | None:
        """`SpecSchedule.Next`: step month, day, hour and minute forward until all match (wall clock in the
        schedule's zone; days that start at 01:00 or 23:00 because of a DST change are set back to midnight)."""
        zone = self.zone or local_zone()
        t = _in(zone, moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1))
        added = False
        year_limit = t.year + _YEARS_SEARCHED
        while True:  # robfig's `goto WRAP`
            if t.year > year_limit:
                return None
            wrapped = False
            while not self.month >> t.month & 1:
                if not added:
                    added = True
                    t = _wall(zone, t.year, t.month, 1)
                t = _next_month(zone, t)
                if t.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(t):
                if not added:
                    added = True
                    t = _wall(zone, t.year, t.month, t.day)
                t = _in(zone, (t.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone))
                if t.hour != 0:
                    shift = 24 - t.hour if t.hour > 12 else -t.hour
                    t = _add(t, timedelta(hours=shift))
                if t.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self.hour >> t.hour & 1:
                if not added:
                    added = True
                    t = _wall(zone, t.year, t.month, t.day, t.hour)
                t = _add(t, timedelta(hours=1))
                if t.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self.minute >> t.minute & 1:
                if not added:
                    added = True
                    t = _add(t, -timedelta(seconds=t.second))
                t = _add(t, timedelta(minutes=1))
                if t.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            if t.second != 0:  # the seconds field of a standard spec is 0
                if not added:
                    added = True
                t = _add(t, timedelta(seconds=60 - t.second))
                continue
            return t

    def _day_matches(self, t: datetime) -> bool:
        dom = bool(self.dom >> t.day & 1)
        dow = bool(self.dow >> ((t.weekday() + 1) % 7) & 1)
        if self.dom & _STAR_BIT or self.dow & _STAR_BIT:
            return dom and dow
        return dom or dow


@dataclass(frozen=True)
class EverySchedule:
    """`@every <duration>` (robfig's ConstantDelaySchedule): whole seconds, at least one."""

    delay: timedelta

    def next(self, moment: datetime) -> datetime | None:
        try:
            return moment.replace(microsecond=0) + self.delay
        except OverflowError:  # past year 9999: Go's time would go on, a datetime cannot
            return None


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int]


_MINUTES = _Bounds(0, 59, {})
_HOURS = _Bounds(0, 23, {})
_DOM = _Bounds(1, 31, {})
_MONTHS = _Bounds(
    1,
    12,
    {
        m: i + 1
        for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
    },
)
_DOW = _Bounds(0, 6, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])})


def _spec_schedule(minute: str, hour: str, dom: str, month: str, dow: str, zone: tzinfo | None) -> SpecSchedule:
    return SpecSchedule(
        minute=_field(minute, _MINUTES),
        hour=_field(hour, _HOURS),
        dom=_field(dom, _DOM),
        month=_field(month, _MONTHS),
        dow=_field(dow, _DOW),
        zone=zone,
    )


def _descriptor(spec: str, zone: tzinfo | None) -> Schedule:
    fields = _DESCRIPTORS.get(spec)
    if fields is not None:
        return _spec_schedule(*fields, zone=zone)
    if spec.startswith("@every "):
        try:
            delay = parse_go_duration(spec.removeprefix("@every "))
        except ScheduleError as exc:
            raise ScheduleError(f"failed to parse duration {spec}: {exc}") from None
        return EverySchedule(max(timedelta(seconds=int(delay.total_seconds())), timedelta(seconds=1)))
    raise ScheduleError(f"unrecognized descriptor: {spec}")


_DESCRIPTORS = {
    "@yearly": ("0", "0", "1", "1", "*"),
    "@annually": ("0", "0", "1", "1", "*"),
    "@monthly": ("0", "0", "1", "*", "*"),
    "@weekly": ("0", "0", "*", "*", "0"),
    "@daily": ("0", "0", "*", "*", "*"),
    "@midnight": ("0", "0", "*", "*", "*"),
    "@hourly": ("0", "*", "*", "*", "*"),
}


def _field(text: str, bounds: _Bounds) -> int:
    """getField: the bits of a comma-separated list of ranges (empty pieces skipped, as strings.FieldsFunc)."""
    bits = 0
    for expr in (piece for piece in text.split(",") if piece):
        bits |= _range(expr, bounds)
    return bits


def _range(expr: str, bounds: _Bounds) -> int:
    """getRange: `*`, `N`, `N-M`, each optionally `/step` (`N/step` runs to the field's maximum)."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = bounds.low, bounds.high, _STAR_BIT
    else:
        start = _int_or_name(low_and_high[0], bounds.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], bounds.names)
        else:
            raise ScheduleError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if len(low_and_high) == 1:
            end = bounds.high
        if step > 1:
            extra = 0
    else:
        raise ScheduleError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise ScheduleError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise ScheduleError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ScheduleError(f"step of range should be a positive number: {expr}")
    bits = 0
    for value in range(start, end + 1, step):
        bits |= 1 << value
    return bits | extra


def _int_or_name(expr: str, names: dict[str, int]) -> int:
    named = names.get(expr.lower())
    return named if named is not None else _atoi(expr)


def _atoi(expr: str) -> int:
    """mustParseInt: strconv.Atoi (an optional sign, decimal digits, int64) and no negatives."""
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise ScheduleError(f"failed to parse int from {expr}: strconv.Atoi: parsing {go_quote(expr)}: invalid syntax")
    number = int(expr)
    if not -(2**63) <= number < 2**63:
        raise ScheduleError(
            f"failed to parse int from {expr}: strconv.Atoi: parsing {go_quote(expr)}: value out of range"
        )
    if number < 0:
        raise ScheduleError(f"negative number ({number}) not allowed: {expr}")
    return number


# -- Go's time arithmetic ----------------------------------------------------------------------------------------


def _in(zone: tzinfo, moment: datetime) -> datetime:
    """`t.In(zone)`: the same instant, its fields read in `zone`."""
    return moment.astimezone(UTC).astimezone(zone)


def _wall(zone: tzinfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """`time.Date(..., zone)`: a wall-clock time in `zone` (a time inside a DST gap moves past it, as Go's)."""
    return _in(zone, datetime(year, month, day, hour, minute, second, tzinfo=zone))


def _next_month(zone: tzinfo, moment: datetime) -> datetime:
    """`t.AddDate(0, 1, 0)`: the same wall-clock day and time a month on (a day past the month's end runs
    into the next one, as Go normalizes it)."""
    first = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, moment.hour, moment.minute)
    wall = first + timedelta(days=moment.day - 1, seconds=moment.second)
    return _in(zone, wall.replace(tzinfo=zone))


def _add(moment: datetime, delta: timedelta) -> datetime:
    """`t.Add(d)`: elapsed time, not wall-clock time (an hour added across a DST change is an hour)."""
    zone = moment.tzinfo
    assert zone is not None
    return _in(zone, moment.astimezone(UTC) + delta)
