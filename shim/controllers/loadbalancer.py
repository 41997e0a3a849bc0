"""Load-balancer addresses for `type: LoadBalancer` Services: the role a cloud controller manager's service
controller plays (`staging/src/k8s.io/cloud-provider/controllers/service`), with a local address range as the
"cloud" (like k3s' service load balancer or MetalLB).

Each LoadBalancer Service of the default class (no `spec.loadBalancerClass`) gets the first free address of
the range in `status.loadBalancer.ingress` (`ipMode: VIP`); the service proxy serves it. Which addresses are
free is read from every Service's status, so nothing is kept on the side: the API server clears the status when
a Service stops being a LoadBalancer, and a deleted Service takes its address with it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from shim.client import ApiClient, SharedInformerFactory
from shim.controllers.reconciler import Reconciler
from shim.machinery.networks import LOAD_BALANCER_RANGE
from shim.machinery.resources import SERVICES

Obj = dict[str, Any]

FULL_RETRY = 10.0  # seconds before a Service waiting for a free address looks again


class LoadBalancerController(Reconciler):
    """Assigns and keeps load-balancer addresses from `address_range`."""

    workers = 1  # one assignment at a time: two Services never pick the same free address

    def __init__(
        self,
        client: ApiClient,
        informers: SharedInformerFactory | None = None,
        address_range: ipaddress.IPv4Network = LOAD_BALANCER_RANGE,
    ) -> None:
        super().__init__(client, "service-controller", informers)
        self.address_range = address_range
        self.services = self.watch(SERVICES, self._on_service)

    async def sync(self, key: str) -> None:
        """Give Service `key` one address of the range, keeping the one it has when that is still its own."""
        service = self.services.get(key)
        if service is None or not is_ours(service):
            return
        current = ingress_ips(service)
        taken = self._taken(key)
        if len(current) == 1 and self._in_range(current[0]) and current[0] not in taken:
            return
        address = self._first_free(taken)
        if address is None:
            message = f"no free address left in the load-balancer range {self.address_range}"
            self.events.emit(service, "Warning", "SyncLoadBalancerFailed", message)
            self.queue.add_after(key, FULL_RETRY)
            return
        self.events.emit(service, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        meta = service["metadata"]
        patch = {"status": {"loadBalancer": {"ingress": [{"ip": address, "ipMode": "VIP"}]}}}
        updated = await self.client.patch(SERVICES, meta["name"], patch, meta["namespace"], subresource="status")
        self.services.observe(updated)  # the next sync must see the address taken
        self.events.emit(updated, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")

    def _taken(self, key: str) -> set[str]:
        """Addresses of the range other Services hold."""
        return {
            ip
            for other in self.services.list()
            if _key(other) != key
            for ip in ingress_ips(other)
            if self._in_range(ip)
        }

    def _first_free(self, taken: set[str]) -> str | None:
        return next((str(ip) for ip in self.address_range.hosts() if str(ip) not in taken), None)

    def _in_range(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.address_range
        except ValueError:
            return False

    async def _on_service(self, event: str, service: Obj, old: Obj | None) -> None:
        if event != "DELETED" and is_ours(service):
            self.queue.add(_key(service))
        now = [] if event == "DELETED" else ingress_ips(service)
        if any(ip not in now for ip in ingress_ips(old or {})):
            # an address is free again (deleted, or no longer a LoadBalancer): Services waiting may take it
            for waiting in self.services.list():
                if is_ours(waiting) and not ingress_ips(waiting):
                    self.queue.add(_key(waiting))


def is_ours(service: Obj) -> bool:
    """A LoadBalancer Service of the default class (another class has its own implementation)."""
    spec = service.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def ingress_ips(service: Obj) -> list[str]:
    """The IPs in the Service's `status.loadBalancer.ingress`."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    return [entry["ip"] for entry in ingress if isinstance(entry, dict) and isinstance(entry.get("ip"), str)]


def _key(service: Obj) -> str:
    return f"{service['metadata'].get('namespace')}/{service['metadata']['name']}"
