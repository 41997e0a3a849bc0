"""Kube says: every served kind, every verb, valid and invalid input, against answers recorded from kube 1.33.

The rows live in `tests/kube_says/`: `kinds.yaml` holds each served kind (where it is served, a valid object,
what its own Validate and ValidateUpdate refuse, what its strategy does on create and its store on delete),
`common.yaml` the rows every kind gets (create/get/list/update/patch of all four types/delete) with the code,
reason, exact message or the shape of the answer, and where in kube's source the answer comes from. Each row
runs against the real `kube-shim up` over raw HTTPS in a fresh namespace, so codes and bodies are exact.
A served kind without rows fails the module: discovery is read at test time, like `kubectl api-resources`.
"""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.rawapi import RawApi, Reply

CASES = Path(__file__).parent / "kube_says"
KINDS: dict[str, dict[str, Any]] = yaml.safe_load((CASES / "kinds.yaml").read_text())
COMMON: dict[str, Any] = yaml.safe_load((CASES / "common.yaml").read_text())
FOREIGN_UID = "00000000-0000-0000-0000-000000000000"
CONTENT_TYPES = {
    "patch-json": "application/json-patch+json",
    "patch-merge": "application/merge-patch+json",
    "patch-strategic": "application/strategic-merge-patch+json",
    "patch-apply": "application/apply-patch+yaml",
}
# Rows where kube-shim still answers differently from kube, with why ("*" for every kind); strict, so a fix shows.
KNOWN_DIFFERENCES: dict[str, str] = {}


@dataclass(frozen=True)
class Row:
    """One common row applied to one kind."""

    kind_key: str
    row: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.kind_key}:{self.row['id']}"

    @property
    def kind(self) -> dict[str, Any]:
        return KINDS[self.kind_key]


def rows() -> list[Any]:
    """Every (kind, common row) pair that applies, as pytest params (known differences strictly xfailed)."""
    params = []
    for kind_key, kind in KINDS.items():
        for row in COMMON["rows"]:
            if row.get("only_if") and not kind.get(row["only_if"]):
                continue
            case = Row(kind_key, row)
            marks = []
            known = KNOWN_DIFFERENCES.get(case.id) or KNOWN_DIFFERENCES.get(f"*:{row['id']}")
            if known:
                marks.append(pytest.mark.xfail(reason=known, strict=True))
            params.append(pytest.param(case, id=case.id, marks=marks))
    return params


async def test_every_served_kind_has_rows(api: RawApi) -> None:
    """Discovery (`/api`, `/apis`) lists no top-level resource without rows here, and none here is unserved."""
    served = set()
    bases = ["/api/v1"]
    for group in (await api.ok("GET", "/apis"))["groups"]:
        bases += [f"/apis/{version['groupVersion']}" for version in group["versions"]]
    for base in bases:
        group_version = base.removeprefix("/api/").removeprefix("/apis/")
        for resource in (await api.ok("GET", base))["resources"]:
            if "/" not in resource["name"]:
                served.add((group_version, resource["name"]))
    covered = {(group_version_of(kind), kind.get("plural", key)) for key, kind in KINDS.items()}
    assert served - covered == set(), "served kinds without kube-says rows"
    assert covered - served == set(), "kube-says rows for kinds that are not served"


@pytest.mark.parametrize("case", rows())
async def test_kube_says(api: RawApi, case: Row) -> None:
    """The row's request gets kube's code, reason, message and shape."""
    kind, row = case.kind, case.row
    ns = f"ks-{uuid.uuid4().hex[:10]}"
    name = ns if kind_plural(kind) == "namespaces" else f"ks-{uuid.uuid4().hex[:10]}"
    if kind["namespaced"]:
        await api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        if kind_plural(kind) == "pods":  # ServiceAccount admission wants the controller's `default` account
            await settled(api, f"/api/v1/namespaces/{ns}/serviceaccounts/default", {})
    words = placeholders(kind, name, ns)
    stored = None
    if row.get("setup") == "created":
        before = kind.get("immutable", {}).get("before", {}) if row["id"] == "update-immutable" else {}
        stored = await api.ok("POST", collection(kind, ns), merged(valid_body(kind, name, ns), before))
        if "settled" in kind:
            stored = await settled(api, f"{collection(kind, ns)}/{name}", kind["settled"])
        words["uid"] = stored["metadata"]["uid"]
        words["resource_version"] = stored["metadata"]["resourceVersion"]
    reply = await send(api, kind, row, name, ns, stored)
    expect = row["expect"]
    if "created_on_update" in expect and kind.get("create_on_update"):
        expect = expect["created_on_update"]
    expect = expect.get("when_name_rule", {}).get(kind["name_rule"], expect)
    assert reply.status == expect["code"], f"{row['source']}\n{reply.body.decode()}"
    assert reply.headers["Content-Type"] == "application/json", reply.headers  # as kube's serializer writes it
    if expect["code"] >= 400:
        check_status(reply, expect, words)
    else:
        check_shape(reply.json(), shape_of(kind, expect.get("shape")), words, stored)
    if "then_get" in expect:  # what the request left behind
        after = await api.call("GET", f"{collection(kind, ns)}/{name}")
        assert after.status == expect["then_get"], after.body


