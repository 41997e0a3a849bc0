"""The controller manager: starts every controller over one API client."""

from __future__ import annotations

from shim.client import ApiClient
from shim.controllers.namespace import NamespaceController


class ControllerManager:
    """Owns the controllers' lifecycle (in-process under `kube-shim up`)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.controllers = [NamespaceController(client)]

    def start(self) -> None:
        for controller in self.controllers:
            controller.start()

    async def stop(self) -> None:
        for controller in self.controllers:
            await controller.stop()
        await self.client.close()
