"""Assumed pods never leak a node's capacity: a binding that fails, with whatever exception, forgets the pod
and retries it after a back-off; an assumption the watch never confirms expires after a TTL (kube's
scheduler cache)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from shim.client import ApiClient, ClusterAccess, load_kubeconfig
from shim.machinery.resources import NODES, PODS
from shim.scheduler import Scheduler
from shim.scheduler.cache import Cache
from shim.scheduler.info import PodInfo
from tests.cluster import Cluster
from tests.scheduler_objects import new_pod, node, pod
from tests.workloads import watch_until

SCHEDULER = "test-scheduler"
TTL = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache_with_node(clock: Clock) -> Cache:
    cache = Cache(assumed_ttl=TTL, clock=clock)
    cache.set_node(node("only", cpu="2"))
    return cache


# -- the cache -------------------------------------------------------------------------------------------------


def test_an_assumed_pod_never_confirmed_expires_a_ttl_after_its_binding() -> None:
    clock = Clock()
    cache = cache_with_node(clock)
    cache.assume(PodInfo(pod("a", cpu="1500m")), "only")
    clock.now += 10 * TTL
    assert cache.expire_assumed() == [], "a binding still under way never expires (kube waits for it)"
    cache.finish_binding("default/a")
    clock.now += TTL - 1
    assert cache.expire_assumed() == []
    assert cache.nodes["only"].requested.milli_cpu == 1500
    clock.now += 1
    [expired] = cache.expire_assumed()
    assert expired.key == "default/a"
    assert not cache.is_assumed("default/a") and cache.pod("default/a") is None
    assert "only" in cache.nodes and cache.nodes["only"].requested.milli_cpu == 0, "its room is free again"


def test_a_confirmed_pod_does_not_expire() -> None:
    clock = Clock()
    cache = cache_with_node(clock)
    cache.assume(PodInfo(pod("a", cpu="1")), "only")
    cache.finish_binding("default/a")
    cache.set_pod(PodInfo(pod("a", cpu="1", node_name="only")))  # the watch confirms the binding
    clock.now += 10 * TTL
    assert cache.expire_assumed() == []
    assert cache.nodes["only"].requested.milli_cpu == 1000


def test_a_forgotten_pod_frees_its_room_at_once() -> None:
    cache = cache_with_node(Clock())
    cache.assume(PodInfo(pod("a", cpu="1")), "only")
    cache.forget("default/a")
    assert cache.nodes["only"].requested.milli_cpu == 0 and not cache.is_assumed("default/a")


# -- a real cluster, and a binding answered with garbage ---------------------------------------------------------


@contextlib.asynccontextmanager
async def faulty_proxy(upstream: ClusterAccess, broken_bindings: int = 0, lost_bindings: int = 0) -> AsyncIterator[str]:
    """A plain-HTTP proxy to the API server on a free loopback port (its URL yielded) that answers the first
    `broken_bindings` binding requests with a 500 whose body is not JSON, as a broken middlebox would, and the
    first `lost_bindings` ones with a 201 without passing them on (a success the watch never confirms)."""
    broken, lost = [broken_bindings], [lost_bindings]
    session = aiohttp.ClientSession(
        base_url=upstream.server,
        connector=aiohttp.TCPConnector(ssl=upstream.ssl_context()),
        timeout=aiohttp.ClientTimeout(total=None),
    )

    async def forward(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path.endswith("/binding") and broken[0] > 0:
            broken[0] -= 1
            return web.Response(status=500, text="<html>502 upstream went away</html>", content_type="text/html")
        if request.method == "POST" and request.path.endswith("/binding") and lost[0] > 0:
            lost[0] -= 1
            return web.json_response(
                {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}, status=201
            )
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type", "Accept")}
        body = await request.read()
        async with session.request(request.method, request.rel_url, data=body or None, headers=headers) as resp:
            answer = web.StreamResponse(status=resp.status)
            answer.content_type = resp.content_type
            await answer.prepare(request)
            async for chunk in resp.content.iter_any():
                await answer.write(chunk)
            await answer.write_eof()
            return answer

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", forward)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await session.close()


@contextlib.asynccontextmanager
async def scheduler_behind(
    cluster: Cluster, faults: dict[str, int], **options: Any
) -> AsyncIterator[tuple[ApiClient, Scheduler]]:
    """Node `small` (1 CPU, 1 pod) and our scheduler (`options`), which reaches the API server through
    `faulty_proxy(**faults)`; yields (a direct client, the synced scheduler)."""
    access = load_kubeconfig(cluster.kubeconfig)
    async with ApiClient(access) as api, faulty_proxy(access, **faults) as proxy_url:
        await api.create(NODES, node("small", cpu="1", pods=1))
        scheduler = Scheduler(ApiClient(ClusterAccess(server=proxy_url, token=access.token)), SCHEDULER, **options)
        scheduler.start()
        try:
            await scheduler.synced()
            yield api, scheduler
        finally:
            await scheduler.stop()


async def bound_to_small(api: ApiClient, what: str) -> dict[str, Any]:
    """The pod on node `small`, once there is one."""
    return await watch_until(
        api,
        PODS,
        "default",
        lambda pods: next((p for p in pods if p["spec"].get("nodeName") == "small"), None),
        30.0,
        what,
    )


async def test_a_binding_that_fails_with_an_unexpected_error_frees_the_node_and_is_retried(
    fresh_cluster: Cluster,
) -> None:
    async with scheduler_behind(fresh_cluster, {"broken_bindings": 1}) as (api, scheduler):
        await api.create(PODS, new_pod("victim", cpu="500m", scheduler_name=SCHEDULER), "default")
        placed = await bound_to_small(api, "the pod bound after the failed binding")
        assert placed["metadata"]["name"] == "victim"
        assert scheduler.stats.bind_errors == 1, "the first binding did fail"
        assert not scheduler.cache.is_assumed("default/victim")
        small = scheduler.cache.nodes["small"]
        assert list(small.pods) == ["default/victim"] and small.requested.milli_cpu == 500, "counted once"


async def test_an_assumed_pod_whose_binding_is_never_confirmed_expires_and_is_scheduled_again(
    fresh_cluster: Cluster,
) -> None:
    async with scheduler_behind(fresh_cluster, {"lost_bindings": 1}, assumed_pod_ttl=0.5) as (api, scheduler):
        await api.create(PODS, new_pod("lost", cpu="500m", scheduler_name=SCHEDULER), "default")
        placed = await bound_to_small(api, "the pod bound once its assumption expired")
        assert placed["metadata"]["name"] == "lost"
        assert scheduler.stats.bound == 2, "the lost binding, then the one that took"
