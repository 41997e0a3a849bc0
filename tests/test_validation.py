"""Schema-level validation of request bodies: wrong types, bad formats, unknown and duplicate fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.apiserver.validation import duplicate_fields, find_schema_problems, strict_decoding_message


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "creationTimestamp": None},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": 0.1},
                            },
                            "env": [{"name": "A", "value": "1"}],
                        }
                    ]
                },
            },
        },
        "status": {
            "replicas": 2,
            "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2025-01-01T10:00:00+00:00"}],
        },
    }


def problems(obj: dict[str, Any], group: str = "apps", version: str = "v1", kind: str = "Deployment") -> Any:
    return find_schema_problems(group, version, kind, obj)


def test_a_valid_deployment_has_no_problems() -> None:
    assert problems(deployment()) == ([], [])


def test_null_is_accepted_for_any_field() -> None:
    obj = deployment()
    obj["spec"]["replicas"] = None
    obj["spec"]["template"]["spec"]["containers"][0]["ports"] = None
    obj["metadata"]["labels"]["app"] = None
    assert problems(obj) == ([], [])


def test_a_value_of_the_wrong_type_is_a_type_invalid_cause_at_its_path() -> None:
    obj = deployment()
    obj["spec"]["replicas"] = "3"
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = 5
    causes, unknown = problems(obj)
    assert unknown == []
    assert causes == [
        {
            "reason": "FieldValueTypeInvalid",
            "message": 'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
            "field": "spec.replicas",
        },
        {
            "reason": "FieldValueTypeInvalid",
            "message": 'Invalid value: "integer": spec.template.spec.containers[0].image in body '
            'must be of type string: "integer"',
            "field": "spec.template.spec.containers[0].image",
        },
    ]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("spec", "replicas"), 2.5, "spec.replicas"),  # Go will not put a float in an int32
        (("spec", "replicas"), True, "spec.replicas"),
        (("spec", "replicas"), 2**31, "spec.replicas"),  # out of int32
        (("spec", "selector"), ["app"], "spec.selector"),
        (("spec", "template", "spec", "containers"), {"name": "x"}, "spec.template.spec.containers"),
        (("metadata", "labels", "app"), 1, "metadata.labels[app]"),
        (("metadata", "creationTimestamp"), "yesterday", "metadata.creationTimestamp"),
        (("spec", "strategy", "rollingUpdate", "maxSurge"), True, "spec.strategy.rollingUpdate.maxSurge"),
    ],
)
def test_values_go_could_not_decode_are_causes(path: tuple[str, ...], value: Any, field: str) -> None:
    obj = deployment()
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    causes, _ = problems(obj)
    assert [c["field"] for c in causes] == [field]


def test_int_or_string_takes_either() -> None:
    obj = deployment()
    obj["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 1, "maxUnavailable": "10%"}
    assert problems(obj) == ([], [])


@pytest.mark.parametrize("quantity", ["500m", "1Gi", "1.5", "2e3", "+1k", ".5", 1, 0.25])
def test_valid_quantities_pass(quantity: Any) -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = quantity
    assert problems(obj) == ([], [])


@pytest.mark.parametrize("quantity", ["abc", "1GB", "", "1 Gi"])
def test_invalid_quantities_are_rejected_with_kubes_message(quantity: str) -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = quantity
    causes, _ = problems(obj)
    assert len(causes) == 1
    assert causes[0]["field"] == "spec.template.spec.containers[0].resources.limits[memory]"
    assert causes[0]["reason"] == "FieldValueInvalid"
    assert "quantities must match the regular expression" in causes[0]["message"]


def test_secret_data_must_be_base64() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"ok": "aGk=", "bad": "h!"},
    }
    causes, _ = find_schema_problems("", "v1", "Secret", secret)
    assert [c["field"] for c in causes] == ["data[bad]"]
    assert "illegal base64 data at input byte 1" in causes[0]["message"]


def test_unknown_fields_are_reported_in_kubes_wording_with_list_indexes() -> None:
    obj = deployment()
    obj["spec"]["foo"] = 1
    obj["metadata"]["bogus"] = {"x": 1}
    obj["spec"]["template"]["spec"]["containers"][0]["imagePolicy"] = "Always"
    causes, unknown = problems(obj)
    assert causes == []
    assert unknown == [
        'unknown field "metadata.bogus"',
        'unknown field "spec.template.spec.containers[0].imagePolicy"',
        'unknown field "spec.foo"',
    ]
    assert strict_decoding_message(unknown[:1]) == 'strict decoding error: unknown field "metadata.bogus"'


def test_free_form_objects_and_map_keys_are_not_unknown_fields() -> None:
    obj = deployment()
    obj["metadata"]["managedFields"] = [
        {
            "manager": "kubectl",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:x": {}}},
        }
    ]
    obj["metadata"]["annotations"] = {"anything.example.com/goes": "here"}
    assert problems(obj) == ([], [])


def test_each_served_kind_is_checked_against_its_own_schema() -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1"}}
    lease["spec"] = {
        "holderIdentity": "n1",
        "leaseDurationSeconds": "40",
        "renewTime": "2025-01-01T00:00:00.000000Z",
    }
    causes, _ = find_schema_problems("coordination.k8s.io", "v1", "Lease", lease)
    assert [c["field"] for c in causes] == ["spec.leaseDurationSeconds"]
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e"},
        "note": "x",
        "message": "m",
    }
    assert find_schema_problems("events.k8s.io", "v1", "Event", event)[1] == ['unknown field "message"']


def test_a_kind_without_a_schema_has_no_problems() -> None:
    assert find_schema_problems("example.com", "v1", "Widget", {"anything": True}) == ([], [])


def test_duplicate_fields_are_found_in_the_raw_body() -> None:
    body = b'{"spec":{"replicas":1,"replicas":2,"template":{"spec":{"containers":[{"name":"a","name":"b"}]}}}}'
    assert duplicate_fields(body) == [
        'duplicate field "spec.replicas"',
        'duplicate field "spec.template.spec.containers[0].name"',
    ]


def test_a_body_without_duplicates_or_not_json_has_none() -> None:
    assert duplicate_fields(json.dumps(deployment()).encode()) == []
    assert duplicate_fields(b"kind: Deployment\n") == []
