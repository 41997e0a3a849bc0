"""What the API does with what it accepts: object lifecycle, lists, selectors, watches, subresources, metrics.

Raw HTTPS against the real `kube-shim up` (see `tests/rawapi.py`); each test is one behaviour of
kube-apiserver that kubectl, client-go or the Python client rely on.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.cluster import Cluster
from tests.rawapi import RawApi, configmaps, deployments, pods

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
NO_SCHEDULER = "nobody"  # a schedulerName no scheduler serves: the pod stays where the test puts it


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data}


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }


def pod(name: str, node: str | None = None, **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedulerName": NO_SCHEDULER, "containers": [{"name": "c", "image": "nginx"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels}, "spec": spec}


ROOT_CA = "kube-root-ca.crt"  # every namespace gets this configmap, as in kube: not the test's own


def names(listed: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in listed["items"] if item["metadata"]["name"] != ROOT_CA]


async def exists(api: RawApi, path: str) -> bool:
    status = (await api.call("GET", path)).status
    assert status in (200, 404)
    return status == 200


# -- create and update -----------------------------------------------------------------------------------------


async def test_generate_name_gets_a_random_five_character_suffix(api: RawApi, namespace: str) -> None:
    made = [await api.ok("POST", configmaps(namespace), {"metadata": {"generateName": "job-"}}) for _ in range(3)]
    generated = {obj["metadata"]["name"] for obj in made}
    assert len(generated) == 3
    assert all(re.fullmatch(r"job-[bcdfghjklmnpqrstvwxz2456789]{5}", name) for name in generated)
    for name in generated:
        assert await exists(api, configmaps(namespace) + "/" + name)


async def test_generation_bumps_on_a_spec_change_but_not_on_a_label_change(api: RawApi, namespace: str) -> None:
    path = deployments(namespace) + "/gen"
    assert (await api.ok("POST", deployments(namespace), deployment("gen")))["metadata"]["generation"] == 1
    labelled = await api.ok("PATCH", path, {"metadata": {"labels": {"team": "a"}}}, content_type=MERGE)
    assert labelled["metadata"]["generation"] == 1
    scaled = await api.ok("PATCH", path, {"spec": {"replicas": 3}}, content_type=MERGE)
    assert scaled["metadata"]["generation"] == 2


async def test_status_is_written_only_through_the_status_subresource(api: RawApi, namespace: str) -> None:
    path = pods(namespace) + "/split"
    current = await api.ok("POST", pods(namespace), pod("split"))
    assert current["status"]["phase"] == "Pending"
    current["spec"]["containers"][0]["image"] = "nginx:2"
    current["status"]["phase"] = "Running"
    replaced = await api.ok("PUT", path, current)
    assert replaced["spec"]["containers"][0]["image"] == "nginx:2" and replaced["status"]["phase"] == "Pending"
    replaced["spec"]["containers"][0]["image"] = "nginx:3"
    replaced["status"]["phase"] = "Running"
    status_put = await api.ok("PUT", path + "/status", replaced)
    assert status_put["status"]["phase"] == "Running" and status_put["spec"]["containers"][0]["image"] == "nginx:2"
    patch = {"spec": {"activeDeadlineSeconds": 5}, "status": {"message": "patched"}}
    status_patch = await api.ok("PATCH", path + "/status", patch, content_type=MERGE)
    assert status_patch["status"]["message"] == "patched" and "activeDeadlineSeconds" not in status_patch["spec"]
    stored = await api.ok("GET", path)
    assert stored["spec"] == status_patch["spec"] and stored["status"]["phase"] == "Running"


async def test_defaults_are_visible_in_the_created_object(api: RawApi, namespace: str) -> None:
    created = await api.ok("POST", deployments(namespace), deployment("defaults"))
    spec = created["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    template = spec["template"]["spec"]
    assert (template["restartPolicy"], template["dnsPolicy"], template["terminationGracePeriodSeconds"]) == (
        "Always",
        "ClusterFirst",
        30,
    )
    assert template["containers"][0]["imagePullPolicy"] == "Always"  # an image without a tag is :latest
    assert (await api.ok("GET", deployments(namespace) + "/defaults"))["spec"] == spec


async def test_dry_run_create_update_and_delete_write_nothing(api: RawApi, namespace: str) -> None:
    dry = {"dryRun": "All"}
    created = await api.ok("POST", configmaps(namespace), configmap("ghost", v="1"), params=dry)
    assert created["metadata"]["uid"] and "resourceVersion" not in created["metadata"]
    assert not await exists(api, configmaps(namespace) + "/ghost")

    real = await api.ok("POST", configmaps(namespace), configmap("real", v="1"))
    path = configmaps(namespace) + "/real"
    again = await api.call("POST", configmaps(namespace), configmap("real", v="2"), params=dry)
    assert again.status == 409 and again.json()["reason"] == "AlreadyExists"  # what the real create would answer
    updated = await api.ok("PUT", path, {**real, "data": {"v": "2"}}, params=dry)
    assert updated["data"] == {"v": "2"}
    await api.ok("DELETE", path, params=dry)
    after = await api.ok("GET", path)
    assert after["data"] == {"v": "1"} and after["metadata"]["resourceVersion"] == real["metadata"]["resourceVersion"]


async def test_field_validation_warn_answers_a_warning_header_and_ignore_answers_nothing(
    api: RawApi, namespace: str
) -> None:
    """Either way the unknown field is dropped, as decoding into kube's Go types drops it."""
    for mode, warning in (("Warn", '299 - "unknown field \\"spec.foo\\""'), ("Ignore", None)):
        body = deployment(f"fv-{mode.lower()}")
        body["spec"]["foo"] = 1
        reply = await api.call("POST", deployments(namespace), body, params={"fieldValidation": mode})
        assert reply.status == 201 and reply.headers.get("Warning") == warning
        assert "foo" not in reply.json()["spec"]
        assert "foo" not in (await api.ok("GET", deployments(namespace) + f"/fv-{mode.lower()}"))["spec"]


