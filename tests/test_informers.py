"""The shared informer factory: one informer (one list+watch, one indexed cache) per resource and selector per
process, handlers fanned out from it, indexes answered from it, a failing handler isolated."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shim.client import ApiClient, Resource, SharedInformerFactory, load_kubeconfig, object_key
from shim.client.api import Obj
from tests.cluster import Cluster, start_cluster, wait_until

CONFIGMAPS = Resource("", "v1", "configmaps")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
PODS = Resource("", "v1", "pods")
DEADLINE = 30.0
NODES = 2


@pytest.fixture
async def factory(cluster: Cluster) -> AsyncIterator[SharedInformerFactory]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        informers = SharedInformerFactory(client)
        yield informers
        await informers.stop()


class Recorder:
    """A handler that keeps what it was given and lets a test wait for a given event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Obj | None]] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: str, obj: Obj, old: Obj | None) -> None:
        async with self._changed:
            self.events.append((event, object_key(obj), old))
            self._changed.notify_all()

    async def wait_for(self, event: str, key: str) -> tuple[str, str, Obj | None]:
        """The first recorded (event, key, old) matching, waiting for it up to DEADLINE."""

        def found() -> tuple[str, str, Obj | None] | None:
            return next((e for e in self.events if e[0] == event and e[1] == key), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(found), DEADLINE)
        result = found()
        assert result is not None
        return result


def configmap(name: str, team: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"team": team}}, "data": {"k": "v"}}


def by_team(obj: Obj) -> list[str]:
    team = (obj["metadata"].get("labels") or {}).get("team")
    return [team] if team else []


def test_object_key_is_namespace_slash_name_or_the_name_of_a_cluster_scoped_object() -> None:
    assert object_key({"metadata": {"namespace": "ns1", "name": "a"}}) == "ns1/a"
    assert object_key({"metadata": {"name": "node-1"}}) == "node-1"


async def test_the_factory_gives_the_same_informer_for_the_same_key(factory: SharedInformerFactory) -> None:
    pods = factory.informer_for(PODS)
    assert factory.informer_for(PODS) is pods
    assert factory.informer_for(Resource("", "v1", "pods")) is pods  # an equal Resource, not the same object
    selected = factory.informer_for(PODS, fieldSelector="spec.nodeName=n1")
    assert selected is not pods
    assert factory.informer_for(PODS, fieldSelector="spec.nodeName=n1") is selected
    assert factory.informer_for(PODS, namespace="ns1") not in (pods, selected)
    assert factory.informer_for(NAMESPACES) is not pods
    assert len(factory.informers()) == 4


async def test_indexers_answer_from_the_shared_cache_as_objects_change(
    factory: SharedInformerFactory, namespace: str
) -> None:
    client = factory.client
    informer = factory.informer_for(CONFIGMAPS, namespace=namespace)
    informer.add_indexer("test/team", by_team)
    seen = Recorder()
    informer.add_event_handler(seen)
    await client.create(CONFIGMAPS, configmap("a", "red"), namespace)  # before the first list
    factory.start()
    await asyncio.wait_for(factory.wait_for_sync(), DEADLINE)
    await client.create(CONFIGMAPS, configmap("b", "red"), namespace)
    await client.create(CONFIGMAPS, configmap("c", "blue"), namespace)
    await seen.wait_for("ADDED", f"{namespace}/c")

    def names(team: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in informer.by_index("test/team", team))

    assert names("red") == ["a", "b"]
    assert names("blue") == ["c"]
    assert [o["metadata"]["name"] for o in informer.in_namespace(namespace) if o["metadata"]["name"] == "a"] == ["a"]
    assert informer.get(f"{namespace}/c")["metadata"]["labels"] == {"team": "blue"}

    await client.patch(
        CONFIGMAPS, "b", {"metadata": {"labels": {"team": "blue"}}}, namespace,
        content_type="application/merge-patch+json",
    )  # fmt: skip
    _, _, old = await seen.wait_for("MODIFIED", f"{namespace}/b")
    assert old is not None and old["metadata"]["labels"] == {"team": "red"}  # handlers get the replaced version
    assert names("red") == ["a"]
    assert names("blue") == ["b", "c"]

    await client.delete(CONFIGMAPS, "c", namespace)
    await seen.wait_for("DELETED", f"{namespace}/c")
    assert names("blue") == ["b"]
    assert informer.get(f"{namespace}/c") is None


