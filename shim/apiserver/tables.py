"""Server-side printing: `meta.k8s.io/v1` Tables as kube-apiserver 1.33 serves them to `kubectl get`.

Each kind's strategy gives its column list (`table_columns`, with the API types' field docs as descriptions, as
kube sends them), its printer and its row conditions; a kind without them gets kube's default convertor (Name,
Created At). The server always prints the wide form: kubectl drops the `priority: 1` columns itself unless
asked for `-o wide`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shim.apiserver.printers import epoch_us
from shim.machinery.gofmt import go_quote

if TYPE_CHECKING:
    from shim.apiserver.registry import Strategy

Obj = Mapping[str, Any]

INCLUDE_OBJECT_VALUES = ("", "None", "Metadata", "Object")  # "" means Metadata


def build_table(
    strategy: Strategy,
    objects: Sequence[Obj],
    now: datetime,
    include_object: str = "Metadata",
    list_meta: Mapping[str, Any] | None = None,
    with_columns: bool = True,
) -> dict[str, Any]:
    """A full Table for these objects, printed by their kind's strategy.

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
    now_us = epoch_us(now)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": strategy.printer(obj, now_us)}
        if (row_conditions := strategy.row_conditions(obj)) is not None:
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
        "columnDefinitions": strategy.table_columns if with_columns else None,
        "rows": rows,
    }


def _list_meta(list_meta: Mapping[str, Any]) -> dict[str, Any]:
    """ListMeta as kube writes it: empty fields are omitted (a zero remainingItemCount is kept)."""
    meta = {key: list_meta[key] for key in ("resourceVersion", "continue") if list_meta.get(key)}
    if list_meta.get("remainingItemCount") is not None:
        meta["remainingItemCount"] = list_meta["remainingItemCount"]
    return meta
