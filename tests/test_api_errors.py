"""Every failure the API answers is a `Status` with kube's code, reason and wording, and writes nothing.

Raw HTTPS against the real `kube-shim up`: typed clients hide the status line, the headers and what
happens to a malformed body.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from shim.apiserver.app import build_app
from shim.apiserver.resources import build_registry
from shim.store.log import Row
from shim.store.logstore import LogStore
from shim.store.memory import MemoryLog
from tests.rawapi import RawApi, Reply

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
NOT_FOUND = "the server could not find the requested resource"


def status_of(reply: Reply, code: int, reason: str) -> dict[str, Any]:
    """Assert `reply` is a failure Status with this code and reason; return it."""
    assert reply.status == code, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert (body["kind"], body["apiVersion"], body["status"]) == ("Status", "v1", "Failure")
    assert (body["code"], body["reason"]) == (code, reason)
    return body


def configmaps(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }


async def absent(api: RawApi, path: str) -> bool:
    return (await api.call("GET", path)).status == 404


# -- bodies ----------------------------------------------------------------------------------------------------


async def test_a_malformed_json_body_is_400_and_writes_nothing(api: RawApi, namespace: str) -> None:
    reply = await api.call("POST", configmaps(namespace), b'{"metadata": {"name": "half"')
    assert "json" in status_of(reply, 400, "BadRequest")["message"]
    assert await absent(api, configmaps(namespace) + "/half")


async def test_a_body_that_is_a_json_list_is_400(api: RawApi, namespace: str) -> None:
    reply = await api.call("POST", configmaps(namespace), b'[{"metadata": {"name": "a"}}]')
    assert "must be of type object" in status_of(reply, 400, "BadRequest")["message"]


@pytest.mark.parametrize(
    ("api_version", "kind", "message"),
    [
        ("apps/v1", "ConfigMap", "the API version in the data (apps/v1) does not match the expected API version (v1)"),
        ("v1", "Secret", "the kind in the data (Secret) does not match the expected kind (ConfigMap)"),
    ],
)
async def test_a_body_of_another_api_version_or_kind_is_400(
    api: RawApi, namespace: str, api_version: str, kind: str, message: str
) -> None:
    body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "typed"}}
    assert status_of(await api.call("POST", configmaps(namespace), body), 400, "BadRequest")["message"] == message
    assert await absent(api, configmaps(namespace) + "/typed")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Upper", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"),
        ("a" * 254, "must be no more than 253 characters"),
        ("a/b", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"),
    ],
)
async def test_an_invalid_name_is_422_invalid_with_a_cause_on_metadata_name(
    api: RawApi, namespace: str, name: str, message: str
) -> None:
    status = status_of(await api.call("POST", configmaps(namespace), {"metadata": {"name": name}}), 422, "Invalid")
    assert status["message"].startswith(f'ConfigMap "{name}" is invalid: metadata.name: Invalid value: "{name}": ')
    assert status["details"]["name"] == name and status["details"]["kind"] == "ConfigMap"
    [cause] = status["details"]["causes"]
    assert cause["reason"] == "FieldValueInvalid" and cause["field"] == "metadata.name"
    assert message in cause["message"]


async def test_a_body_over_3_mib_is_413_and_writes_nothing(api: RawApi, namespace: str) -> None:
    body = {"metadata": {"name": "huge"}, "data": {"blob": "x" * (3 * 1024 * 1024)}}
    status = status_of(await api.call("POST", configmaps(namespace), body), 413, "RequestEntityTooLarge")
    assert status["message"] == "Request entity too large: limit is 3145728"
    assert await absent(api, configmaps(namespace) + "/huge")


async def test_an_unsupported_content_type_is_415_on_post_and_on_patch(api: RawApi, namespace: str) -> None:
    post = await api.call("POST", configmaps(namespace), {"metadata": {"name": "typed"}}, content_type="text/plain")
    assert (
        "accepted media types include: application/json, application/yaml"
        in (status_of(post, 415, "UnsupportedMediaType")["message"])
    )
    assert await absent(api, configmaps(namespace) + "/typed")
    await api.ok("POST", configmaps(namespace), {"metadata": {"name": "there"}})
    # a patch needs a patch type: plain JSON is not one
    patch = await api.call("PATCH", configmaps(namespace) + "/there", {"data": {"a": "b"}})
    assert "application/merge-patch+json" in status_of(patch, 415, "UnsupportedMediaType")["message"]
    assert "data" not in await api.ok("GET", configmaps(namespace) + "/there")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"gracePeriodSeconds": "soon"}', "DeleteOptions.gracePeriodSeconds of type int64"),
        (b'{"preconditions": "uid"}', "DeleteOptions.preconditions of type v1.Preconditions"),
        (b'{"dryRun": "All"}', "DeleteOptions.dryRun of type []string"),
    ],
)
async def test_delete_options_of_the_wrong_type_are_400_and_delete_nothing(
    api: RawApi, namespace: str, body: bytes, field: str
) -> None:
    await api.ok("POST", configmaps(namespace), {"metadata": {"name": "kept"}})
    reply = await api.call("DELETE", configmaps(namespace) + "/kept", body)
    assert (
        status_of(reply, 400, "BadRequest")["message"] == f"json: cannot unmarshal string into Go struct field {field}"
    )
    assert not await absent(api, configmaps(namespace) + "/kept")


async def test_an_unknown_propagation_policy_is_422_invalid_delete_options(api: RawApi, namespace: str) -> None:
    await api.ok("POST", configmaps(namespace), {"metadata": {"name": "kept"}})
    reply = await api.call("DELETE", configmaps(namespace) + "/kept", {"propagationPolicy": "Sideways"})
    status = status_of(reply, 422, "Invalid")
    assert status["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": '
        'supported values: "Foreground", "Background", "Orphan", "nil"'
    )
    assert not await absent(api, configmaps(namespace) + "/kept")


async def test_null_fields_decode_as_go_zero_values_so_validation_reports_them(api: RawApi, namespace: str) -> None:
    """`spec: null` or a null list item is Go's zero value: a 422 naming the missing fields, never a 500."""
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    no_spec = await api.call("POST", deployments, {"metadata": {"name": "web"}, "spec": None})
    assert status_of(no_spec, 422, "Invalid")["message"] == (
        'Deployment.apps "web" is invalid: '
        "[spec.selector: Required value, spec.template.spec.containers: Required value]"
    )
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [None]}}
    empty_container = await api.call("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert status_of(empty_container, 422, "Invalid")["message"] == (
        'Pod "p" is invalid: [spec.containers[0].name: Required value, spec.containers[0].image: Required value]'
    )


