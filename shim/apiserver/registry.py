"""The resource registry: one row per served kind, plus the strategy that says what is special about it.

Adding a kind is one `Strategy` subclass in `shim/apiserver/kinds/` and one `ResourceType` row in
`resources.py`; the generic handlers, discovery, Tables, field selectors and the OpenAPI generator serve every
row the same way from it (kube-apiserver's `registry/generic` + per-resource `strategy.go` and printers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shim.apiserver.kinds.meta import NameRule
from shim.apiserver.printers import DEFAULT_COLUMNS, Column, Printer, default_cells, no_row_conditions
from shim.apiserver.selectable_fields import DEFAULT, SelectableFields
from shim.machinery.resources import Resource

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    """A subresource served under each object of a kind: its discovery verbs and the kind its bodies carry."""

    name: str
    verbs: tuple[str, ...]
    #: (group, version, kind) of request and response bodies; None means the parent's kind
    response_kind: tuple[str, str, str] | None = None


STATUS = Subresource("status", ("get", "patch", "update"))
SCALE = Subresource("scale", ("get", "patch", "update"), ("autoscaling", "v1", "Scale"))


class StoredObjects(Protocol):
    """What admission may read: the stored objects of a resource."""

    async def list_all(self, group: str, version: str, plural: str) -> list[dict[str, Any]]: ...

    async def get_object(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any]:
        """One stored object; raises ApiError 404 when there is none."""
        ...


class Strategy:
    """What differs per kind. The base class is right for a plain spec-less kind (ConfigMap, Secret)."""

    #: kubectl's short names for the kind (`po`) and the categories it belongs to (`all`), as discovery lists them
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: the subresources served under each object, in discovery order
    subresources: tuple[Subresource, ...] = ()
    #: the Table columns `kubectl get` shows (kube's printer); the default is kube's Name, Created At
    table_columns: list[Column] = DEFAULT_COLUMNS
    #: one row's cells for an object, in `table_columns` order (kube's printer for the kind)
    printer: Printer = staticmethod(default_cells)
    #: a Table row's `conditions` (a finished pod is Completed); None for none
    row_conditions: Callable[[Mapping[str, Any]], list[dict[str, str]] | None] = staticmethod(no_row_conditions)
    #: the fields a fieldSelector may name (kube's GetAttrs and field label conversion)
    selectable_fields: SelectableFields = DEFAULT
    #: spec changes bump metadata.generation (deployments, replicasets, ...)
    tracks_generation = False
    #: DELETE answers with the deleted object rather than a Success Status (pods, services)
    returns_deleted_object = False
    #: the format metadata.name must have (kube's ValidateNameFunc for the kind)
    name_rule = NameRule.SUBDOMAIN
    #: a PUT of a missing object creates it (kube's AllowCreateOnUpdate: services, endpoints, events, leases)
    allow_create_on_update = False
    #: writes of this kind run one at a time from admission to the store write (allocators read what is stored)
    serialize_writes = False
    #: what a DELETE without propagationPolicy or orphanDependents does to dependents (kube's
    #: DefaultGarbageCollectionPolicy): None deletes them in the background, "Orphan" keeps them (batch/v1 Jobs)
    default_propagation_policy: str | None = None

    @property
    def has_status_subresource(self) -> bool:
        """The status stanza is written only through the `status` subresource."""
        return STATUS in self.subresources

    def default(self, obj: dict[str, Any]) -> None:
        """Fill defaults the API server sets (protocol TCP, imagePullPolicy, ...), in place."""

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        """Adjust a new object before validation (e.g. reset status), in place."""

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Adjust an update through the main endpoint before validation, in place."""

    async def admit_create(self, obj: dict[str, Any], stored: StoredObjects) -> None:
        """Admission plugins on create, after defaulting and before the name is generated (so their errors name
        the generateName, as kube's do); raise ApiError to refuse."""

    async def admit(self, new: dict[str, Any], old: dict[str, Any] | None, stored: StoredObjects) -> None:
        """Admission and allocation after preparation and before validation (`old` is None on create);
        raise ApiError to refuse."""

    def prepare_for_status_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Adjust an update through the `status` endpoint: everything but status comes from `old`."""
        status = new.get("status")
        managed = (new.get("metadata") or {}).get("managedFields")
        new.clear()
        new.update({k: v for k, v in old.items() if k != "status"})
        if status is not None:
            new["status"] = status
        if managed is not None:  # a server-side apply to status records its manager (other writes recompute them)
            new["metadata"] = {**old["metadata"], "managedFields": managed}

    def admit_delete(self, obj: dict[str, Any]) -> None:
        """Refuse the deletion of `obj` by raising ApiError (kube's admission on delete)."""

    def graceful_deletion(self, obj: dict[str, Any], requested: int | None) -> int:
        """Seconds a deleted object stays marked before it goes (kube's graceful deletion); 0 deletes it at once.
        `requested` is DeleteOptions.gracePeriodSeconds."""
        return 0

    def deletion_blocked(self, obj: dict[str, Any]) -> bool:
        """True while something besides metadata.finalizers holds a deleted object (namespace spec.finalizers)."""
        return False

    def prepare_for_deletion(self, obj: dict[str, Any]) -> None:
        """Adjust an object that is marked for deletion but stays (e.g. phase Terminating), in place."""

    def prepare_for_ephemeral_containers_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Adjust an update through `ephemeralcontainers` (pods only): the stored object with the new list."""
        raise NotImplementedError(f"{type(self).__name__} has no ephemeralcontainers subresource")

    def validate_ephemeral_containers_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[dict[str, str]]:
        """Causes that make an update through `ephemeralcontainers` invalid (pods only)."""
        raise NotImplementedError(f"{type(self).__name__} has no ephemeralcontainers subresource")

    def prepare_for_finalize(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Adjust an update through a `finalize` subresource (namespaces only), in place."""
        raise NotImplementedError(f"{type(self).__name__} has no finalize subresource")

    def validate(self, obj: dict[str, Any]) -> list[dict[str, str]]:
        """Causes that make a new object invalid (empty when valid)."""
        return []

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[dict[str, str]]:
        """Causes that make an update invalid (immutable fields, ...)."""
        return self.validate(new)


class Conversion:
    """How a resource served from another resource's storage maps to and from that stored form
    (events.k8s.io/v1 Events are core/v1 Events in the store, as in kube)."""

    def to_storage(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The stored form of an object of this resource."""
        raise NotImplementedError

    def from_storage(self, obj: dict[str, Any]) -> dict[str, Any]:
        """This resource's form of a stored object."""
        raise NotImplementedError


@dataclass(frozen=True)
class ResourceType:
    """One served resource (a row of the discovery documents)."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    strategy: Strategy = field(default_factory=Strategy)
    verbs: tuple[str, ...] = ALL_VERBS
    #: the Warning every response about this resource carries (kube's deprecated APIs)
    deprecation: str | None = None
    #: (group, plural) whose storage this resource shares, through `conversion`
    stored_as: tuple[str, str] | None = None
    conversion: Conversion | None = None
    #: kube-apiserver's etcd prefix when it is not the plural (default_storage_factory_builder.go
    #: SpecialDefaultResourcePrefixes); its storage errors quote keys under it
    kube_etcd_prefix: str | None = None

    @property
    def short_names(self) -> tuple[str, ...]:
        return self.strategy.short_names

    @property
    def categories(self) -> tuple[str, ...]:
        return self.strategy.categories

    @property
    def subresources(self) -> tuple[Subresource, ...]:
        return self.strategy.subresources

    def subresource(self, name: str) -> Subresource | None:
        """The served subresource called `name`, if any."""
        return next((sub for sub in self.strategy.subresources if sub.name == name), None)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        """The URL path of this resource's group-version (`api/v1`, `apis/apps/v1`)."""
        return f"apis/{self.group}/{self.version}" if self.group else f"api/{self.version}"

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def qualified(self) -> str:
        """`deployments.apps` or `pods`: the form used in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key_prefix(self, namespace: str | None = None) -> str:
        """The store prefix of this resource (kube's `/registry/<group>/<plural>/<namespace>/`)."""
        group, plural = self.stored_as or (self.group, self.plural)
        base = f"/registry/{group}/{plural}/" if group else f"/registry/{plural}/"
        return base + f"{namespace}/" if namespace else base

    def key(self, namespace: str | None, name: str) -> str:
        return self.key_prefix(namespace if self.namespaced else None) + name

    @property
    def stored_group(self) -> str:
        """The group of the type kept in storage, which kube's Invalid and delete-precondition errors name."""
        return self.stored_as[0] if self.stored_as else self.group

    def kube_etcd_key(self, namespace: str | None, name: str) -> str:
        """The key kube-apiserver keeps this object under in etcd: its storage errors quote it."""
        plural = self.stored_as[1] if self.stored_as else self.plural
        prefix = f"/registry/{self.kube_etcd_prefix or plural}/"
        return prefix + (f"{namespace}/{name}" if self.namespaced else name)


class Registry:
    """All served resources, looked up by URL parts or by kind."""

    def __init__(self, resources: list[ResourceType]) -> None:
        self.resources = resources
        self._by_path = {(r.group, r.version, r.plural): r for r in resources}
        self._by_kind = {(r.group, r.version, r.kind): r for r in resources}

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def get(self, resource: Resource) -> ResourceType:
        """The row of a built-in the server itself uses (`shim.machinery.resources`); KeyError if not served."""
        return self._by_path[(resource.group, resource.version, resource.plural)]

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((group, version, kind))

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> its versions in preference order ("" is the core group)."""
        out: dict[str, list[str]] = {}
        for r in self.resources:
            versions = out.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        return out
