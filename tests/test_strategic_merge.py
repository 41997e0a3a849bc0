"""Strategic merge patch as kube-apiserver applies it, plus the other patch kinds sharing PatchError.

Cases follow apimachinery's strategicpatch test tables, on real kinds and the served schemas.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shim.apiserver.patch import PatchError, json_merge_patch, json_patch, strategic_merge_patch
from shim.apiserver.schema import schema_for

POD = schema_for("", "v1", "Pod")
DEPLOYMENT = schema_for("apps", "v1", "Deployment")


def pod(*containers: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "default", **metadata},
        "spec": {"containers": list(containers)},
    }


def names(obj: dict[str, Any]) -> list[str]:
    return [c["name"] for c in obj["spec"]["containers"]]


def test_kubectl_second_apply_body_merges_containers_by_name_and_keeps_their_other_fields() -> None:
    live = pod(
        {"name": "main", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        labels={"app": "demo", "tier": "web"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{old}"},
    )
    # byte-for-byte what kubectl 1.27-1.33 sends (kubectl-wire.md 6.2)
    patch = {
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{new}"},
            "labels": {"tier": "frontend"},
        },
        "spec": {
            "$setElementOrder/containers": [{"name": "main"}],
            "containers": [{"image": "nginx:1.27", "name": "main"}],
        },
    }
    result = strategic_merge_patch(live, patch, POD)
    assert result["metadata"]["labels"] == {"app": "demo", "tier": "frontend"}
    assert result["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{new}"}
    assert result["spec"]["containers"] == [
        {"name": "main", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
    ]


def test_the_original_and_the_patch_are_not_mutated() -> None:
    live = pod({"name": "main", "image": "a"}, labels={"x": "1"})
    patch = {
        "metadata": {"labels": {"x": None}},
        "spec": {"containers": [{"name": "main", "$patch": "delete"}]},
    }
    before_live, before_patch = copy.deepcopy(live), copy.deepcopy(patch)
    strategic_merge_patch(live, patch, POD)
    assert (live, patch) == (before_live, before_patch)


def test_a_new_container_is_added_and_existing_ones_are_kept() -> None:
    live = pod({"name": "main", "image": "a"}, {"name": "side", "image": "b"})
    result = strategic_merge_patch(live, {"spec": {"containers": [{"name": "extra", "image": "c"}]}}, POD)
    # upstream places patch items not in the live list before the live items
    assert names(result) == ["extra", "main", "side"]
    assert result["spec"]["containers"][1] == {"name": "main", "image": "a"}


def test_patch_order_wins_over_live_order_for_the_items_it_names() -> None:
    # upstream: "preserve the order from the patch in a merging list 2"
    live = pod({"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"})
    patch = {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}
    result = strategic_merge_patch(live, patch, POD)
    assert result["spec"]["containers"] == [
        {"name": "2", "image": "b"},
        {"name": "3", "image": "c"},
        {"name": "1", "image": "a"},
    ]


def test_set_element_order_may_name_items_the_list_does_not_have() -> None:
    # upstream: "$setElementOrder contains item that is not present in the list to be merged"
    live = pod({"name": "1"}, {"name": "3"})
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
            "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}],
        }
    }
    result = strategic_merge_patch(live, patch, POD)
    assert result["spec"]["containers"] == [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]


def test_set_element_order_that_contradicts_the_patch_list_is_refused() -> None:
    live = pod({"name": "1"}, {"name": "3"}, {"name": "2"})
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
            "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}],
        }
    }
    with pytest.raises(PatchError, match="doesn't match"):
        strategic_merge_patch(live, patch, POD)


def test_env_merges_by_name() -> None:
    live = pod({"name": "main", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]})
    patch = {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "20"}, {"name": "C"}]}]}}
    env = strategic_merge_patch(live, patch, POD)["spec"]["containers"][0]["env"]
    assert sorted((e["name"], e.get("value")) for e in env) == [("A", "1"), ("B", "20"), ("C", None)]


def test_ports_merge_by_container_port() -> None:
    live = pod({"name": "main", "ports": [{"containerPort": 80, "protocol": "TCP"}]})
    patch = {"spec": {"containers": [{"name": "main", "ports": [{"containerPort": 80, "name": "http"}]}]}}
    ports = strategic_merge_patch(live, patch, POD)["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]


def test_patch_delete_removes_list_elements_with_that_merge_key() -> None:
    live = pod({"name": "main"}, {"name": "side"}, {"name": "side"})
    result = strategic_merge_patch(live, {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}, POD)
    assert names(result) == ["main"]


def test_patch_replace_element_makes_the_patch_the_whole_list() -> None:
    live = pod({"name": "main"}, {"name": "side"})
    patch = {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}}
    assert strategic_merge_patch(live, patch, POD)["spec"]["containers"] == [{"name": "only", "image": "x"}]


def test_patch_replace_on_a_map_replaces_it_and_delete_empties_it() -> None:
    live = pod(labels={"a": "1", "b": "2"}, annotations={"x": "1"})
    patch = {"metadata": {"labels": {"$patch": "replace", "c": "3"}, "annotations": {"$patch": "delete"}}}
    metadata = strategic_merge_patch(live, patch, POD)["metadata"]
    assert (metadata["labels"], metadata["annotations"]) == ({"c": "3"}, {})


def test_patch_merge_in_a_list_and_unknown_directives_are_refused() -> None:
    live = pod({"name": "main"}, labels={"a": "1"})
    with pytest.raises(PatchError, match="merging lists cannot yet be specified"):
        strategic_merge_patch(live, {"spec": {"containers": [{"name": "main", "$patch": "merge"}]}}, POD)
    with pytest.raises(PatchError, match="unknown patch type: bogus"):
        strategic_merge_patch(live, {"metadata": {"labels": {"$patch": "bogus"}}}, POD)


def test_null_deletes_a_map_key_and_nulls_never_reach_the_result() -> None:
    live = pod({"name": "main", "image": "a"}, labels={"app": "demo", "tier": "web"})
    patch = {"metadata": {"labels": {"tier": None, "gone": None}, "annotations": {"new": None, "kept": "1"}}}
    metadata = strategic_merge_patch(live, patch, POD)["metadata"]
    assert metadata["labels"] == {"app": "demo"}
    assert metadata["annotations"] == {"kept": "1"}


def test_retain_keys_clears_the_fields_it_does_not_list() -> None:
    # what kubectl sends when a Deployment switches from RollingUpdate to Recreate
    live = {
        "metadata": {"name": "web"},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}},
    }
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert strategic_merge_patch(live, patch, DEPLOYMENT)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_must_list_every_field_the_patch_sets() -> None:
    live = {"spec": {"strategy": {"type": "RollingUpdate"}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}}
    with pytest.raises(PatchError, match="invalid patch format of retainKeys") as raised:
        strategic_merge_patch(live, patch, DEPLOYMENT)
    assert raised.value.code == 400


def test_delete_from_primitive_list_removes_finalizers() -> None:
    live = pod(finalizers=["a", "b", "c"])
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "missing"]}}
    assert strategic_merge_patch(live, patch, POD)["metadata"]["finalizers"] == ["a", "c"]


def test_delete_from_primitive_list_of_an_absent_list_adds_nothing() -> None:
    live = pod()
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}
    assert "finalizers" not in strategic_merge_patch(live, patch, POD)["metadata"]


def test_finalizers_with_merge_strategy_are_unioned_without_duplicates() -> None:
    live = pod(finalizers=["a", "b"])
    result = strategic_merge_patch(live, {"metadata": {"finalizers": ["b", "c"]}}, POD)
    assert sorted(result["metadata"]["finalizers"]) == ["a", "b", "c"]


def test_set_element_order_orders_a_primitive_list() -> None:
    live = pod(finalizers=["a", "b", "c"])
    patch = {"metadata": {"$setElementOrder/finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]}}
    assert strategic_merge_patch(live, patch, POD)["metadata"]["finalizers"] == ["c", "a"]


def test_lists_without_a_merge_strategy_are_replaced() -> None:
    live = pod({"name": "main", "args": ["a", "b"], "command": ["sh"]})
    patch = {"spec": {"containers": [{"name": "main", "args": ["c"]}]}}
    container = strategic_merge_patch(live, patch, POD)["spec"]["containers"][0]
    assert (container["args"], container["command"]) == (["c"], ["sh"])


def test_a_list_element_without_its_merge_key_is_an_error() -> None:
    live = pod({"name": "main"})
    with pytest.raises(PatchError, match="does not contain declared merge key: name"):
        strategic_merge_patch(live, {"spec": {"containers": [{"image": "x"}]}}, POD)


def test_fields_without_schema_merge_like_a_json_merge_patch() -> None:
    live = {"spec": {"custom": {"a": 1, "list": [1, 2]}}, "extra": {"keep": True}}
    patch = {"spec": {"custom": {"b": 2, "list": [3]}}, "extra": {"keep": None}}
    result = strategic_merge_patch(live, patch, None)
    assert result == {"spec": {"custom": {"a": 1, "b": 2, "list": [3]}}, "extra": {}}


def test_scale_subresource_patch_sets_replicas() -> None:
    scale = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1},
    }
    result = strategic_merge_patch(scale, {"spec": {"replicas": 3}}, schema_for("autoscaling", "v1", "Scale"))
    assert result["spec"] == {"replicas": 3}


def test_a_patch_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(PatchError, match="cannot unmarshal array") as raised:
        strategic_merge_patch(pod(), [{"op": "add"}], POD)
    assert raised.value.code == 400


# -- the other patch kinds ------------------------------------------------------------------------


def test_json_merge_patch_merges_objects_replaces_lists_and_null_deletes() -> None:
    live = pod({"name": "main"}, {"name": "side"}, labels={"a": "1", "b": "2"})
    patch = {"metadata": {"labels": {"a": None, "c": {"nested": None, "x": 1}}}, "spec": {"containers": []}}
    result = json_merge_patch(live, patch)
    assert result["metadata"]["labels"] == {"b": "2", "c": {"x": 1}}
    assert result["spec"]["containers"] == []
    assert len(live["spec"]["containers"]) == 2


def test_json_merge_patch_must_be_an_object() -> None:
    with pytest.raises(PatchError, match="Invalid JSON Patch") as raised:
        json_merge_patch(pod(), ["x"])
    assert raised.value.code == 400


def test_json_patch_applies_operations_in_order() -> None:
    ops = [
        {"op": "add", "path": "/metadata/labels", "value": {"a": "1"}},
        {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
        {"op": "test", "path": "/metadata/labels/a", "value": "2"},
    ]
    assert json_patch(pod(), ops)["metadata"]["labels"] == {"a": "2"}


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ({"op": "add"}, 400),  # not a list
        ([{"op": "bogus", "path": "/a"}], 422),  # evanphx: "Unexpected kind: bogus" when applied
        ([{"op": "remove", "path": "/spec/missing"}], 422),  # does not apply
        ([{"op": "test", "path": "/kind", "value": "Service"}], 422),
    ],
)
def test_json_patch_errors_carry_kubes_status_code(ops: Any, code: int) -> None:
    with pytest.raises(PatchError) as raised:
        json_patch(pod(), ops)
    assert raised.value.code == code