# -- paths and methods -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/default/widgets",
        "/apis/nowhere.example.com/v1/widgets",
        "/api/v9/pods",
        "/api/v1/namespaces/default/configmaps/x/status",  # configmaps have no status subresource
        "/api/v1/pods/x",  # a namespaced object needs its namespace
        "/api/v1/namespaces/default/nodes",  # nodes are cluster-scoped
    ],
)
async def test_an_unknown_resource_path_is_a_404_not_found_status(api: RawApi, path: str) -> None:
    assert status_of(await api.call("GET", path), 404, "NotFound")["message"] == NOT_FOUND


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("PUT", ""), ("PATCH", ""), ("POST", "/one"), ("PUT", "/one/binding"), ("GET", "/one/eviction")],
)
async def test_a_method_the_resource_does_not_serve_is_405(
    api: RawApi, namespace: str, method: str, suffix: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/pods{suffix}"
    reply = await api.call(method, path, {}, content_type=MERGE if method == "PATCH" else "application/json")
    assert status_of(reply, 405, "MethodNotAllowed")["message"] == (
        "the server does not allow this method on the requested resource"
    )


async def test_a_missing_object_is_404_with_its_resource_and_name(api: RawApi, namespace: str) -> None:
    status = status_of(await api.call("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/nope"), 404, "NotFound")
    assert status["message"] == 'deployments.apps "nope" not found'
    assert status["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


# -- conflicts -------------------------------------------------------------------------------------------------


async def test_a_put_with_a_stale_resource_version_is_409_conflict(api: RawApi, namespace: str) -> None:
    created = await api.ok("POST", configmaps(namespace), {"metadata": {"name": "cas"}, "data": {"v": "1"}})
    await api.ok("PATCH", configmaps(namespace) + "/cas", {"data": {"v": "2"}}, content_type=MERGE)
    created["data"] = {"v": "stale"}
    status = status_of(await api.call("PUT", configmaps(namespace) + "/cas", created), 409, "Conflict")
    assert status["message"] == (
        'Operation cannot be fulfilled on configmaps "cas": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert (await api.ok("GET", configmaps(namespace) + "/cas"))["data"] == {"v": "2"}


async def test_creating_an_existing_object_is_409_already_exists(api: RawApi, namespace: str) -> None:
    await api.ok("POST", configmaps(namespace), {"metadata": {"name": "once"}, "data": {"v": "1"}})
    reply = await api.call("POST", configmaps(namespace), {"metadata": {"name": "once"}, "data": {"v": "2"}})
    status = status_of(reply, 409, "AlreadyExists")
    assert status["message"] == 'configmaps "once" already exists'
    assert status["details"] == {"name": "once", "kind": "configmaps"}
    assert (await api.ok("GET", configmaps(namespace) + "/once"))["data"] == {"v": "1"}


async def test_a_put_or_patch_that_renames_the_object_is_400(api: RawApi, namespace: str) -> None:
    created = await api.ok("POST", configmaps(namespace), {"metadata": {"name": "named"}})
    renamed = {**created, "metadata": {**created["metadata"], "name": "other"}}
    put = await api.call("PUT", configmaps(namespace) + "/named", renamed)
    message = "the name of the object (other) does not match the name on the URL (named)"
    assert status_of(put, 400, "BadRequest")["message"] == message
    rename = {"metadata": {"name": "other"}}
    patch = await api.call("PATCH", configmaps(namespace) + "/named", rename, content_type=MERGE)
    assert status_of(patch, 400, "BadRequest")["message"] == message
    assert await absent(api, configmaps(namespace) + "/other")


# -- namespaces ------------------------------------------------------------------------------------------------


async def test_creating_in_a_missing_namespace_is_404_namespace_not_found(api: RawApi) -> None:
    status = status_of(await api.call("POST", configmaps("no-such-ns"), {"metadata": {"name": "a"}}), 404, "NotFound")
    assert status["message"] == 'namespaces "no-such-ns" not found'
    assert status["details"] == {"name": "no-such-ns", "kind": "namespaces"}


async def test_creating_in_a_terminating_namespace_is_403_forbidden(api: RawApi, namespace: str) -> None:
    held = f"{namespace}-held"
    await api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": held, "finalizers": ["example.com/hold"]}})
    await api.ok("DELETE", f"/api/v1/namespaces/{held}")
    try:
        status = status_of(await api.call("POST", configmaps(held), {"metadata": {"name": "late"}}), 403, "Forbidden")
        assert status["message"] == (
            f'configmaps "late" is forbidden: unable to create new content in namespace {held} '
            "because it is being terminated"
        )
        assert status["details"]["causes"][0]["reason"] == "NamespaceTerminating"
        assert await absent(api, configmaps(held) + "/late")
    finally:
        await api.ok("PATCH", f"/api/v1/namespaces/{held}", {"metadata": {"finalizers": None}}, content_type=MERGE)


# -- query parameters ------------------------------------------------------------------------------------------


async def test_a_bad_label_selector_is_400(api: RawApi, namespace: str) -> None:
    reply = await api.call("GET", configmaps(namespace), params={"labelSelector": "app in (web"})
    assert "unable to parse requirement" in status_of(reply, 400, "BadRequest")["message"]


@pytest.mark.parametrize(
    ("resource", "selector", "message"),
    [
        ("configmaps", "data=1", '"data" is not a known field selector: only "metadata.name", "metadata.namespace"'),
        ("pods", "spec.hostname=a", "field label not supported: spec.hostname"),
    ],
)
async def test_an_unsupported_field_selector_is_400_in_kube_wording(
    api: RawApi, namespace: str, resource: str, selector: str, message: str
) -> None:
    reply = await api.call("GET", f"/api/v1/namespaces/{namespace}/{resource}", params={"fieldSelector": selector})
    assert status_of(reply, 400, "BadRequest")["message"] == message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "ten"}, 'invalid value for limit: strconv.ParseInt: parsing "ten": invalid syntax'),
        (
            {"watch": "true", "timeoutSeconds": "soon"},
            'invalid value for timeoutSeconds: strconv.ParseInt: parsing "soon": invalid syntax',
        ),
        ({"watch": "maybe"}, 'invalid value for watch: strconv.ParseBool: parsing "maybe": invalid syntax'),
        ({"resourceVersion": "abc"}, 'invalid resource version "abc"'),
        ({"continue": "not-a-token"}, "continue key is not valid: incorrect encoded start resourceVersion"),
    ],
)
async def test_a_malformed_list_or_watch_parameter_is_400(
    api: RawApi, namespace: str, params: dict[str, str], message: str
) -> None:
    reply = await api.call("GET", configmaps(namespace), params=params)
    assert status_of(reply, 400, "BadRequest")["message"] == message


