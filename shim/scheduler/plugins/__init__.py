"""The default plugin set, in kube-scheduler's default order, with its default score weights."""

from __future__ import annotations

from collections.abc import Sequence

from shim.scheduler.cache import Cache
from shim.scheduler.framework import Plugin
from shim.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from shim.scheduler.plugins.node_affinity import NodeAffinity
from shim.scheduler.plugins.node_name import NodeName
from shim.scheduler.plugins.node_ports import NodePorts
from shim.scheduler.plugins.node_resources import NodeResourcesBalancedAllocation, NodeResourcesFit
from shim.scheduler.plugins.node_unschedulable import NodeUnschedulable
from shim.scheduler.plugins.pod_topology_spread import PodTopologySpread
from shim.scheduler.plugins.taint_toleration import TaintToleration

DEFAULT_WEIGHTS = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesFit": 1,
    "NodeResourcesBalancedAllocation": 1,
}


def default_plugins(cache: Cache, volume_plugins: Sequence[Plugin] = ()) -> list[Plugin]:
    """Filters run in this order and stop at the first rejection, so the order decides which reason a node
    reports (kube's default profile). `volume_plugins` (VolumeRestrictions, VolumeBinding) read the scheduler's
    storage informers (none: pods' claims are not considered)."""
    return [
        NodeUnschedulable(),
        NodeName(),
        TaintToleration(),
        NodeAffinity(),
        NodePorts(),
        NodeResourcesFit(),
        *volume_plugins,
        PodTopologySpread(),
        InterPodAffinity(cache.pods_with_required_anti_affinity, cache.pods_with_affinity),
        NodeResourcesBalancedAllocation(),
    ]
