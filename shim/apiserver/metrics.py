"""Prometheus metrics for the API server: requests and latency by verb, resource and code."""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable, Mapping

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counters and a latency histogram, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.latency_buckets: dict[tuple[str, str], list[int]] = {}
        self.latency_sum: collections.defaultdict[tuple[str, str], float] = collections.defaultdict(float)
        self.latency_count: collections.Counter[tuple[str, str]] = collections.Counter()

    def observe(self, verb: str, resource: str, code: int, seconds: float) -> None:
        self.requests[(verb, resource, str(code))] += 1
        if verb == "WATCH":
            return  # a watch's duration is its lifetime, not a latency
        key = (verb, resource)
        buckets = self.latency_buckets.setdefault(key, [0] * (len(_BUCKETS) + 1))
        buckets[bisect.bisect_left(_BUCKETS, seconds)] += 1
        self.latency_sum[key] += seconds
        self.latency_count[key] += 1

    def render(
        self, gauges: dict[str, tuple[str, Callable[[], float]]], open_watches: Mapping[str, int] | None = None
    ) -> str:
        """The exposition text; `gauges` maps a metric name to (help, current value); `open_watches` counts the
        open watch streams by resource (kube's apiserver_longrunning_requests)."""
        lines = [
            "# HELP apiserver_request_total Requests by verb, resource and HTTP code.",
            "# TYPE apiserver_request_total counter",
        ]
        for (verb, resource, code), n in sorted(self.requests.items()):
            lines.append(f'apiserver_request_total{{verb="{verb}",resource="{resource}",code="{code}"}} {n}')
        lines += [
            "# HELP apiserver_request_duration_seconds Request latency by verb and resource.",
            "# TYPE apiserver_request_duration_seconds histogram",
        ]
        for (verb, resource), buckets in sorted(self.latency_buckets.items()):
            labels = f'verb="{verb}",resource="{resource}"'
            total = 0
            for bound, n in zip((*_BUCKETS, float("inf")), buckets, strict=True):
                total += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'apiserver_request_duration_seconds_bucket{{{labels},le="{le}"}} {total}')
            lines.append(f"apiserver_request_duration_seconds_sum{{{labels}}} {self.latency_sum[(verb, resource)]}")
            lines.append(f"apiserver_request_duration_seconds_count{{{labels}}} {self.latency_count[(verb, resource)]}")
        for name, (help_text, value) in gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value()}"]
        lines += [
            "# HELP apiserver_longrunning_requests Open long-running requests (watches) by verb and resource.",
            "# TYPE apiserver_longrunning_requests gauge",
        ]
        for resource, n in sorted((open_watches or {}).items()):
            lines.append(f'apiserver_longrunning_requests{{verb="WATCH",resource="{resource}"}} {n}')
        return "\n".join(lines) + "\n"
