"""The controller manager: starts every controller over one API client and one shared informer factory."""

from __future__ import annotations

import ipaddress

from shim.client import ApiClient, SharedInformerFactory
from shim.controllers.cronjob import CronClock, CronJobController
from shim.controllers.daemonset import DaemonSetController
from shim.controllers.deployment import DeploymentController
from shim.controllers.disruption import DisruptionController
from shim.controllers.endpoints import EndpointsController
from shim.controllers.garbagecollector import GarbageCollector
from shim.controllers.job import JobController
from shim.controllers.loadbalancer import LoadBalancerController
from shim.controllers.namespace import NamespaceController
from shim.controllers.nodelifecycle import NodeLifecycleController
from shim.controllers.persistentvolume import PersistentVolumeController
from shim.controllers.replicaset import REPLICATION_CONTROLLER, ReplicaSetController
from shim.controllers.serviceaccount import RootCACertPublisher, ServiceAccountsController
from shim.controllers.statefulset import StatefulSetController
from shim.controllers.volumeprotection import PVCProtectionController, PVProtectionController
from shim.machinery.networks import LOAD_BALANCER_RANGE


class ControllerManager:
    """Owns the controllers' lifecycle (in-process under `kube-shim up`). `informers` is the process's shared
    factory; the controllers' informers start with them, and it is stopped by whoever built it.
    `load_balancer_range`: the addresses LoadBalancer Services get; `cronjob_clock_scale`: how many times as
    fast as the wall clock the CronJob controller's clock runs (1 but in tests)."""

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformerFactory,
        load_balancer_range: ipaddress.IPv4Network = LOAD_BALANCER_RANGE,
        cronjob_clock_scale: float = 1.0,
    ) -> None:
        self.client = client
        self.controllers = [
            NamespaceController(client, informers=informers),
            ReplicaSetController(client, informers),
            ReplicaSetController(client, informers, REPLICATION_CONTROLLER),
            DeploymentController(client, informers),
            JobController(client, informers),
            CronJobController(client, informers, CronClock(cronjob_clock_scale)),
            PersistentVolumeController(client, informers),
            PVCProtectionController(client, informers),
            PVProtectionController(client, informers),
            DaemonSetController(client, informers),
            DisruptionController(client, informers),
            StatefulSetController(client, informers),
            GarbageCollector(client, informers),
            EndpointsController(client, informers=informers),
            ServiceAccountsController(client, informers=informers),
            RootCACertPublisher(client, informers=informers),
            NodeLifecycleController(client, informers=informers),
            LoadBalancerController(client, informers, load_balancer_range),
        ]

    def start(self) -> None:
        for controller in self.controllers:
            controller.start()

    async def stop(self) -> None:
        for controller in self.controllers:
            await controller.stop()
        await self.client.close()