async def test_a_handler_exception_is_logged_and_the_other_handlers_still_get_the_event(
    factory: SharedInformerFactory, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    informer = factory.informer_for(CONFIGMAPS, namespace=namespace)

    async def broken(event: str, obj: Obj, old: Obj | None) -> None:
        raise RuntimeError("a bug in one controller")

    before, after = Recorder(), Recorder()
    informer.add_event_handler(before)
    informer.add_event_handler(broken)
    informer.add_event_handler(after)
    factory.start()
    await asyncio.wait_for(factory.wait_for_sync(), DEADLINE)
    with caplog.at_level(logging.ERROR, logger="shim.client"):
        await factory.client.create(CONFIGMAPS, configmap("x", "red"), namespace)
        await after.wait_for("ADDED", f"{namespace}/x")
        await factory.client.create(CONFIGMAPS, configmap("y", "red"), namespace)
        await after.wait_for("ADDED", f"{namespace}/y")  # the informer goes on with the next event
    ours = (f"{namespace}/x", f"{namespace}/y")  # the namespace also holds kube-root-ca.crt
    assert [key for _, key, _ in before.events if key in ours] == list(ours)
    failures = {
        key: r for r in caplog.records for key in ours if r.getMessage().endswith(f"handler failed on ADDED {key}")
    }
    assert set(failures) == set(ours)
    assert all(r.exc_info and "a bug in one controller" in str(r.exc_info[1]) for r in failures.values())


async def test_a_handler_added_after_the_first_list_first_gets_every_cached_object(
    factory: SharedInformerFactory, namespace: str
) -> None:
    await factory.client.create(CONFIGMAPS, configmap("early", "red"), namespace)
    informer = factory.informer_for(CONFIGMAPS, namespace=namespace)
    factory.start()
    await asyncio.wait_for(informer.synced.wait(), DEADLINE)
    late = Recorder()
    registration = informer.add_event_handler(late)
    await asyncio.wait_for(registration.synced.wait(), DEADLINE)
    assert ("ADDED", f"{namespace}/early", None) in late.events
    await factory.client.create(CONFIGMAPS, configmap("later", "red"), namespace)
    await late.wait_for("ADDED", f"{namespace}/later")


async def test_a_removed_handler_gets_nothing_more_and_the_informer_goes_on(
    factory: SharedInformerFactory, namespace: str
) -> None:
    informer = factory.informer_for(CONFIGMAPS, namespace=namespace)
    stopped, staying = Recorder(), Recorder()
    registration = informer.add_event_handler(stopped)
    informer.add_event_handler(staying)
    factory.start()
    await asyncio.wait_for(registration.synced.wait(), DEADLINE)
    informer.remove_event_handler(registration)
    await factory.client.create(CONFIGMAPS, configmap("after", "red"), namespace)
    await staying.wait_for("ADDED", f"{namespace}/after")
    assert all(key != f"{namespace}/after" for _, key, _ in stopped.events)


async def test_a_write_observed_ahead_of_its_watch_event_is_cached_unless_the_cache_is_newer(
    factory: SharedInformerFactory, namespace: str
) -> None:
    client = factory.client
    informer = factory.informer_for(CONFIGMAPS, namespace=namespace)
    factory.start()
    await asyncio.wait_for(informer.synced.wait(), DEADLINE)
    first = await client.create(CONFIGMAPS, configmap("written", "red"), namespace)
    second = await client.patch(CONFIGMAPS, "written", {"data": {"k": "2"}}, namespace)
    informer.observe(second)  # what a controller does with the object its write returned
    assert informer.get(f"{namespace}/written")["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]
    informer.observe(first)  # an older version never replaces a newer one
    assert informer.get(f"{namespace}/written")["data"] == {"k": "2"}


# -- one kube-shim up process ----------------------------------------------------------------------------------


def samples(metrics: str, name: str, verb: str) -> dict[str, int]:
    """`resource -> value` of one metric's samples for `verb` (all codes summed), from Prometheus text."""
    found: dict[str, int] = {}
    pattern = re.compile(rf'^{name}\{{verb="{verb}",resource="([^"]+)"(?:,code="\d+")?\}} (\d+)')
    for line in metrics.splitlines():
        if (match := pattern.match(line)) is not None:
            found[match[1]] = found.get(match[1], 0) + int(match[2])
    return found


def test_kube_shim_up_lists_and_watches_each_resource_once_per_selector(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, nodes=("--runtime", "fake", "--nodes", str(NODES)))
    try:

        def settled() -> str | None:
            text = cluster.kubectl("get", "--raw", "/metrics").stdout
            watches = samples(text, "apiserver_longrunning_requests", "WATCH")
            # priority classes: only the garbage collector watches them, once its discovery is done; a node
            # agent watches its pods once it has registered and its services are known
            return text if watches.get("priorityclasses") and watches.get("pods", 0) >= 1 + NODES else None

        text = wait_until(settled, DEADLINE, "every component watching")
        watches = samples(text, "apiserver_longrunning_requests", "WATCH")
        lists = samples(text, "apiserver_request_total", "LIST")
    finally:
        cluster.stop()
    # pods: the controllers' and the scheduler's view (one), each node's own (one each: spec.nodeName=<node>)
    assert watches.pop("pods") == 1 + NODES
    assert {"namespaces", "nodes", "services", "replicasets", "endpoints"} <= set(watches)
    assert watches == dict.fromkeys(watches, 1), watches
    # one list per watch; the garbage collector's discovery also probes each resource once (limit=1)
    extra = {resource: n - watches.get(resource, 1 + NODES) for resource, n in lists.items()}
    assert set(extra.values()) <= {0, 1}, f"lists {lists}, watches {watches}"