# -- requests --------------------------------------------------------------------------------------------------


async def send(api: RawApi, kind: dict[str, Any], row: dict[str, Any], name: str, ns: str, stored: Any) -> Reply:
    """The row's request: its verb on the kind's collection or object, with the body the row names."""
    verb, query = row["verb"], row.get("query")
    item = f"{collection(kind, ns)}/{name}"
    if verb == "get":
        return await api.call("GET", item, params=query)
    if verb == "list":
        return await api.call("GET", collection(kind, ns), params=query)
    if verb == "delete":
        return await api.call("DELETE", item, row.get("body"), params=query)
    body = request_body(kind, row, name, ns, stored)
    if verb == "create":
        return await api.call("POST", collection(kind, ns), body, params=query)
    if verb == "update":
        return await api.call("PUT", item, body, params=query)
    if verb == "patch-apply" and isinstance(body, dict):
        body = {"apiVersion": api_version(kind), "kind": kind["kind"], **body}
        body["metadata"] = {**body.get("metadata", {}), "name": name}
        if kind["namespaced"]:
            body["metadata"]["namespace"] = ns
    return await api.call("PATCH", item, body, content_type=CONTENT_TYPES[verb], params=query)


async def settled(api: RawApi, path: str, wanted: dict[str, Any], timeout: float = 20) -> Any:
    """The object once it exists and its controller's write shows (`wanted` paths equal), polled with a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        reply = await api.call("GET", path)
        obj = reply.json() if reply.status == 200 else None
        if obj is not None and all(lookup(obj, key) == value for key, value in wanted.items()):
            return obj
        assert asyncio.get_running_loop().time() < deadline, f"{path} never showed {wanted}: {reply.body!r}"
        await asyncio.sleep(0.05)


def request_body(kind: dict[str, Any], row: dict[str, Any], name: str, ns: str, stored: Any) -> Any:
    """The body a row names (see common.yaml's header); a literal body is sent as written."""
    spec = row.get("body")
    if not isinstance(spec, str):
        return spec
    valid = valid_body(kind, name, ns)
    invalid = kind["invalid"]
    is_patch = row["verb"].startswith("patch")
    if spec == "valid":
        return valid
    if spec in ("change", "owned-change"):
        change = substituted(kind.get("owned_change", kind["change"]) if spec == "owned-change" else kind["change"], ns)
        return change if is_patch else merged(stored, change)
    if spec == "invalid":
        if row["verb"] == "create":
            return merged(valid, substituted(invalid["body"], ns))
        return merged(stored, substituted(invalid.get("patch", invalid["body"]), ns))
    if spec == "invalid-patch":
        return substituted(invalid.get("patch", invalid["body"]), ns)
    if spec == "status":
        return {**valid, "status": kind["status_on_create"]}
    if spec == "status-change":
        return {**stored, "status": kind["status_on_create"]}
    if spec == "no-name":
        return {**valid, "metadata": {key: v for key, v in valid["metadata"].items() if key != "name"}}
    if spec == "upper-name":
        return merged(valid, {"metadata": {"name": "Bad-Name"}})
    if spec == "wrong-api-version":
        return {**valid, "apiVersion": "example.com/v9"}
    if spec == "wrong-kind":
        return {**valid, "kind": "Wrong"}
    if spec == "kind-not-a-string":
        return {**valid, "kind": [kind["kind"]]}
    if spec == "unknown-field":
        return {**valid, "bogus": 1}
    if spec == "stale":
        newer = merged(stored, substituted(kind["change"], ns))
        return merged(newer, {"metadata": {"resourceVersion": str(int(stored["metadata"]["resourceVersion"]) - 1)}})
    if spec == "renamed":
        return merged(stored, {"metadata": {"name": "other-name"}})
    if spec == "foreign-uid":
        return merged(stored, {"metadata": {"uid": FOREIGN_UID}})
    if spec == "immutable":
        return merged(stored, substituted(kind["immutable"]["body"], ns))
    raise AssertionError(f"unknown body {spec!r} in row {row['id']}")


def valid_body(kind: dict[str, Any], name: str, ns: str) -> dict[str, Any]:
    body = substituted(kind["valid"], ns)
    body = {"apiVersion": api_version(kind), "kind": kind["kind"], **body}
    body["metadata"] = {**body.get("metadata", {}), "name": name}
    return body


# -- expectations ----------------------------------------------------------------------------------------------


def check_status(reply: Reply, expect: dict[str, Any], words: dict[str, str]) -> None:
    """A failure Status with the row's reason, message (exact, or its prefix/suffix) and details."""
    status = reply.json()
    assert (status["kind"], status["apiVersion"], status["status"]) == ("Status", "v1", "Failure"), status
    assert (status["code"], status["reason"]) == (expect["code"], expect["reason"]), status
    if "message" in expect:
        assert status["message"] == fill(expect["message"], words)
    if "message_prefix" in expect:
        assert status["message"].startswith(fill(expect["message_prefix"], words)), status["message"]
    if "message_suffix" in expect:
        assert status["message"].endswith(fill(expect["message_suffix"], words)), status["message"]
    if "details" in expect:
        assert status["details"] == filled(expect["details"], words)  # empty values left out: Go's omitempty
    if "cause" in expect:
        [cause] = status["details"]["causes"]
        assert {key: cause.get(key) for key in expect["cause"]} == expect["cause"], cause
    if "conflict_with" in expect:
        check_apply_conflict(status, expect["conflict_with"], words["gv"])


def check_apply_conflict(status: dict[str, Any], manager: str, group_version: str) -> None:
    """Kube's apply conflict: one cause per field, and getConflictMessage's text (managedfields conflict.go)."""
    causes = status["details"]["causes"]
    who = f'"{manager}" using {group_version}'
    assert causes and all(c["reason"] == "FieldManagerConflict" and c["message"] == f"conflict with {who}"
                          for c in causes), causes  # fmt: skip
    if len(causes) == 1:
        assert status["message"] == f"Apply failed with 1 conflict: conflict with {who}: {causes[0]['field']}"
    else:
        fields = "\n".join(f"- {c['field']}" for c in causes)
        assert status["message"] == f"Apply failed with {len(causes)} conflicts: conflicts with {who}:\n{fields}"


def shape_of(kind: dict[str, Any], shape: Any) -> dict[str, Any]:
    """A row's shape; `created`/`deleted` name the kind's own (delete: its store's object or a Success Status)."""
    if shape == "created":
        return kind["created"]
    if shape == "deleted":
        if kind["delete_returns"] == "object":
            own = kind.get("deleted", {})
            return {"equal": {"kind": "{kind}", "metadata.name": "{name}", **own.get("equal", {})},
                    "present": own.get("present", [])}  # fmt: skip
        return {"equal": {"kind": "Status", "apiVersion": "v1", "status": "Success",
                          "details": {"name": "{name}", "group": "{group}", "kind": "{plural}", "uid": "{uid}"}},
                "absent": ["code", "message", "reason"]}  # fmt: skip
    if shape and shape.get("generation") == "kind":  # 1 where PrepareForCreate sets it, else 0: omitted
        shape = {key: value for key, value in shape.items() if key != "generation"}
        if kind["generation"] == "absent":
            shape["absent"] = [*shape.get("absent", []), "metadata.generation"]
        else:
            shape["equal"] = {**shape.get("equal", {}), "metadata.generation": kind["generation"]}
    return shape or {}


def check_shape(obj: Any, shape: dict[str, Any], words: dict[str, str], stored: Any) -> None:
    """The returned object has the fields the shape names present, absent, equal or matching."""
    for path in shape.get("present", []):
        assert lookup(obj, path) is not MISSING, f"{path} missing from {obj}"
    for path in shape.get("absent", []):
        assert lookup(obj, path) is MISSING, f"{path} present in {obj}"
    for path, value in shape.get("equal", {}).items():
        assert lookup(obj, path) == filled(value, words), f"{path} in {obj}"
    for path, pattern in shape.get("match", {}).items():
        value = lookup(obj, path)
        assert isinstance(value, str) and re.fullmatch(pattern, value), f"{path}={value!r} in {obj}"
    if "changed" in shape:
        assert lookup(obj, shape["changed"]) != lookup(stored, shape["changed"]), shape["changed"]
    if "unchanged" in shape:
        assert lookup(obj, shape["unchanged"]) == lookup(stored, shape["unchanged"]), shape["unchanged"]
    if "contains_item" in shape:
        names = [item["metadata"]["name"] for item in obj["items"]]
        assert fill(shape["contains_item"], words) in names, names
    if "has_manager" in shape:
        entries = [{key: entry.get(key) for key in shape["has_manager"]} for entry in obj["metadata"]["managedFields"]]
        assert shape["has_manager"] in entries, obj["metadata"]["managedFields"]


MISSING = object()


def lookup(obj: Any, path: str) -> Any:
    """The value at a dotted path (list indexes as numbers), or MISSING."""
    for part in path.split("."):
        if isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return MISSING
    return obj


# -- helpers ---------------------------------------------------------------------------------------------------


def kind_plural(kind: dict[str, Any]) -> str:
    return kind.get("plural") or next(key for key, value in KINDS.items() if value is kind)


def group_version_of(kind: dict[str, Any]) -> str:
    return f"{kind['group']}/{kind['version']}" if kind["group"] else kind["version"]


api_version = group_version_of


def collection(kind: dict[str, Any], ns: str) -> str:
    base = f"/apis/{kind['group']}/{kind['version']}" if kind["group"] else f"/api/{kind['version']}"
    return f"{base}/namespaces/{ns}/{kind_plural(kind)}" if kind["namespaced"] else f"{base}/{kind_plural(kind)}"


def placeholders(kind: dict[str, Any], name: str, ns: str) -> dict[str, str]:
    """What a row's `{...}` stand for with this kind and object (see common.yaml's header)."""
    group, plural = kind["group"], kind_plural(kind)
    qkind = f"{kind['kind']}.{group}" if group else kind["kind"]
    invalid = kind["invalid"]
    return {
        "name": name,
        "ns": ns,
        "plural": plural,
        "group": group,
        "kind": kind["kind"],
        "version": kind["version"],
        "gv": group_version_of(kind),
        "resource": f"{plural}.{group}" if group else plural,
        "qkind": qkind,
        "internal_kind": kind.get("internal_kind", qkind),
        "internal_group": "" if "internal_kind" in kind else group,
        "invalid_message": invalid.get("message", ""),
        "invalid_patch_message": invalid.get("patch_message", invalid.get("message", "")),
        "immutable_message": kind.get("immutable", {}).get("message", ""),
        "name_rule_message": COMMON["name_rules"][kind["name_rule"]],
        "field_label_message": COMMON["field_label_messages"][
            "converted" if kind["field_label_conversion"] else "default"
        ],
        "etcd_key": f"{kind['etcd_prefix']}/{ns}/{name}" if kind["namespaced"] else f"{kind['etcd_prefix']}/{name}",
        "apply_where": f"{ns}/{name}" if kind["namespaced"] else f"/{name}",
        "uid": "",
        "resource_version": "",
    }


def fill(template: str, words: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: words[m.group(1)], template)


def filled(value: Any, words: dict[str, str]) -> Any:
    """`fill` through nested values; an empty placeholder value drops its key (Go's omitempty)."""
    if isinstance(value, str):
        return fill(value, words)
    if isinstance(value, dict):
        out = {key: filled(v, words) for key, v in value.items()}
        return {key: v for key, v in out.items() if v != ""}
    if isinstance(value, list):
        return [filled(v, words) for v in value]
    return value


def substituted(value: Any, ns: str) -> Any:
    """A copy of a kinds.yaml value with `{ns}` replaced by the row's namespace."""
    if isinstance(value, str):
        return value.replace("{ns}", ns)
    if isinstance(value, dict):
        return {key: substituted(v, ns) for key, v in value.items()}
    if isinstance(value, list):
        return [substituted(v, ns) for v in value]
    return value


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`change` laid over `base` as a JSON merge patch does (null deletes, lists replace)."""
    out = copy.deepcopy(base)
    for key, value in change.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
