"""The controller manager: starts every controller over one API client."""

from __future__ import annotations

from shim.client import ApiClient
from shim.controllers.deployment import DeploymentController
from shim.controllers.endpoints import EndpointsController
from shim.controllers.garbagecollector import GarbageCollector
from shim.controllers.namespace import NamespaceController
from shim.controllers.nodelifecycle import NodeLifecycleController
from shim.controllers.replicaset import ReplicaSetController
from shim.controllers.serviceaccount import RootCACertPublisher, ServiceAccountsController


class ControllerManager:
    """Owns the controllers' lifecycle (in-process under `kube-shim up`)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.controllers = [
            NamespaceController(client),
            ReplicaSetController(client),
            DeploymentController(client),
            GarbageCollector(client),
            EndpointsController(client),
            ServiceAccountsController(client),
            RootCACertPublisher(client),
            NodeLifecycleController(client),
        ]

    def start(self) -> None:
        for controller in self.controllers:
            controller.start()

    async def stop(self) -> None:
        for controller in self.controllers:
            await controller.stop()
        await self.client.close()
