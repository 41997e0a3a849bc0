"""Server-side apply and managedFields, as kube-apiserver's fieldmanager records and enforces them.

Expected field sets are written out as kube prints them (FieldsV1), on real kinds and the served schemas.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shim.apiserver.errors import ApiError
from shim.apiserver.fieldmanager import LAST_APPLIED, ApplyConflict, apply, update_managed_fields
from shim.apiserver.fieldpath import difference, intersection, members, path_string, union
from shim.apiserver.schema import schema_for

POD = schema_for("", "v1", "Pod")
DEPLOYMENT = schema_for("apps", "v1", "Deployment")
T0, T1, T2, T3 = (f"2024-05-01T10:0{i}:00Z" for i in range(4))


def deployment(replicas: int | None = None, **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "nginx"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    metadata: dict[str, Any] = {"name": "web", "namespace": "default"}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def pod(*containers: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "default", **metadata},
        "spec": {"containers": list(containers)},
    }


def apply_deployment(live: dict | None, config: dict, manager: str, force: bool = False, now: str = T0) -> dict:
    return apply(live, config, manager, force, DEPLOYMENT, now, "apps/v1")


def apply_pod(live: dict | None, config: dict, manager: str, force: bool = False, now: str = T0) -> dict:
    return apply(live, config, manager, force, POD, now, "v1")


def entries(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """managedFields by manager name (every test uses each manager with one operation)."""
    return {entry["manager"]: entry for entry in obj["metadata"].get("managedFields", [])}


def fields_of(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    return entries(obj)[manager]["fieldsV1"]


# -- apply: create, re-apply, prune --------------------------------------------------------------------------


def test_apply_creates_the_object_and_an_apply_entry_owning_exactly_the_applied_fields() -> None:
    created = apply_deployment(None, deployment(2, app="web"), "deployer")

    assert created["spec"]["replicas"] == 2
    assert created["metadata"]["labels"] == {"app": "web"}
    assert created["metadata"]["managedFields"] == [
        {
            "manager": "deployer",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {'k:{"name":"main"}': {".": {}, "f:image": {}, "f:name": {}}}},
                    },
                },
            },
        }
    ]


def test_reapplying_without_a_label_removes_it_when_no_other_manager_owns_it() -> None:
    live = apply_deployment(None, deployment(app="web", tier="front", team="a"), "deployer")
    live = apply_deployment(live, deployment(app="web", team="a"), "labeller-2")  # shares app and team

    after = apply_deployment(live, deployment(app="web"), "deployer", now=T1)

    assert after["metadata"]["labels"] == {"app": "web", "team": "a"}  # team is still labeller-2's
    assert fields_of(after, "deployer")["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert entries(after)["deployer"]["time"] == T1


def test_reapplying_without_any_label_drops_the_labels_field() -> None:
    live = apply_deployment(None, deployment(app="web"), "deployer")

    after = apply_deployment(live, deployment(), "deployer", now=T1)

    assert "labels" not in after["metadata"]
    assert (after["metadata"]["name"], after["metadata"]["namespace"]) == ("web", "default")
    assert "f:metadata" not in fields_of(after, "deployer")


def test_a_field_the_applier_stops_applying_stays_when_an_update_manager_set_it() -> None:
    live = apply_deployment(None, deployment(3), "deployer")
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    update_managed_fields(live, scaled, "autoscaler", schema=DEPLOYMENT, now=T1, api_version="apps/v1")

    after = apply_deployment(scaled, deployment(), "deployer", now=T2)

    assert after["spec"]["replicas"] == 5
    assert fields_of(after, "autoscaler") == {"f:spec": {"f:replicas": {}}}


def test_an_unchanged_reapply_keeps_the_entry_time() -> None:
    live = apply_deployment(None, deployment(2), "deployer")

    again = apply_deployment(live, deployment(2), "deployer", now=T1)

    assert again == live


# -- apply: conflicts and force ------------------------------------------------------------------------------


def test_two_appliers_setting_different_replicas_conflict_with_kubes_message() -> None:
    live = apply_deployment(None, deployment(2), "deployer")

    with pytest.raises(ApplyConflict) as caught:
        apply_deployment(live, deployment(3), "other")

    error = caught.value
    assert isinstance(error, ApiError)
    assert (error.code, error.reason) == (409, "Conflict")
    assert error.message == 'Apply failed with 1 conflict: conflict with "deployer": .spec.replicas'
    assert error.details == {
        "causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "deployer"', "field": ".spec.replicas"}]
    }
    assert error.conflicts == [("deployer", ".spec.replicas")]


def test_applying_the_same_value_shares_ownership_without_conflict() -> None:
    live = apply_deployment(None, deployment(2), "deployer")

    shared = apply_deployment(live, deployment(2), "other", now=T1)

    assert fields_of(shared, "other")["f:spec"]["f:replicas"] == {}
    assert fields_of(shared, "deployer")["f:spec"]["f:replicas"] == {}


def test_a_conflict_with_an_update_manager_names_the_api_version_it_wrote_with() -> None:
    created = deployment(2)
    update_managed_fields(None, created, "kubectl-client-side-apply", schema=DEPLOYMENT, now=T0, api_version="apps/v1")

    with pytest.raises(ApplyConflict) as caught:
        apply_deployment(created, deployment(3), "ssa")

    assert caught.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )


def test_several_conflicts_are_listed_by_manager() -> None:
    live = apply_deployment(None, deployment(2, app="web"), "a-deployer")
    live = apply_deployment(live, deployment(2, tier="x"), "b-labeller")

    with pytest.raises(ApplyConflict) as caught:
        apply_deployment(live, deployment(4, app="api", tier="y"), "c")

    assert caught.value.message == (
        "Apply failed with 4 conflicts: "
        'conflicts with "a-deployer":\n- .metadata.labels.app\n- .spec.replicas\n'
        'conflicts with "b-labeller":\n- .metadata.labels.tier\n- .spec.replicas'
    )
    assert [cause["field"] for cause in caught.value.details["causes"]] == [
        ".metadata.labels.app",
        ".spec.replicas",
        ".metadata.labels.tier",
        ".spec.replicas",
    ]


def test_force_takes_the_field_from_the_other_applier() -> None:
    live = apply_deployment(None, deployment(2, app="web"), "deployer")

    forced = apply_deployment(live, deployment(3), "other", force=True, now=T1)

    assert forced["spec"]["replicas"] == 3
    assert fields_of(forced, "other")["f:spec"]["f:replicas"] == {}
    assert "f:replicas" not in fields_of(forced, "deployer")["f:spec"]
    # the loser no longer owns replicas, so dropping it from its config does not remove it
    later = apply_deployment(forced, deployment(app="web"), "deployer", now=T2)
    assert later["spec"]["replicas"] == 3


def test_an_update_takes_ownership_and_the_applier_then_conflicts_with_it() -> None:
    live = apply_deployment(None, deployment(2), "deployer")
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 7
    update_managed_fields(live, edited, "kubectl-edit", schema=DEPLOYMENT, now=T1, api_version="apps/v1")

    assert entries(edited)["kubectl-edit"] == {
        "manager": "kubectl-edit",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }
    assert "f:replicas" not in fields_of(edited, "deployer")["f:spec"]
    with pytest.raises(ApplyConflict) as caught:
        apply_deployment(edited, deployment(2), "deployer", now=T2)
    assert caught.value.conflicts == [("kubectl-edit", ".spec.replicas")]


# -- apply: list merging -------------------------------------------------------------------------------------


def test_containers_merge_by_name_and_each_applier_prunes_only_its_own() -> None:
    main = {"name": "main", "image": "nginx:1.25"}
    sidecar = {"name": "log", "image": "busybox"}
    live = apply_pod(None, pod(main), "app-team")
    live = apply_pod(live, pod(sidecar), "mesh")

    assert [c["name"] for c in live["spec"]["containers"]] == ["main", "log"]
    bumped = apply_pod(live, pod({"name": "main", "image": "nginx:1.27"}), "app-team", now=T1)
    assert bumped["spec"]["containers"] == [{"name": "main", "image": "nginx:1.27"}, sidecar]

    without_sidecar = apply_pod(bumped, pod(), "mesh", now=T2)
    assert without_sidecar["spec"]["containers"] == [{"name": "main", "image": "nginx:1.27"}]
    assert "mesh" not in entries(without_sidecar)


def test_an_applied_port_without_protocol_matches_the_defaulted_tcp_port() -> None:
    live = pod({"name": "main", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]})
    update_managed_fields(None, live, "creator", schema=POD, now=T0, api_version="v1")

    applied = apply_pod(live, pod({"name": "main", "ports": [{"containerPort": 80}]}), "ssa", now=T1)

    assert applied["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    ports = fields_of(applied, "ssa")["f:spec"]["f:containers"]['k:{"name":"main"}']["f:ports"]
    assert ports == {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}


def test_finalizers_are_a_set_each_applier_owning_its_own_values() -> None:
    live = apply_pod(None, pod(finalizers=["a.io/x"]), "one")
    live = apply_pod(live, pod(finalizers=["b.io/y"]), "two")

    assert live["metadata"]["finalizers"] == ["a.io/x", "b.io/y"]
    assert fields_of(live, "two")["f:metadata"] == {"f:finalizers": {'v:"b.io/y"': {}}}

    dropped = apply_pod(live, pod(), "one", now=T1)
    assert dropped["metadata"]["finalizers"] == ["b.io/y"]


# -- kubectl: client-side apply, then apply --server-side (kubectl-wire.md 6.1 and 7) ------------------------


def client_side_created_pod() -> dict[str, Any]:
    """The pod after kubectl apply's POST (6.1), defaulted as the server stores it."""
    config = pod({"image": "nginx:1.25", "name": "main", "ports": [{"containerPort": 80}]}, labels={"app": "demo"})
    config["metadata"]["annotations"] = {}
    last_applied = json.dumps(config, sort_keys=True, separators=(",", ":")) + "\n"
    created = copy.deepcopy(config)
    created["metadata"]["annotations"] = {LAST_APPLIED: last_applied}
    created["metadata"]["uid"] = "6b9f"
    container = created["spec"]["containers"][0]
    container["ports"][0]["protocol"] = "TCP"
    container["imagePullPolicy"] = "IfNotPresent"
    created["spec"]["dnsPolicy"] = "ClusterFirst"
    update_managed_fields(None, created, "kubectl-client-side-apply", schema=POD, now=T0, api_version="v1")
    return created


