"""kube-scheduler's framework in small Python: an API client that binds pending pods to nodes."""

from shim.scheduler.scheduler import Scheduler, SchedulerStats

__all__ = ["Scheduler", "SchedulerStats"]
