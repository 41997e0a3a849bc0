"""Namespace controller: a deleted namespace empties itself, then drops its `kubernetes` finalizer; its
status conditions say what is left and why (kube's namespaced_resources_deleter.go)."""

from __future__ import annotations

import logging
from collections import Counter

from shim.client import ApiClient, ApiException, Resource, SharedInformerFactory
from shim.client.api import Obj
from shim.client.discovery import served_resources
from shim.controllers.namespace_conditions import ContentReport, update_conditions
from shim.controllers.podutil import now
from shim.controllers.reconciler import Reconciler
from shim.machinery.resources import NAMESPACES, PODS
from shim.machinery.timefmt import format_time

log = logging.getLogger("shim.controllers.namespace")

FINALIZER = "kubernetes"
_TERMINAL_PHASES = ("Succeeded", "Failed")


class NamespaceController(Reconciler):
    """Watches namespaces; for each terminating one (key: its name), deletes its contents, then finalizes it.
    A namespace with contents left is looked at again after `retry_interval` seconds."""

    workers = 10  # kube's --concurrent-namespace-syncs

    def __init__(
        self, client: ApiClient, retry_interval: float = 1.0, informers: SharedInformerFactory | None = None
    ) -> None:
        super().__init__(client, "namespace-controller", informers)
        self.retry_interval = retry_interval
        self.watch(NAMESPACES, self._on_event)

    async def _on_event(self, kind: str, ns: Obj, old: Obj | None) -> None:
        if kind != "DELETED" and ns["metadata"].get("deletionTimestamp"):
            self.queue.add(ns["metadata"]["name"])

    async def sync(self, key: str) -> None:
        """One finalizing pass over namespace `key`; again later while contents remain."""
        if not await self.finalize(key):
            self.queue.add_after(key, self.retry_interval)

    async def finalize(self, name: str) -> bool:
        """One pass: delete what is left in the namespace and write the conditions saying what remains;
        finalize it once nothing does. True when done."""
        try:
            ns = await self.client.get(NAMESPACES, name)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        finalizers = list(ns.get("spec", {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            return True
        report = ContentReport()
        try:
            resources = await served_resources(self.client)
        except ApiException as exc:  # as kube: go on with what is known, say so in a condition
            report.discovery_error = _message(exc)
            resources = []
        for resource, verbs in resources:
            if resource.namespaced and "deletecollection" in verbs and "list" in verbs:
                await self._empty(resource, name, report)
        if update_conditions(ns.setdefault("status", {}), report, format_time(now())):
            ns = await self.client.request("PUT", f"/api/v1/namespaces/{name}/status", ns)
        if not report.done:
            return False
        ns["spec"]["finalizers"] = [f for f in finalizers if f != FINALIZER]
        await self.client.request("PUT", f"/api/v1/namespaces/{name}/finalize", ns)
        return True

    async def _empty(self, resource: Resource, namespace: str, report: ContentReport) -> None:
        """Delete every `resource` object in `namespace`; record in `report` what stays and why (kube's
        deleteAllContentForGroupVersionResource: pods may still be terminating, others only wait on finalizers)."""
        try:
            await self.client.delete_collection(resource, namespace, propagationPolicy="Background")
            items = (await self.client.list(resource, namespace)).get("items", [])
        except ApiException as exc:
            report.content_errors.append(_message(exc))
            return
        if not items:
            return
        held = Counter(f for item in items for f in item["metadata"].get("finalizers") or ())
        terminating = resource == PODS and any(_terminating_gracefully(pod) for pod in items)
        if not held and not terminating:
            gvr = f"{resource.group}/{resource.version}, Resource={resource.plural}"
            report.content_errors.append(f"unexpected items still remain in namespace: {namespace} for gvr: {gvr}")
            return
        report.remaining[f"{resource.plural}.{resource.group}"] = len(items)
        report.finalizers.update(held)


def _terminating_gracefully(pod: Obj) -> bool:
    """A pod its node still has to stop (kube's estimateGracefulTerminationForPods counts it)."""
    grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
    return pod.get("status", {}).get("phase") not in _TERMINAL_PHASES and bool(grace)


def _message(exc: ApiException) -> str:
    """The error text kube's Go client would give: the Status message."""
    return str(exc.body.get("message") or exc)