def test_create_by_client_side_apply_records_an_update_entry_shaped_like_kubes() -> None:
    created = client_side_created_pod()

    assert created["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:annotations": {".": {}, f"f:{LAST_APPLIED}": {}},
                    "f:labels": {".": {}, "f:app": {}},
                },
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"main"}': {
                            ".": {},
                            "f:image": {},
                            "f:imagePullPolicy": {},
                            "f:name": {},
                            "f:ports": {
                                ".": {},
                                'k:{"containerPort":80,"protocol":"TCP"}': {
                                    ".": {},
                                    "f:containerPort": {},
                                    "f:protocol": {},
                                },
                            },
                        }
                    },
                    "f:dnsPolicy": {},
                },
            },
        }
    ]


def test_kubectl_server_side_apply_takes_over_client_side_apply_without_conflicts() -> None:
    live = client_side_created_pod()
    config = pod({"image": "nginx:1.28", "name": "main", "ports": [{"containerPort": 80}]}, labels={"app": "demo"})

    # any other manager conflicts on the image the client-side apply set ...
    with pytest.raises(ApplyConflict) as caught:
        apply_pod(live, config, "someone", now=T1)
    assert caught.value.conflicts == [("kubectl-client-side-apply", '.spec.containers[name="main"].image')]

    # ... but kubectl may take what its last-applied annotation shows it set (step 2)
    applied = apply_pod(live, config, "kubectl", now=T1)
    assert applied["spec"]["containers"][0]["image"] == "nginx:1.28"
    rewritten = applied["metadata"]["annotations"][LAST_APPLIED]
    assert json.loads(rewritten) == config and rewritten.endswith("}\n")

    # step 3: kubectl re-applies the annotation as kubectl-last-applied
    annotation_only = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"annotations": {LAST_APPLIED: rewritten}, "name": "app", "namespace": "default"},
    }
    final = apply_pod(applied, annotation_only, "kubectl-last-applied", now=T2)

    assert final["metadata"]["managedFields"] == [
        {  # the object did not change, so kube records no time
            "manager": "kubectl-last-applied",
            "operation": "Apply",
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{LAST_APPLIED}": {}}}},
        },
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"main"}': {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                        }
                    }
                },
            },
        },
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:annotations": {".": {}, f"f:{LAST_APPLIED}": {}},
                    "f:labels": {".": {}, "f:app": {}},
                },
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"main"}': {
                            ".": {},
                            "f:imagePullPolicy": {},
                            "f:name": {},
                            "f:ports": {
                                ".": {},
                                'k:{"containerPort":80,"protocol":"TCP"}': {
                                    ".": {},
                                    "f:containerPort": {},
                                    "f:protocol": {},
                                },
                            },
                        }
                    },
                    "f:dnsPolicy": {},
                },
            },
        },
    ]


