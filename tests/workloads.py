"""Helpers for workload controller tests: a cluster of simulated nodes, and waiting without sleeping.

The cluster is the real `kube-shim up` with the real scheduler and node agents on the fake runtime
(`--runtime fake`): pods are bound, "run" and turn Ready at once, with no containers anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from shim.client import ApiClient, Resource, SharedInformer
from tests.cluster import Cluster, start_cluster
from tests.podman_env import podman_root_with_test_image

Obj = dict[str, Any]
T = TypeVar("T")
IMAGE = "registry.example/web:1"  # never pulled: fake nodes "run" any image


def cluster_with_fake_nodes(nodes: int = 3, extra: tuple[str, ...] = ()) -> Any:
    """A module-scoped `cluster` fixture (it replaces the shared control-plane-only one in that module);
    `extra`: more `kube-shim up` flags."""

    @pytest.fixture(scope="module")
    def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
        running = start_cluster(
            tmp_path_factory.mktemp("fake-nodes"), nodes=("--runtime", "fake", "--nodes", str(nodes)), extra=extra
        )
        yield running
        running.stop()

    return cluster


def cluster_on_podman(extra: tuple[str, ...] = ()) -> Any:
    """A module-scoped `cluster` fixture running `one_podman_node`; `extra`: more `kube-shim up` flags."""

    @pytest.fixture(scope="module")
    def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
        with one_podman_node(tmp_path_factory, extra) as running:
            yield running

    return cluster


@contextlib.contextmanager
def one_podman_node(tmp_path_factory: pytest.TempPathFactory, extra: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """`kube-shim up` with one node agent whose pods run in a private Podman root holding the test image, its
    node Ready (for modules whose flags depend on other fixtures, e.g. a host directory to allow)."""
    with podman_root_with_test_image() as podman:
        running = start_cluster(
            tmp_path_factory.mktemp("podman-node"),
            nodes=("--runtime", "podman", "--nodes", "1", "--podman-socket", str(podman.socket_path)),
            extra=extra,
        )
        try:
            running.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
            yield running
        finally:
            running.stop()


def deployment(name: str, replicas: int, **spec: Any) -> Obj:
    """Deployment `name` of one container `app` on IMAGE, its pods labelled app=NAME; `spec` adds or replaces
    fields of its spec."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": IMAGE}]}},
            **spec,
        },
    }


def never_ready(template: Obj) -> Obj:
    """The pod template with a readiness probe that always fails: its pods run but never turn Ready."""
    template = copy.deepcopy(template)
    for container in template["spec"]["containers"]:
        container["readinessProbe"] = {"exec": {"command": ["false"]}, "periodSeconds": 1}
    return template


async def watch_until(
    client: ApiClient,
    resource: Resource,
    namespace: str,
    predicate: Callable[[list[Obj]], T],
    timeout: float = 30.0,
    what: str = "the condition",
) -> T:
    """List and watch `resource` in `namespace`; return the first truthy `predicate(objects)`, evaluated after
    every change. AssertionError (with the objects last seen) when `timeout` passes first."""
    found: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    async def check(_event: str, _obj: Obj, _old: Obj | None) -> None:
        if not informer.synced.is_set():
            return  # the initial list arrives one object at a time: judge it once complete
        if not found.done() and (result := predicate(informer.list())):
            found.set_result(result)

    informer = SharedInformer(client, resource, namespace=namespace)
    informer.add_event_handler(check)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), timeout)
        await check("SYNCED", {}, None)
        return await asyncio.wait_for(found, timeout)
    except TimeoutError:
        seen = [(o["metadata"]["name"], o.get("status")) for o in informer.list()]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {seen}") from None
    finally:
        await informer.stop()