async def test_a_list_at_a_future_resource_version_is_504_too_large(api: RawApi, namespace: str) -> None:
    current = int((await api.ok("GET", configmaps(namespace)))["metadata"]["resourceVersion"])
    params = {"resourceVersion": str(current + 1_000_000), "resourceVersionMatch": "Exact"}
    status = status_of(await api.call("GET", configmaps(namespace), params=params), 504, "Timeout")
    assert status["message"].startswith(f"Timeout: Too large resource version: {current + 1_000_000}, current: ")
    [cause] = status["details"]["causes"]
    assert cause == {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}


# -- strict field validation -----------------------------------------------------------------------------------


async def test_strict_field_validation_of_a_create_is_400_naming_the_unknown_field(api: RawApi, namespace: str) -> None:
    body = deployment("strict")
    body["spec"]["foo"] = 1
    reply = await api.call(
        "POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body, params={"fieldValidation": "Strict"}
    )
    assert status_of(reply, 400, "BadRequest")["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo"'
    )
    assert await absent(api, f"/apis/apps/v1/namespaces/{namespace}/deployments/strict")


async def test_strict_field_validation_reports_keys_repeated_in_the_json_body(api: RawApi, namespace: str) -> None:
    body = b'{"metadata": {"name": "twice"}, "data": {"a": "1"}, "data": {"b": "2"}}'
    reply = await api.call("POST", configmaps(namespace), body, params={"fieldValidation": "Strict"})
    assert status_of(reply, 400, "BadRequest")["message"].endswith('strict decoding error: duplicate field "data"')


