"""Server-side printing: `meta.k8s.io/v1` Tables as kube-apiserver 1.33 serves them to `kubectl get`.

Each printed resource is a column list (`table_columns.json`, with the API types' field docs as descriptions,
as kube sends them) plus a printer (`shim.apiserver.printers`); any other resource gets kube's default
convertor (Name, Created At). The server always prints the wide form: kubectl drops the `priority: 1` columns
itself unless asked for `-o wide`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from shim.apiserver import printers
from shim.machinery.gofmt import go_quote

Obj = Mapping[str, Any]
Column = dict[str, Any]

INCLUDE_OBJECT_VALUES = ("", "None", "Metadata", "Object")  # "" means Metadata


def table_columns(group: str, resource: str) -> list[Column]:
    """The `columnDefinitions` for a resource (shared dicts: do not mutate)."""
    return _kind(group, resource)[0]


def table_cells(group: str, resource: str, obj: Obj, now: datetime) -> list[Any]:
    """One row's cells for `obj`, formatted as kube does (ages relative to `now`)."""
    return _kind(group, resource)[1](obj, printers.epoch_us(now))


def build_table(
    group: str,
    resource: str,
    objects: list[Obj],
    now: datetime,
    include_object: str = "Metadata",
    list_meta: Mapping[str, Any] | None = None,
    with_columns: bool = True,
) -> dict[str, Any]:
    """A full Table for these objects.

    `include_object` is the `includeObject` query value: `Metadata` (or "") puts a PartialObjectMetadata in
    each row (sharing the object's metadata dict), `Object` the object itself, `None` nothing; any other value
    raises ValueError with kube's 400 message. `list_meta` gives the table's `resourceVersion`, `continue` and
    `remainingItemCount` (for one object, pass its resourceVersion). `with_columns=False` leaves
    `columnDefinitions` null, as kube does on every watch event after the first.
    """
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise ValueError(
            "Unable to convert to Table as requested: includeObject: Invalid value: "
            f"{go_quote(include_object)}: must be 'Metadata', 'Object', 'None', or empty"
        )
    columns, printer = _kind(group, resource)
    now_us = printers.epoch_us(now)
    conditions = printers.pod_row_conditions if (group, resource) == ("", "pods") else None
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj, now_us)}
        if conditions is not None and (row_conditions := conditions(obj)) is not None:
            row["conditions"] = row_conditions
        if include_object in ("Metadata", ""):
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        else:
            row["object"] = obj if include_object == "Object" else None
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": _list_meta(list_meta or {}),
        "columnDefinitions": columns if with_columns else None,
        "rows": rows,
    }


def _list_meta(list_meta: Mapping[str, Any]) -> dict[str, Any]:
    """ListMeta as kube writes it: empty fields are omitted (a zero remainingItemCount is kept)."""
    meta = {key: list_meta[key] for key in ("resourceVersion", "continue") if list_meta.get(key)}
    if list_meta.get("remainingItemCount") is not None:
        meta["remainingItemCount"] = list_meta["remainingItemCount"]
    return meta


_PRINTERS: dict[str, printers.Printer] = {
    "pods": printers.pod_cells,
    "namespaces": printers.namespace_cells,
    "services": printers.service_cells,
    "endpoints": printers.endpoints_cells,
    "configmaps": printers.configmap_cells,
    "secrets": printers.secret_cells,
    "serviceaccounts": printers.serviceaccount_cells,
    "nodes": printers.node_cells,
    "events": printers.event_cells,
    "events.k8s.io/events": printers.events_v1_cells,
    "coordination.k8s.io/leases": printers.lease_cells,
    "scheduling.k8s.io/priorityclasses": printers.priorityclass_cells,
    "apps/deployments": printers.deployment_cells,
    "apps/replicasets": printers.replicaset_cells,
    "apps/daemonsets": printers.daemonset_cells,
    "apps/statefulsets": printers.statefulset_cells,
    "apps/controllerrevisions": printers.controllerrevision_cells,
    "batch/jobs": printers.job_cells,
    "batch/cronjobs": printers.cronjob_cells,
    "discovery.k8s.io/endpointslices": printers.endpointslice_cells,
}
_COLUMNS: dict[str, list[Column]] = json.loads((Path(__file__).parent / "table_columns.json").read_text())
_DEFAULT = (_COLUMNS["*"], printers.default_cells)


def _kind(group: str, resource: str) -> tuple[list[Column], printers.Printer]:
    key = f"{group}/{resource}" if group else resource
    printer = _PRINTERS.get(key)
    return _DEFAULT if printer is None else (_COLUMNS[key], printer)