def test_kubectl_still_conflicts_on_fields_changed_since_its_client_side_apply() -> None:
    live = client_side_created_pod()
    edited = copy.deepcopy(live)
    edited["spec"]["containers"][0]["image"] = "nginx:edited"
    update_managed_fields(live, edited, "kubectl-client-side-apply", schema=POD, now=T1, api_version="v1")
    config = pod({"image": "nginx:1.28", "name": "main"}, labels={"app": "demo"})

    with pytest.raises(ApplyConflict) as caught:
        apply_pod(edited, config, "kubectl", now=T2)

    assert caught.value.conflicts == [("kubectl-client-side-apply", '.spec.containers[name="main"].image')]


# -- status, subresources, malformed input -------------------------------------------------------------------


def test_apply_to_the_main_resource_never_changes_or_owns_status() -> None:
    live = apply_pod(None, pod({"name": "main", "image": "nginx"}), "app-team")
    live["status"] = {"phase": "Running"}
    config = pod({"name": "main", "image": "nginx"})
    config["status"] = {"phase": "Failed"}

    applied = apply_pod(live, config, "app-team", now=T1)

    assert applied["status"] == {"phase": "Running"}
    assert "f:status" not in fields_of(applied, "app-team")


def test_a_status_write_is_recorded_under_the_status_subresource_and_ignores_spec() -> None:
    live = pod({"name": "main", "image": "nginx"})
    update_managed_fields(None, live, "creator", schema=POD, now=T0, api_version="v1")
    reported = copy.deepcopy(live)
    reported["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    reported["spec"]["containers"][0]["image"] = "ignored-by-the-status-strategy"

    update_managed_fields(live, reported, "kubelet", subresource="status", schema=POD, now=T1, api_version="v1")

    assert entries(reported)["kubelet"] == {
        "manager": "kubelet",
        "operation": "Update",
        "apiVersion": "v1",
        "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:status": {
                "f:conditions": {".": {}, 'k:{"type":"Ready"}': {".": {}, "f:status": {}, "f:type": {}}},
                "f:phase": {},
            }
        },
        "subresource": "status",
    }
    assert entries(reported)["creator"] == entries(live)["creator"]