async def test_strict_field_validation_of_a_patch_is_422_on_the_patch(api: RawApi, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/strictpatch"
    await api.ok("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment("strictpatch"))
    reply = await api.call(
        "PATCH", path, {"spec": {"foo": 1}}, content_type=STRATEGIC, params={"fieldValidation": "Strict"}
    )
    status = status_of(reply, 422, "Invalid")
    [cause] = status["details"]["causes"]
    assert cause["field"] == "patch" and cause["reason"] == "FieldValueInvalid"
    assert cause["message"].endswith('strict decoding error: unknown field "spec.foo"')
    assert "foo" not in (await api.ok("GET", path))["spec"]


async def test_every_error_is_json_never_an_html_page(api: RawApi, namespace: str) -> None:
    """Paths outside every route, and paths that do not even decode, still answer a Status."""
    for path in ("/nothing-here", "/api/v1/namespaces/" + namespace + "/configmaps/%zz"):
        reply = await api.call("GET", path)
        assert reply.status == 404 and orjson.loads(reply.body)["kind"] == "Status"


# -- a store failure in the middle of a watch --------------------------------------------------------------------


class UnreadableHistory(MemoryLog):
    """A log whose old history cannot be read back, like a SQLite file with a bad page."""

    async def read_range(self, after: int, upto: int, prefix: str) -> list[tuple[Row, bytes | None]]:
        raise sqlite3.DatabaseError("database disk image is malformed")


async def test_a_store_failure_during_a_watch_is_an_error_event_not_a_second_response() -> None:
    """The 200 and its headers are already sent: the failure arrives as an ERROR event, and the stream ends."""
    store = await LogStore.open(UnreadableHistory(), window=1)  # replays older than one event read the log
    async with TestClient(TestServer(build_app(store, build_registry()))) as client:
        for body in ({"metadata": {"name": "default"}}, {"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}):
            path = "/api/v1/namespaces" + ("/default/configmaps" if body["metadata"]["name"] != "default" else "")
            assert (await client.post(path, json=body)).status == 201
        resp = await client.get("/api/v1/namespaces/default/configmaps", params={"watch": "1", "resourceVersion": "1"})
        assert resp.status == 200
        # a second response written inside the stream leaves it unterminated, or garbles it
        [line] = (await asyncio.wait_for(resp.read(), 10)).splitlines()
        event = orjson.loads(line)
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (500, "InternalError")
        assert event["object"]["message"] == "Internal error occurred: database disk image is malformed"
    await store.close()


async def test_a_path_nothing_serves_is_kubes_generic_404_byte_for_byte(api: RawApi) -> None:
    reply = await api.call("GET", "/api/v1/namespaces/default/pods/x/nothing-here")
    assert reply.status == 404
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}'
    )


async def test_a_core_object_not_found_has_no_group_in_its_details(api: RawApi) -> None:
    reply = await api.call("GET", "/api/v1/namespaces/default/configmaps/absent")
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"configmaps \\"absent\\" not found","reason":"NotFound",'
        b'"details":{"name":"absent","kind":"configmaps"},"code":404}'
    )


async def test_unknown_field_warnings_quote_the_field_as_go_does(api: RawApi, namespace: str) -> None:
    # the field is quoted with Go's %q (sigs.k8s.io/json), so no control character reaches the header
    reply = await api.call("POST", configmaps(namespace), b'{"metadata": {"name": "w"}, "a\\u007fb": 1}')
    assert reply.status == 201 and reply.headers["Warning"] == '299 - "unknown field \\"a\\\\x7fb\\""'
    reply = await api.call("POST", configmaps(namespace), b'{"metadata": {"name": "v"}, "say \\"hi\\"": 1}')
    assert reply.status == 201
    assert reply.headers["Warning"] == '299 - "unknown field \\"say \\\\\\"hi\\\\\\"\\""'
