"""No component dies silently: informers carry objects as large as the API accepts, survive any error by
logging it, backing off and relisting, survive their handlers' exceptions, and a component that keeps
failing makes `/readyz` say so."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from shim.apiserver.app import READY_CHECKS
from shim.apiserver.codec import MAX_BODY_BYTES
from shim.apiserver.server import ApiServer, ApiServerConfig
from shim.client import ApiClient, ClusterAccess, Resource, SharedInformer
from shim.client.api import Obj
from shim.client.events import EventRecorder
from shim.client.health import HealthRegistry
from shim.client.supervise import Backoff, keep_running
from shim.controllers.eventqueue import EventQueue
from shim.machinery.resources import CONFIGMAPS, EVENTS, PODS
from shim.store.compactor import Compactor
from shim.store.logstore import LogStore
from shim.store.memory import MemoryLog
from tests.cluster import Cluster, wait_until
from tests.controllerkit import eventually

WIDGETS = Resource("example.com", "v1", "widgets")  # served by no one: every list is a 404
DEADLINE = 30.0


@pytest.fixture
async def api_server() -> AsyncIterator[ApiServer]:
    """The real API server in this process (memory store, plain HTTP on a free loopback port)."""
    server = ApiServer(ApiServerConfig(port=0, store_url="memory://"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(api_server: ApiServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(ClusterAccess(server=f"http://127.0.0.1:{api_server.bound_port}")) as api:
        yield api


def configmap(name: str, size: int = 10) -> Obj:
    return {"metadata": {"name": name}, "data": {"blob": "x" * size}}


class Seen:
    """An informer handler that remembers the names it saw and raises on `poison`."""

    def __init__(self, poison: str = "") -> None:
        self.names: set[str] = set()
        self.poison = poison

    async def __call__(self, kind: str, obj: Obj, old: Obj | None) -> None:
        name = obj["metadata"]["name"]
        if name == self.poison:
            raise RuntimeError(f"handler bug triggered by {name}")
        self.names.add(name)


# -- the reported failure: a large object stopped the controllers' informers forever -------------------------


def test_a_deleted_kube_root_ca_configmap_comes_back_while_a_1mb_configmap_exists(
    cluster: Cluster, namespace: str
) -> None:
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"blob": "x" * 1_000_000}}
    cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(big))

    def root_ca() -> str:
        found = cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", namespace, "-o", "name", check=False)
        return found.stdout.strip()

    wait_until(root_ca, DEADLINE, "kube-root-ca.crt to be published")
    cluster.kubectl("delete", "configmap", "kube-root-ca.crt", "-n", namespace)
    wait_until(root_ca, DEADLINE, "kube-root-ca.crt to be published again after its deletion")
    # the publisher's watch carried the large object: a new namespace still gets its CA too
    other = "t-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", other)
    wait_until(
        lambda: cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", other, check=False).returncode == 0,
        DEADLINE,
        "kube-root-ca.crt in a namespace created afterwards",
    )


async def test_a_watch_carries_an_object_as_large_as_the_api_accepts(client: ApiClient) -> None:
    # ConfigMaps stop at 1 MiB of data; a pod's environment has no such limit, only the 3 MiB request cap
    value = "x" * (MAX_BODY_BYTES - 4096)
    pod = {"metadata": {"name": "largest"}, "spec": {"containers": [{"name": "c", "image": "busybox", "env": [
        {"name": "BLOB", "value": value}]}]}}  # fmt: skip
    seen = Seen()
    informer = SharedInformer(client, PODS, namespace="default")
    informer.add_event_handler(seen)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), DEADLINE)
        # no serviceaccount controller runs here, and ServiceAccount admission wants the pod's account
        await client.create(Resource("", "v1", "serviceaccounts"), {"metadata": {"name": "default"}}, "default")
        await client.create(PODS, pod, "default")
        await eventually(lambda: "largest" in seen.names, "the watch event of a ~3 MiB pod")
        assert informer.get("default/largest")["spec"]["containers"][0]["env"][0]["value"] == value
    finally:
        await informer.stop()


async def test_a_watch_event_beyond_the_bound_is_logged_and_followed_by_a_relist(
    api_server: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    access = ClusterAccess(server=f"http://127.0.0.1:{api_server.bound_port}")
    async with ApiClient(access, max_watch_event_bytes=64 * 1024) as small:
        seen = Seen()
        informer = SharedInformer(small, CONFIGMAPS, namespace="default")
        informer.add_event_handler(seen)
        informer.start()
        try:
            await asyncio.wait_for(informer.synced.wait(), DEADLINE)
            with caplog.at_level(logging.ERROR, logger="shim.client"):
                await small.create(CONFIGMAPS, configmap("too-big-to-watch", 100_000), "default")
                # the list has no such bound: the relist brings the object the watch could not carry
                await eventually(lambda: "too-big-to-watch" in seen.names, "the relist after the oversized event")
            failures = [r for r in caplog.records if "informer configmaps in default failed" in r.getMessage()]
            assert failures and "WatchEventTooLarge" in failures[0].getMessage()
            assert failures[0].exc_info is not None, "the first failure is logged with its traceback"
            await small.create(CONFIGMAPS, configmap("after"), "default")
            await eventually(lambda: "after" in seen.names, "an event after the relist")
        finally:
            await informer.stop()


# -- any exception ---------------------------------------------------------------------------------------------


async def test_an_exception_in_a_handler_is_logged_and_the_informer_carries_on(
    client: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen(poison="poison")
    informer = SharedInformer(client, CONFIGMAPS, namespace="default")
    informer.add_event_handler(seen)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), DEADLINE)
        with caplog.at_level(logging.ERROR, logger="shim.client"):
            await client.create(CONFIGMAPS, configmap("poison"), "default")
            await client.create(CONFIGMAPS, configmap("after-poison"), "default")
            await eventually(lambda: "after-poison" in seen.names, "the event after the one the handler failed on")
        failed = [r for r in caplog.records if "handler failed on ADDED default/poison" in r.getMessage()]
        assert failed and failed[0].exc_info is not None
        assert informer.get("default/poison") is not None, "the cache holds the object whatever the handler did"
    finally:
        await informer.stop()


async def test_an_informer_that_cannot_list_keeps_retrying_and_is_reported_unhealthy(
    client: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    client.health = HealthRegistry(unhealthy_after=60.0, clock=lambda: now[0])
    informer = SharedInformer(client, WIDGETS)
    with caplog.at_level(logging.WARNING, logger="shim.client"):
        informer.start()
        try:
            await eventually(lambda: len(_informer_failures(caplog)) >= 3, "three failed lists (it keeps retrying)")
            assert client.health.problems() == [], "a short failure is not yet a problem"
            now[0] += 61
            [problem] = client.health.problems()
            assert problem.startswith("informer widgets.example.com: failing for 61s (ApiException: 404")
            assert informer._task is not None and not informer._task.done()
        finally:
            await informer.stop()
    assert client.health.problems() == [], "a stopped informer no longer counts"


async def test_a_loop_that_raises_is_logged_backed_off_and_run_again_until_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = HealthRegistry(unhealthy_after=0.0)
    runs = []

    async def body() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise KeyError(f"bug number {len(runs)}")
        await asyncio.Event().wait()  # the third run works, for ever

    with caplog.at_level(logging.ERROR, logger="shim.supervise"):
        task = asyncio.create_task(keep_running("flaky loop", body, health, Backoff(initial=0.01)))
        await eventually(lambda: len(runs) == 3, "the third run")
    failures = [r for r in caplog.records if r.getMessage().startswith("flaky loop failed")]
    assert len(failures) == 2 and all(r.exc_info for r in failures), "each failure logged with its traceback"
    [problem] = health.problems()
    assert problem.startswith("flaky loop: failing for") and problem.endswith("(KeyError: 'bug number 2')")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and health.problems() == [], "cancellation stops it, and it no longer counts"


async def test_a_malformed_event_does_not_stop_the_event_writer(client: ApiClient) -> None:
    events = EventQueue(EventRecorder(client, "survival-test"))
    events.start()
    try:
        events.emit({"kind": "Pod", "metadata": None}, "Warning", "Broken", "an object without metadata")
        pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "default", "uid": "u1"}}
        events.emit(pod, "Normal", "Written", "after the malformed one")

        async def written() -> bool:
            return any(e["reason"] == "Written" for e in (await client.list(EVENTS, "default"))["items"])

        deadline = time.monotonic() + DEADLINE
        while not await written():
            assert time.monotonic() < deadline, "the event after the malformed one was never written"
            await asyncio.sleep(0.05)
    finally:
        await events.stop()


class BrokenOnceLog(MemoryLog):
    """A log whose first compaction fails with an error no one expects (not a StoreError)."""

    def __init__(self) -> None:
        super().__init__()
        self.compactions: list[int] = []

    async def compact(self, revision: int) -> None:
        self.compactions.append(revision)
        if len(self.compactions) == 1:
            raise RuntimeError("disk hiccup")
        await super().compact(revision)


async def test_the_store_compactor_carries_on_after_an_unexpected_error(caplog: pytest.LogCaptureFixture) -> None:
    log = BrokenOnceLog()
    store = await LogStore.open(log)
    for i in range(5):
        await store.create(f"/k/{i}", b"x")
    compactor = Compactor(store, interval=0.01, keep_revisions=2)
    with caplog.at_level(logging.ERROR, logger="shim.store.compactor"):
        compactor.start()
        try:
            await eventually(lambda: len(log.compactions) == 1, "the first (failing) compaction")
            for i in range(5, 10):
                await store.create(f"/k/{i}", b"x")
            await eventually(lambda: len(log.compactions) >= 2, "a compaction after the failure")
        finally:
            await compactor.stop()
            await store.close()
    assert log.compactions[-1] > log.compactions[0]
    assert any("store compaction failed" in r.getMessage() and r.exc_info for r in caplog.records)


def _informer_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "informer widgets.example.com failed" in r.getMessage()]


async def test_readyz_names_a_failing_component_as_kube_does(api_server: ApiServer, client: ApiClient) -> None:
    client.health = HealthRegistry(unhealthy_after=0.0)
    informer = SharedInformer(client, WIDGETS)
    informer.start()
    assert api_server.runner is not None
    api_server.runner.app[READY_CHECKS].append(("scheduler", lambda: "; ".join(client.health.problems()) or None))
    url = f"http://127.0.0.1:{api_server.bound_port}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/readyz?verbose") as resp:
                body = await resp.text()
                assert resp.status == 500, body
            lines = body.splitlines()
            assert "[+]ready ok" in lines and "[-]scheduler failed: reason withheld" in lines
            assert lines[-1] == "readyz check failed"
            async with session.get(f"{url}/readyz/scheduler") as resp:
                assert resp.status == 500
            async with session.get(f"{url}/livez") as resp:
                assert resp.status == 200  # alive: only not ready
    finally:
        await informer.stop()


def test_kube_shim_up_reports_each_in_process_component_in_readyz(cluster: Cluster) -> None:
    lines = cluster.kubectl("get", "--raw", "/readyz?verbose").stdout.splitlines()
    assert "[+]informers ok" in lines  # the process's shared informers, every component's view of the cluster
    assert "[+]controller-manager ok" in lines
    assert "[+]scheduler ok" in lines
    assert lines[-1] == "readyz check passed"
