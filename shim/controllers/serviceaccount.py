"""What every namespace of a real cluster holds: a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap.

Two controllers, as in kube-controller-manager: `ServiceAccountsController` (`pkg/controller/serviceaccount`)
creates the `default` account in every active namespace and again when it is deleted; `RootCACertPublisher`
(`pkg/controller/certificates/rootcacertpublisher`) writes the cluster CA into `kube-root-ca.crt` (key
`ca.crt`) in every namespace, and rewrites it when it is deleted or changed.
"""

from __future__ import annotations

import copy
from typing import Any

from shim.client import ApiClient, ApiException, Resource, SharedInformerFactory
from shim.controllers.reconciler import Reconciler
from shim.machinery.resources import CONFIGMAPS, NAMESPACES, SERVICE_ACCOUNTS

Obj = dict[str, Any]

ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as "
    "the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters."
)


class ServiceAccountsController(Reconciler):
    """Ensures the named service accounts (default: `default`) exist in every active namespace."""

    workers = 1  # kube's --concurrent-serviceaccount-syncs

    def __init__(
        self,
        client: ApiClient,
        account_names: tuple[str, ...] = ("default",),
        informers: SharedInformerFactory | None = None,
    ) -> None:
        super().__init__(client, "service-account-controller", informers)
        self.account_names = account_names
        self.namespaces = self.watch(NAMESPACES, self._on_namespace)
        self.accounts = self.watch(SERVICE_ACCOUNTS, self._on_account)

    async def sync(self, key: str) -> None:
        """Create the missing accounts of namespace `key`, unless it is going away."""
        namespace = self.namespaces.get(key)
        if namespace is None or _terminating(namespace):
            return
        for name in self.account_names:
            if self.accounts.get(f"{key}/{name}") is None:
                account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
                await _create_unless_gone(self.client, SERVICE_ACCOUNTS, account, key)

    async def _on_namespace(self, event: str, namespace: Obj, old: Obj | None) -> None:
        if event != "DELETED":
            self.queue.add(namespace["metadata"]["name"])

    async def _on_account(self, event: str, account: Obj, old: Obj | None) -> None:
        if event == "DELETED" and account["metadata"]["name"] in self.account_names:
            self.queue.add(account["metadata"]["namespace"])


class RootCACertPublisher(Reconciler):
    """Publishes `root_ca` (PEM; default: the CA the client trusts, as kube-controller-manager falls back to
    its kubeconfig's) as ConfigMap `kube-root-ca.crt` in every namespace. Without a CA it does nothing."""

    workers = 1  # kube's --concurrent-root-ca-cert-publisher-syncs

    def __init__(
        self, client: ApiClient, root_ca: bytes | None = None, informers: SharedInformerFactory | None = None
    ) -> None:
        super().__init__(client, "root-ca-cert-publisher", informers)
        ca = root_ca or client.access.ca_pem
        self.root_ca = ca.decode() if ca else None
        if self.root_ca:
            self.namespaces = self.watch(NAMESPACES, self._on_namespace)
            self.config_maps = self.watch(CONFIGMAPS, self._on_config_map)

    async def sync(self, key: str) -> None:
        """Make namespace `key`'s `kube-root-ca.crt` hold exactly the CA (its other keys are dropped)."""
        if not self.root_ca:
            return
        namespace = self.namespaces.get(key)
        if namespace is None or _terminating(namespace):
            return
        data = {ROOT_CA_KEY: self.root_ca}
        current = self.config_maps.get(f"{key}/{ROOT_CA_CONFIG_MAP}")
        if current is None:
            config_map = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIG_MAP, "annotations": {DESCRIPTION_ANNOTATION: ROOT_CA_DESCRIPTION}},
                "data": data,
            }
            await _create_unless_gone(self.client, CONFIGMAPS, config_map, key)
            return
        annotations = current["metadata"].get("annotations") or {}
        if current.get("data") == data and DESCRIPTION_ANNOTATION in annotations:
            return
        updated = copy.deepcopy(current)
        updated["data"] = data
        updated["metadata"]["annotations"] = {**annotations, DESCRIPTION_ANNOTATION: ROOT_CA_DESCRIPTION}
        await self.client.replace(CONFIGMAPS, updated, key)

    async def _on_namespace(self, event: str, namespace: Obj, old: Obj | None) -> None:
        if event != "DELETED":
            self.queue.add(namespace["metadata"]["name"])

    async def _on_config_map(self, event: str, config_map: Obj, old: Obj | None) -> None:
        if config_map["metadata"]["name"] != ROOT_CA_CONFIG_MAP:
            return
        self.queue.add(config_map["metadata"]["namespace"])


def _terminating(namespace: Obj) -> bool:
    return (
        bool(namespace["metadata"].get("deletionTimestamp"))
        or (namespace.get("status") or {}).get("phase") == "Terminating"
    )


async def _create_unless_gone(client: ApiClient, resource: Resource, obj: Obj, namespace: str) -> None:
    """Create `obj`; already there (a stale cache) and a terminating or deleted namespace are not errors."""
    try:
        await client.create(resource, obj, namespace)
    except ApiException as exc:
        if exc.status not in (403, 404, 409):
            raise
