"""The API objects a pod refers to (ConfigMaps, Secrets, Services), fetched at most once per sync."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from shim.client import ApiClient, ApiException, Resource
from shim.machinery.resources import CONFIGMAPS, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, SECRETS

Obj = dict[str, Any]


ServiceLister = Callable[[str], list[Obj]]


class ReferencedObjects:
    """A per-sync memo over GETs: a pod naming one ConfigMap in five places costs one request."""

    def __init__(self, client: ApiClient, namespace: str, services: ServiceLister) -> None:
        self.client = client
        self.namespace = namespace
        self._objects: dict[tuple[str, str, str], Obj | None] = {}
        self._services = services

    async def config_map_data(self, name: str) -> dict[str, str] | None:
        """A ConfigMap's `data` plus its decoded `binaryData`; None when it does not exist."""
        cm = await self._get(CONFIGMAPS, self.namespace, name)
        if cm is None:
            return None
        binary = {k: base64.b64decode(v).decode(errors="replace") for k, v in (cm.get("binaryData") or {}).items()}
        return {**(cm.get("data") or {}), **binary}

    async def config_map_files(self, name: str) -> dict[str, bytes] | None:
        """A ConfigMap's keys as file contents (binaryData kept as bytes); None when it does not exist."""
        cm = await self._get(CONFIGMAPS, self.namespace, name)
        if cm is None:
            return None
        files = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return files

    async def secret_files(self, name: str) -> dict[str, bytes] | None:
        """A Secret's decoded `data` (and `stringData`, should a server leave it); None when it does not exist."""
        secret = await self._get(SECRETS, self.namespace, name)
        if secret is None:
            return None
        files = {k: v.encode() for k, v in (secret.get("stringData") or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()})
        return files

    async def claim(self, name: str) -> Obj | None:
        """A PersistentVolumeClaim of the pod's namespace; None when it does not exist."""
        return await self._get(PERSISTENT_VOLUME_CLAIMS, self.namespace, name)

    async def persistent_volume(self, name: str) -> Obj | None:
        """A PersistentVolume; None when it does not exist."""
        return await self._get(PERSISTENT_VOLUMES, "", name)

    async def services(self, namespace: str) -> list[Obj]:
        """The namespace's services, from the node's service informer (kubelet's service lister)."""
        return self._services(namespace)

    async def _get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        key = (resource.plural, namespace, name)
        if key not in self._objects:
            try:
                self._objects[key] = await self.client.get(resource, name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._objects[key] = None
        return self._objects[key]
