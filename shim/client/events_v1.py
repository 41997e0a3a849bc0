"""Recording events.k8s.io/v1 Events as client-go's `tools/events` does (the recorder kube-scheduler uses).

Each event carries `eventTime` (microseconds), `reportingController`, `reportingInstance`
(`<controller>-<hostname>`), an `action`, the object it is about (`regarding`) and, for a pod preempted for
another, the other (`related`); no `source`, `count` or first/last timestamps. Repeats are isomorphic when
action, reason, reportingController, regarding and related match (the note does not count, so the first
note stays): the first repeat patches `series` {count: 2, lastObservedTime} onto the event; later ones only
count in memory until the series is written again, when it ends (6 minutes without a repeat) or every
30 minutes while it lasts (`eventBroadcasterImpl.recordToSink`, `finishSeries`, `refreshExistingEventSeries`).
"""

from __future__ import annotations

import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from shim.client.api import ApiClient, ApiException, Obj
from shim.client.events import object_reference
from shim.machinery.resources import EVENTS_V1
from shim.machinery.timefmt import format_micro_time

log = logging.getLogger("shim.client.events_v1")

CACHE_SIZE = 4096  # client-go's maxLruCacheEntries bound, reused for the series cache
FINISH_AFTER = 6 * 60.0  # client-go's finishTime: a series without a repeat for this long has ended
REFRESH_EVERY = 30 * 60.0  # client-go's refreshTime: running series are written this often
_REFERENCE_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion")


@dataclass
class _Series:
    """An isomorphic event already written, and how often it has been seen since."""

    event: Obj  # as written (name and namespace address it)
    seen: float  # monotonic time of the last sighting
    count: int = 1
    last_observed: str = ""
    written: int = 1  # the count the API holds


class SeriesRecorder:
    """`await recorder.event(pod, None, "Warning", "FailedScheduling", "Scheduling", "0/3 nodes ...")`.

    Call it from one task at a time (the scheduler's event sender), and call `tick()` now and then so that
    ended and long-running series get their counts written. Recording never raises: events are best effort.
    """

    def __init__(self, client: ApiClient, controller: str, instance: str | None = None) -> None:
        self.client = client
        self.controller = controller
        self.instance = instance or f"{controller}-{socket.gethostname()}"
        self._series: OrderedDict[Hashable, _Series] = OrderedDict()
        self._refreshed = time.monotonic()

    async def event(self, regarding: Obj, related: Obj | None, type_: str, reason: str, action: str, note: str) -> None:
        """Record that `action` on `regarding` happened for `reason`."""
        try:
            about = object_reference(related) if related else None
            await self._record(object_reference(regarding), about, type_, reason, action, note)
        except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
            log.debug("event %s about %s not recorded: %s", reason, regarding.get("metadata", {}).get("name"), exc)
        except Exception:  # an event must never break the caller's loop
            log.exception("event %s not recorded", reason)

    async def tick(self) -> None:
        """Write the final count of ended series (forgetting them and old singletons), and every
        REFRESH_EVERY the count of every running series."""
        now = time.monotonic()
        refresh = now - self._refreshed >= REFRESH_EVERY
        if refresh:
            self._refreshed = now
        for key, series in list(self._series.items()):
            ended = now - series.seen >= FINISH_AFTER
            try:
                if series.count > 1 and (ended or refresh) and series.count != series.written:
                    await self._write_series(series)
            except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
                log.debug("event series %s not written: %s", series.event["metadata"]["name"], exc)
                continue  # kept, and tried again next time
            if ended:
                del self._series[key]

    async def _record(
        self, regarding: Obj, related: Obj | None, type_: str, reason: str, action: str, note: str
    ) -> None:
        key = (action, reason, _frozen(regarding), _frozen(related) if related else None)
        now = datetime.now(UTC)
        series = self._series.get(key)
        if series is not None:
            series.count += 1
            series.seen = time.monotonic()
            series.last_observed = format_micro_time(now)
            self._series.move_to_end(key)
            if series.written == 1:  # the first repeat is written at once, later ones when the series ends
                await self._write_series(series)
            return
        namespace = regarding.get("namespace") or "default"
        body: Obj = {
            "metadata": {"name": f"{regarding.get('name')}.{time.time_ns():x}", "namespace": namespace},
            "eventTime": format_micro_time(now),
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": action,
            "reason": reason,
            "regarding": regarding,
            "note": note,
            "type": type_,
        }
        if related is not None:
            body["related"] = related
        created = await self.client.create(EVENTS_V1, body, namespace)
        self._series[key] = _Series(created, time.monotonic())
        while len(self._series) > CACHE_SIZE:
            self._series.popitem(last=False)

    async def _write_series(self, series: _Series) -> None:
        """Patch the series onto the event; create it again (with the series) when it is gone."""
        meta = series.event["metadata"]
        patch = {"series": {"count": series.count, "lastObservedTime": series.last_observed}}
        try:
            await self.client.patch(EVENTS_V1, meta["name"], patch, meta["namespace"])
        except ApiException as exc:
            if exc.status != 404:
                raise
            again = {k: v for k, v in series.event.items() if k != "metadata"}
            again["metadata"] = {"name": meta["name"], "namespace": meta["namespace"]}
            await self.client.create(EVENTS_V1, {**again, **patch}, meta["namespace"])
        series.written = series.count


def _frozen(reference: Obj) -> tuple[object, ...]:
    return tuple(reference.get(k) for k in _REFERENCE_FIELDS)
