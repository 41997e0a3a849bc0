"""The service proxy's loop against the real API server when the kernel refuses: it says so to /readyz (its
client's health) and keeps retrying, never dying."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from shim.client import ApiClient, SharedInformerFactory, load_kubeconfig
from shim.client.health import HealthRegistry
from shim.proxy.proxy import ProxyConfig, ServiceProxy
from shim.proxy.rules import Ranges
from tests.cluster import Cluster
from tests.controllerkit import eventually

RANGES = Ranges(
    service_cidr=ipaddress.IPv4Network("10.96.0.0/12"),
    load_balancer_range=ipaddress.IPv4Network("10.112.0.0/24"),
    pod_cidr=ipaddress.IPv4Network("10.244.0.0/16"),
)


async def test_a_proxy_that_cannot_program_the_kernel_reports_it_and_keeps_trying(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # neither `ip` nor `nft`: every attempt fails, nothing is changed
    access = load_kubeconfig(cluster.kubeconfig)
    async with ApiClient(access) as shared:
        informers = SharedInformerFactory(shared)
        client = ApiClient(access, user_agent="kube-proxy")
        client.health = HealthRegistry(unhealthy_after=0.0)
        proxy = ServiceProxy(client, informers, ProxyConfig("proxy-test-node", "proxytest0000", RANGES))
        proxy.start()
        try:
            await eventually(lambda: client.health.problems(), "the proxy reporting its failure")
            [problem] = client.health.problems()
            assert problem.startswith("service proxy of node proxy-test-node: failing for")
            assert "KernelError" in problem and "No such file or directory" in problem

            def failures() -> int:
                return sum("service proxy of node proxy-test-node failed" in r.getMessage() for r in caplog.records)

            with caplog.at_level(logging.ERROR, logger="shim.supervise"):
                await eventually(lambda: failures() >= 2, "a second attempt after the back-off")
        finally:
            await proxy.stop()
            await informers.stop()