async def test_a_post_without_content_type_is_json_like_the_python_client_sends(api: RawApi, namespace: str) -> None:
    created = await api.ok("POST", configmaps(namespace), configmap("plain", v="1"), content_type=None)
    assert created["data"] == {"v": "1"}


async def test_a_yaml_body_is_accepted(api: RawApi, namespace: str) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  greeting: hello\n"
    created = await api.ok("POST", configmaps(namespace), body, content_type="application/yaml")
    assert created["data"] == {"greeting": "hello"}


# -- delete ----------------------------------------------------------------------------------------------------


async def test_a_finalizer_keeps_a_deleted_object_until_it_is_removed(api: RawApi, namespace: str) -> None:
    path = configmaps(namespace) + "/held"
    created = await api.ok("POST", configmaps(namespace), {"metadata": {"name": "held", "finalizers": ["x.io/a"]}})
    watch = await api.watch(configmaps(namespace), {"resourceVersion": created["metadata"]["resourceVersion"]})
    try:
        marked = await api.ok("DELETE", path)
        assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["finalizers"] == ["x.io/a"]
        assert (await api.ok("GET", path))["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
        await api.ok("PATCH", path, {"metadata": {"finalizers": None}}, content_type=MERGE)
        assert not await exists(api, path)
        events = await watch.until("DELETED", "held")
        held = [e["type"] for e in events if e["object"]["metadata"]["name"] == "held"]
        assert held == ["MODIFIED", "DELETED"]  # marked, then gone
    finally:
        watch.close()


async def test_a_pod_on_a_node_terminates_gracefully_and_an_unbound_pod_goes_at_once(
    api: RawApi, namespace: str
) -> None:
    await api.ok("POST", pods(namespace), pod("bound", node="no-such-node"))
    marked = await api.ok("DELETE", pods(namespace) + "/bound")
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert await exists(api, pods(namespace) + "/bound")  # its node has to stop it first
    await api.ok("DELETE", pods(namespace) + "/bound", params={"gracePeriodSeconds": "0"})
    assert not await exists(api, pods(namespace) + "/bound")

    await api.ok("POST", pods(namespace), pod("unbound"))
    await api.ok("DELETE", pods(namespace) + "/unbound")
    assert not await exists(api, pods(namespace) + "/unbound")


async def test_orphan_propagation_adds_the_orphan_finalizer(api: RawApi, namespace: str) -> None:
    await api.ok("POST", configmaps(namespace), configmap("parent"))
    marked = await api.ok("DELETE", configmaps(namespace) + "/parent", {"propagationPolicy": "Orphan"})
    assert marked["metadata"]["finalizers"] == ["orphan"] and marked["metadata"]["deletionTimestamp"]


async def test_delete_collection_removes_only_what_the_label_selector_matches(api: RawApi, namespace: str) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        await api.ok("POST", configmaps(namespace), configmap(name, {"tier": tier}))
    gone = await api.ok("DELETE", configmaps(namespace), params={"labelSelector": "tier=web"})
    assert gone["kind"] == "ConfigMapList" and sorted(names(gone)) == ["a", "b"]
    assert names(await api.ok("GET", configmaps(namespace))) == ["c"]


# -- lists -----------------------------------------------------------------------------------------------------


async def test_pages_of_a_list_stay_at_one_revision_while_others_write(api: RawApi, namespace: str) -> None:
    for i in range(7):
        await api.ok("POST", configmaps(namespace), configmap(f"p{i}"))
    page = await api.ok("GET", configmaps(namespace), params={"limit": "3"})
    first_rv = page["metadata"]["resourceVersion"]
    seen = names(page)
    deleted, added = "p4", "p35"
    await api.ok("DELETE", configmaps(namespace) + "/" + deleted)
    await api.ok("POST", configmaps(namespace), configmap(added))
    while token := page["metadata"].get("continue"):
        page = await api.ok("GET", configmaps(namespace), params={"limit": "3", "continue": token})
        assert page["metadata"]["resourceVersion"] == first_rv
        seen += names(page)
    assert seen == [f"p{i}" for i in range(7)]  # each object once, as of the first page
    now = names(await api.ok("GET", configmaps(namespace)))
    assert deleted not in now and added in now


async def test_resource_version_match_exact_lists_an_old_state(api: RawApi, namespace: str) -> None:
    await api.ok("POST", configmaps(namespace), configmap("before"))
    old_rv = (await api.ok("GET", configmaps(namespace)))["metadata"]["resourceVersion"]
    await api.ok("POST", configmaps(namespace), configmap("after"))
    await api.ok("DELETE", configmaps(namespace) + "/before")
    params = {"resourceVersion": old_rv, "resourceVersionMatch": "Exact"}
    old = await api.ok("GET", configmaps(namespace), params=params)
    assert names(old) == ["before"] and old["metadata"]["resourceVersion"] == old_rv


async def test_an_expired_continue_token_or_exact_revision_is_410(compacting: Cluster) -> None:
    api = RawApi(compacting.kubeconfig)
    try:
        for i in range(3):
            await api.ok("POST", configmaps("default"), configmap(f"e{i}"))
        page = await api.ok("GET", configmaps("default"), params={"limit": "1"})
        old_rv = page["metadata"]["resourceVersion"]
        exact = {"resourceVersion": old_rv, "resourceVersionMatch": "Exact"}
        for i in range(2000):  # each write moves the newest revision; compaction follows within 0.2 s
            reply = await api.call("GET", configmaps("default"), params=exact)
            if reply.status == 410:
                break
            await api.ok("POST", configmaps("default"), configmap(f"later{i}"))
        assert reply.status == 410 and reply.json()["reason"] == "Expired"
        expired = await api.call(
            "GET", configmaps("default"), params={"limit": "1", "continue": page["metadata"]["continue"]}
        )
        status = expired.json()
        assert expired.status == 410 and (status["kind"], status["reason"]) == ("Status", "Expired")
        assert status["message"].startswith("The provided continue parameter is too old")
    finally:
        await api.close()


async def test_label_selectors_support_every_operator(api: RawApi, namespace: str) -> None:
    for name, labels in (("v1", {"ver": "1", "env": "prod"}), ("v2", {"ver": "2"}), ("v3", {"ver": "3", "env": "dev"})):
        await api.ok("POST", configmaps(namespace), configmap(name, labels))
    await api.ok("POST", configmaps(namespace), configmap("bare"))
    expected = {
        "ver=1": ["v1"],
        "ver==2": ["v2"],
        "ver!=1": ["bare", "v2", "v3"],
        "ver in (1,3)": ["v1", "v3"],
        "ver notin (1,3)": ["bare", "v2"],
        "env": ["v1", "v3"],
        "!env": ["bare", "v2"],
        "ver>1": ["v2", "v3"],
        "ver<2": ["v1"],
        "ver,env!=dev": ["v1", "v2"],
    }
    for selector, wanted in expected.items():
        listed = await api.ok("GET", configmaps(namespace), params={"labelSelector": selector})
        assert names(listed) == wanted, selector


async def test_field_selectors_on_pods_and_events_in_any_order(api: RawApi, namespace: str) -> None:
    await api.ok("POST", pods(namespace), pod("placed", node="node-a"))
    await api.ok("POST", pods(namespace), pod("waiting"))
    for selector, wanted in (
        ("spec.nodeName=node-a", ["placed"]),
        ("spec.nodeName=", ["waiting"]),
        ("status.phase=Pending", ["placed", "waiting"]),
        ("status.phase!=Pending", []),
        ("metadata.name=waiting,spec.nodeName=", ["waiting"]),
    ):
        assert names(await api.ok("GET", pods(namespace), params={"fieldSelector": selector})) == wanted, selector
    involved = {"kind": "Pod", "name": "placed", "namespace": namespace, "uid": "u-1"}
    event = {"metadata": {"name": "ev"}, "involvedObject": involved, "reason": "Seen", "message": "m", "type": "Normal"}
    events = f"/api/v1/namespaces/{namespace}/events"
    await api.ok("POST", events, event)
    for selector in (
        "involvedObject.kind=Pod,involvedObject.name=placed",
        f"involvedObject.name=placed,involvedObject.namespace={namespace},involvedObject.kind=Pod",
        "involvedObject.uid=u-1",
    ):
        assert names(await api.ok("GET", events, params={"fieldSelector": selector})) == ["ev"], selector
    assert names(await api.ok("GET", events, params={"fieldSelector": "involvedObject.name=waiting"})) == []


async def test_a_list_across_all_namespaces_shows_each_objects_namespace(api: RawApi, namespace: str) -> None:
    other = f"{namespace}-b"
    await api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": other}})
    marker = {"suite": namespace}
    await api.ok("POST", configmaps(namespace), configmap("here", marker))
    await api.ok("POST", configmaps(other), configmap("there", marker))
    listed = await api.ok("GET", "/api/v1/configmaps", params={"labelSelector": f"suite={namespace}"})
    assert listed["kind"] == "ConfigMapList"
    found = sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"])
    assert found == [(namespace, "here"), (other, "there")]


async def test_tables_for_get_list_and_watch_with_and_without_objects(api: RawApi, namespace: str) -> None:
    await api.ok("POST", configmaps(namespace), configmap("row", v="1"))
    as_table = {"Accept": TABLE}
    mine = {"fieldSelector": "metadata.name=row"}
    listed = await api.ok("GET", configmaps(namespace), headers=as_table, params={**mine, "includeObject": "Object"})
    assert (listed["kind"], listed["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in listed["columnDefinitions"]] == ["Name", "Data", "Age"]
    [row] = listed["rows"]
    assert row["cells"][:2] == ["row", 1] and row["object"]["data"] == {"v": "1"}
    one = await api.ok("GET", configmaps(namespace) + "/row", headers=as_table, params={"includeObject": "None"})
    assert one["kind"] == "Table" and one["rows"][0]["object"] is None  # kube writes the empty RawExtension as null
    metadata_only = await api.ok("GET", configmaps(namespace), headers=as_table, params=mine)
    assert metadata_only["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    watch = await api.watch(
        configmaps(namespace), {**mine, "resourceVersion": "0", "includeObject": "Object"}, as_table
    )
    try:
        event = await watch.next()
        assert event is not None and event["type"] == "ADDED" and event["object"]["kind"] == "Table"
        assert event["object"]["rows"][0]["object"]["data"] == {"v": "1"}
    finally:
        watch.close()


async def test_partial_object_metadata_lists_carry_only_metadata(api: RawApi, namespace: str) -> None:
    await api.ok("POST", configmaps(namespace), configmap("meta", {"a": "b"}, secret="value"))
    listed = await api.ok(
        "GET", configmaps(namespace), headers={"Accept": METADATA_LIST}, params={"labelSelector": "a"}
    )
    assert (listed["kind"], listed["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    [item] = listed["items"]
    assert set(item) == {"kind", "apiVersion", "metadata"} and item["kind"] == "PartialObjectMetadata"
    assert item["metadata"]["labels"] == {"a": "b"}


# -- watch -----------------------------------------------------------------------------------------------------


async def test_an_object_leaving_a_watched_selector_is_deleted_for_that_watcher(api: RawApi, namespace: str) -> None:
    await api.ok("POST", configmaps(namespace), configmap("mover", {"team": "blue"}))
    path = configmaps(namespace) + "/mover"
    watch = await api.watch(configmaps(namespace), {"labelSelector": "team=red", "resourceVersion": "0"})
    try:
        for team in ("red", "blue", "red"):
            await api.ok("PATCH", path, {"metadata": {"labels": {"team": team}}}, content_type=MERGE)
        events = [await watch.next() for _ in range(3)]
        assert [(e["type"], e["object"]["metadata"]["labels"]["team"]) for e in events if e] == [
            ("ADDED", "red"),
            ("DELETED", "red"),  # the last state it matched, at the revision it left
            ("ADDED", "red"),
        ]
        assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(
            events[0]["object"]["metadata"]["resourceVersion"]
        )
    finally:
        watch.close()


async def test_a_watch_with_bookmarks_and_a_timeout_ends_cleanly(api: RawApi, namespace: str) -> None:
    await api.ok("POST", configmaps(namespace), configmap("quiet"))
    watch = await api.watch(configmaps(namespace), {"allowWatchBookmarks": "true", "timeoutSeconds": "1"})
    types = []
    while (event := await watch.next()) is not None:
        types.append(event["type"])
    assert types[0] == "ADDED" and set(types) <= {"ADDED", "BOOKMARK"}


async def test_a_watch_from_resource_version_0_starts_with_the_existing_objects(api: RawApi, namespace: str) -> None:
    for name in ("x", "y"):
        await api.ok("POST", configmaps(namespace), configmap(name))
    watch = await api.watch(configmaps(namespace), {"resourceVersion": "0"})
    try:
        first = await watch.until("ADDED", "y")
        assert {(e["type"], e["object"]["metadata"]["name"]) for e in first} - {("ADDED", ROOT_CA)} == {
            ("ADDED", "x"),
            ("ADDED", "y"),
        }
        await api.ok("POST", configmaps(namespace), configmap("z"))
        assert [e["object"]["metadata"]["name"] for e in await watch.until("ADDED", "z")] in (["z"], [ROOT_CA, "z"])
    finally:
        watch.close()


@pytest.mark.parametrize("value", ["True", "1", "t"])
async def test_boolean_parameters_parse_like_go(api: RawApi, namespace: str, value: str) -> None:
    await api.ok("POST", configmaps(namespace), configmap("b"))
    watch = await api.watch(configmaps(namespace), {"watch": value, "resourceVersion": "0", "timeoutSeconds": "1"})
    event = await watch.next()
    assert event is not None and event["type"] == "ADDED"
    watch.close()


# -- subresources ----------------------------------------------------------------------------------------------


async def test_the_scale_subresource_reads_and_writes_replicas(api: RawApi, namespace: str) -> None:
    await api.ok("POST", deployments(namespace), deployment("scaled", replicas=2))
    path = deployments(namespace) + "/scaled/scale"
    scale = await api.ok("GET", path)
    assert (scale["kind"], scale["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert scale["spec"] == {"replicas": 2} and scale["status"]["selector"] == "app=scaled"
    scale["spec"]["replicas"] = 3
    assert (await api.ok("PUT", path, scale))["spec"]["replicas"] == 3
    for replicas, patch_type in ((4, MERGE), (5, STRATEGIC)):
        patched = await api.ok("PATCH", path, {"spec": {"replicas": replicas}}, content_type=patch_type)
        assert patched["kind"] == "Scale" and patched["spec"]["replicas"] == replicas
    assert (await api.ok("GET", deployments(namespace) + "/scaled"))["spec"]["replicas"] == 5


async def test_binding_assigns_a_node_once(api: RawApi, namespace: str) -> None:
    await api.ok("POST", pods(namespace), pod("bindme"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bindme"}, "target": {"name": "node-1"}}
    bound = await api.call("POST", pods(namespace) + "/bindme/binding", binding)
    assert bound.status == 201 and bound.json()["status"] == "Success"
    assert (await api.ok("GET", pods(namespace) + "/bindme"))["spec"]["nodeName"] == "node-1"
    again = await api.call("POST", pods(namespace) + "/bindme/binding", {**binding, "target": {"name": "node-2"}})
    assert again.status == 409 and again.json()["reason"] == "Conflict"
    assert (await api.ok("GET", pods(namespace) + "/bindme"))["spec"]["nodeName"] == "node-1"


async def test_eviction_deletes_the_pod(api: RawApi, namespace: str) -> None:
    await api.ok("POST", pods(namespace), pod("evictme"))
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "evictme", "namespace": namespace}}
    evicted = await api.call("POST", pods(namespace) + "/evictme/eviction", eviction)
    assert evicted.status == 201 and evicted.json()["status"] == "Success"
    assert not await exists(api, pods(namespace) + "/evictme")


# -- metrics and health ----------------------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_the_request_just_made_and_show_the_store_revision(api: RawApi, namespace: str) -> None:
    labels = {"verb": "PUT", "resource": "configmaps", "code": "409"}
    before = metric((await api.call("GET", "/metrics")).body.decode(), "apiserver_request_total", **labels)
    created = await api.ok("POST", configmaps(namespace), configmap("counted"))
    await api.ok("PATCH", configmaps(namespace) + "/counted", {"data": {"v": "2"}}, content_type=MERGE)
    assert (await api.call("PUT", configmaps(namespace) + "/counted", created)).status == 409
    text = (await api.call("GET", "/metrics")).body.decode()
    assert metric(text, "apiserver_request_total", **labels) == before + 1
    assert metric(text, "etcd_current_revision") >= int(created["metadata"]["resourceVersion"]) + 1


async def test_health_and_version_need_no_credentials_and_everything_else_does(cluster: Cluster) -> None:
    anonymous = RawApi(cluster.kubeconfig, anonymous=True)
    try:
        for path in ("/healthz", "/livez", "/readyz", "/version"):
            assert (await anonymous.call("GET", path)).status == 200, path
        for path in ("/api", "/apis", "/metrics", "/api/v1/namespaces", "/openapi/v2"):
            reply = await anonymous.call("GET", path)
            assert reply.status == 401, path
            assert (reply.json()["kind"], reply.json()["reason"]) == ("Status", "Unauthorized")
    finally:
        await anonymous.close()
