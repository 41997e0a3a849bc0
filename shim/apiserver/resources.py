"""Every resource the API server serves: one row each, as kube-apiserver 1.33's discovery lists them."""

from __future__ import annotations

import ipaddress

from shim.apiserver.kinds.apps import DeploymentStrategy, ReplicaSetStrategy
from shim.apiserver.kinds.batch import CronJobStrategy, JobStrategy
from shim.apiserver.kinds.controllerrevisions import ControllerRevisionStrategy
from shim.apiserver.kinds.core import (
    ConfigMapStrategy,
    EndpointsStrategy,
    EventStrategy,
    NamespaceStrategy,
    NodeStrategy,
    SecretStrategy,
    ServiceAccountStrategy,
)
from shim.apiserver.kinds.daemonsets import DaemonSetStrategy
from shim.apiserver.kinds.endpointslices import EndpointSliceStrategy
from shim.apiserver.kinds.events_v1 import EventsV1Conversion, EventsV1Strategy
from shim.apiserver.kinds.leases import LeaseStrategy
from shim.apiserver.kinds.poddisruptionbudgets import PodDisruptionBudgetStrategy
from shim.apiserver.kinds.pods import PodStrategy
from shim.apiserver.kinds.priorityclasses import PriorityClassStrategy
from shim.apiserver.kinds.replicationcontrollers import ReplicationControllerStrategy
from shim.apiserver.kinds.service import ServiceStrategy
from shim.apiserver.kinds.service_allocation import SERVICE_CIDR, ServiceAllocator
from shim.apiserver.kinds.statefulsets import StatefulSetStrategy
from shim.apiserver.kinds.storage import (
    PersistentVolumeClaimStrategy,
    PersistentVolumeStrategy,
    StorageClassStrategy,
)
from shim.apiserver.registry import ALL_VERBS, Registry, ResourceType

_NO_DELETECOLLECTION = tuple(v for v in ALL_VERBS if v != "deletecollection")


def build_registry(service_cidr: ipaddress.IPv4Network = SERVICE_CIDR) -> Registry:
    """The served resources, core group first (discovery keeps this order).

    A row names the kind and its strategy; the strategy (`shim/apiserver/kinds/`) owns everything else about it:
    defaults, validation, admission, Table printing, field selectors, subresources, short names, categories.
    """
    R = ResourceType  # a table reads better with a short constructor
    return Registry([
        R("", "v1", "Namespace", "namespaces", "namespace", False, NamespaceStrategy(), verbs=_NO_DELETECOLLECTION),
        R("", "v1", "Pod", "pods", "pod", True, PodStrategy()),
        R("", "v1", "Service", "services", "service", True, ServiceStrategy(ServiceAllocator(service_cidr)),
          kube_etcd_prefix="services/specs"),
        R("", "v1", "Endpoints", "endpoints", "endpoints", True, EndpointsStrategy(),
          deprecation="v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
          kube_etcd_prefix="services/endpoints"),
        R("", "v1", "ConfigMap", "configmaps", "configmap", True, ConfigMapStrategy()),
        R("", "v1", "Secret", "secrets", "secret", True, SecretStrategy()),
        R("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ServiceAccountStrategy()),
        R("", "v1", "Node", "nodes", "node", False, NodeStrategy(), kube_etcd_prefix="minions"),
        R("", "v1", "Event", "events", "event", True, EventStrategy()),
        R("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", False,
          PersistentVolumeStrategy()),
        R("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", True,
          PersistentVolumeClaimStrategy()),
        R("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", True,
          ReplicationControllerStrategy(), kube_etcd_prefix="controllers"),
        R("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", True,
          ControllerRevisionStrategy()),
        R("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, DaemonSetStrategy()),
        R("apps", "v1", "Deployment", "deployments", "deployment", True, DeploymentStrategy()),
        R("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ReplicaSetStrategy()),
        R("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, StatefulSetStrategy()),
        R("batch", "v1", "CronJob", "cronjobs", "cronjob", True, CronJobStrategy()),
        R("batch", "v1", "Job", "jobs", "job", True, JobStrategy()),
        R("coordination.k8s.io", "v1", "Lease", "leases", "lease", True, LeaseStrategy()),
        R("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True,
          EndpointSliceStrategy()),
        R("events.k8s.io", "v1", "Event", "events", "event", True, EventsV1Strategy(),
          stored_as=("", "events"), conversion=EventsV1Conversion()),
        R("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", True,
          PodDisruptionBudgetStrategy()),
        R("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", False,
          PriorityClassStrategy()),
        R("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", False,
          StorageClassStrategy()),
    ])  # fmt: skip