def test_a_write_that_changes_nothing_tracked_leaves_the_entries_as_they_were() -> None:
    live = pod({"name": "main", "image": "nginx"}, labels={"app": "x"})
    update_managed_fields(None, live, "creator", schema=POD, now=T0, api_version="v1")
    touched = copy.deepcopy(live)
    touched["metadata"]["resourceVersion"] = "42"

    update_managed_fields(live, touched, "toucher", schema=POD, now=T1, api_version="v1")

    assert touched["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_managed_fields_sent_with_a_write_replace_the_stored_ones() -> None:
    live = apply_pod(None, pod(labels={"app": "x"}), "ssa")
    live = apply_pod(live, pod(labels={"app": "x", "tier": "t"}), "other")
    put = copy.deepcopy(live)
    put["metadata"]["managedFields"] = [e for e in put["metadata"]["managedFields"] if e["manager"] == "other"]
    put["metadata"]["labels"]["team"] = "a"

    update_managed_fields(live, put, "kubectl-replace", schema=POD, now=T1, api_version="v1")

    assert [e["manager"] for e in put["metadata"]["managedFields"]] == ["other", "kubectl-replace"]
    assert fields_of(put, "kubectl-replace") == {"f:metadata": {"f:labels": {"f:team": {}}}}


def test_one_empty_managed_fields_entry_clears_them_until_the_first_apply() -> None:
    live = pod({"name": "main", "image": "nginx"}, labels={"app": "x"})
    update_managed_fields(None, live, "creator", schema=POD, now=T0, api_version="v1")
    cleared = copy.deepcopy(live)
    cleared["metadata"]["managedFields"] = [{}]
    cleared["metadata"]["labels"]["app"] = "y"

    update_managed_fields(live, cleared, "editor", schema=POD, now=T1, api_version="v1")
    assert "managedFields" not in cleared["metadata"]

    # an untracked object stays untracked by updates ...
    relabelled = copy.deepcopy(cleared)
    relabelled["metadata"]["labels"]["app"] = "z"
    update_managed_fields(cleared, relabelled, "editor", schema=POD, now=T2, api_version="v1")
    assert "managedFields" not in relabelled["metadata"]

    # ... until the first apply, which finds everything owned by "before-first-apply"
    with pytest.raises(ApplyConflict) as caught:
        apply_pod(cleared, pod(labels={"app": "z"}), "ssa", now=T2)
    assert caught.value.conflicts == [("before-first-apply", ".metadata.labels.app")]
    applied = apply_pod(cleared, pod(labels={"app": "y"}), "ssa", now=T2)
    assert [(e["manager"], e["operation"], e.get("time")) for e in applied["metadata"]["managedFields"]] == [
        ("ssa", "Apply", None),
        ("before-first-apply", "Update", T2),
    ]


def test_update_managers_beyond_ten_are_merged_into_ancient_changes() -> None:
    live = pod({"name": "main", "image": "nginx"})
    update_managed_fields(None, live, "creator", schema=POD, now=T0, api_version="v1")
    for i in range(11):
        new = copy.deepcopy(live)
        new["metadata"].setdefault("labels", {})[f"l{i}"] = "v"
        update_managed_fields(
            live, new, f"writer-{i:02}", schema=POD, now=f"2024-05-01T11:{i:02}:00Z", api_version="v1"
        )
        live = new

    managers = [entry["manager"] for entry in live["metadata"]["managedFields"]]
    assert len(managers) == 10
    # the 11th updater merged the two oldest into a bucket; the 12th merged the next oldest into it
    assert managers == ["ancient-changes"] + [f"writer-{i:02}" for i in range(2, 11)]
    ancient = entries(live)["ancient-changes"]
    assert ancient["time"] == "2024-05-01T11:01:00Z"
    assert ancient["fieldsV1"]["f:metadata"]["f:labels"] == {".": {}, "f:l0": {}, "f:l1": {}}
    assert "f:spec" in ancient["fieldsV1"]  # the creator's fields


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({**pod(), "apiVersion": "v2"}, "invalid object type: /v2, Kind=Pod"),
        (pod(managedFields=[{"manager": "x"}]), "metadata.managedFields must be nil"),
    ],
)
def test_a_malformed_configuration_is_a_bad_request(config: dict, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        apply_pod(None, config, "ssa")
    assert (caught.value.code, caught.value.message) == (400, message)


# -- the FieldsV1 set algebra --------------------------------------------------------------------------------


def test_set_algebra_follows_membership_markers() -> None:
    owner = {"f:spec": {"f:replicas": {}, "f:template": {".": {}, "f:x": {}}}}
    changed = {"f:spec": {"f:template": {}, "f:replicas": {}}}

    assert intersection(owner, changed) == {"f:spec": {"f:replicas": {}, "f:template": {}}}
    # taking away a member leaves what was below it
    assert difference(owner, changed) == {"f:spec": {"f:template": {"f:x": {}}}}
    assert difference(owner, {"f:other": {}}) is owner
    assert union({"f:b": {}}, {"f:a": {"f:c": {}}, "f:b": {"f:d": {}}}) == {
        "f:a": {"f:c": {}},
        "f:b": {".": {}, "f:d": {}},
    }
    assert list(union({"f:z": {}}, {'k:{"n":1}': {}, "f:a": {}})) == ["f:a", "f:z", 'k:{"n":1}']


def test_member_paths_print_as_kube_prints_them() -> None:
    fields = {
        "f:spec": {
            "f:containers": {'k:{"name":"main"}': {"f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {}}}},
            "f:finalizers": {'v:"a.io/x"': {}},
            "f:replicas": {},
        }
    }

    assert [path_string(p) for p in members(fields)] == [
        ".spec.replicas",
        '.spec.containers[name="main"].ports[containerPort=80,protocol="TCP"]',
        '.spec.finalizers[="a.io/x"]',
    ]
