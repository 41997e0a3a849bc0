"""Services: SetDefaults_Service, the IP-family fields of a single-stack IPv4 cluster, the update fix-ups
(`patchAllocatedValues`, `NormalizeClusterIPs`, `dropTypeDependentFields`) and ValidateService(Update).

Admission allocates cluster IPs and node ports (`service_allocation.py`), serialised per kind so that two
writes never claim the same value.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from shim.apiserver import errors
from shim.apiserver.kinds.addresses import (
    PROTOCOLS,
    non_special_ip,
    validate_cidr,
    validate_ip,
    validate_port_num_or_name,
    validate_port_number,
)
from shim.apiserver.kinds.causes import (
    Cause,
    GoValue,
    duplicate,
    forbidden,
    go_quote,
    go_string_slice,
    invalid,
    required,
    unsupported,
)
from shim.apiserver.kinds.meta import (
    FIELD_IMMUTABLE,
    NameRule,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    validate_labels,
)
from shim.apiserver.kinds.service_allocation import (
    NODE_PORT_RANGE,
    AllocationError,
    ServiceAllocator,
    needs_node_port,
)
from shim.apiserver.printers import (
    AGE_COLUMN,
    EMPTY,
    NAME_COLUMN,
    Cells,
    Column,
    age,
    column,
    format_labels,
    object_name,
)
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import STATUS, StoredObjects, Strategy
from shim.apiserver.selectable_fields import NAMESPACED, path_field, selectable

# -- Table printer (kube's pkg/printers/internalversion/printers.go) ------------------------------


SERVICE_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Type",
        (
            "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
            'ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a '
            "cluster-internal IP address for load-balancing to endpoints. Endpoints are determined "
            "by the selector or if that is not specified, by manual construction of an Endpoints "
            'object or EndpointSlice objects. If clusterIP is "None", no virtual IP is allocated and '
            'the endpoints are published as a set of endpoints rather than a virtual IP. "NodePort" '
            "builds on ClusterIP and allocates a port on every node which routes to the same "
            'endpoints as the clusterIP. "LoadBalancer" builds on NodePort and creates an external '
            "load-balancer (if supported in the current cloud) which routes to the same endpoints as "
            'the clusterIP. "ExternalName" aliases this service to the specified externalName. '
            "Several other fields do not apply to ExternalName services. More info: "
            "https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types"
        ),
    ),
    column(
        "Cluster-IP",
        (
            "clusterIP is the IP address of the service and is usually assigned randomly. If an "
            "address is specified manually, is in-range (as per system configuration), and is not in "
            "use, it will be allocated to the service; otherwise creation of the service will fail. "
            "This field may not be changed through updates unless the type field is also being "
            "changed to ExternalName (which requires this field to be blank) or the type field is "
            "being changed from ExternalName (in which case this field may optionally be specified, "
            'as describe above).  Valid values are "None", empty string (""), or a valid IP address. '
            'Setting this to "None" makes a "headless service" (no virtual IP), which is useful when '
            "direct endpoint connections are preferred and proxying is not required.  Only applies "
            "to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when "
            "creating a Service of type ExternalName, creation will fail. This field will be wiped "
            "when updating a Service to type ExternalName. More info: "
            "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"
        ),
    ),
    column(
        "External-IP",
        (
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept "
            "traffic for this service.  These IPs are not managed by Kubernetes.  The user is "
            "responsible for ensuring that traffic arrives at a node with this IP.  A common example "
            "is external load-balancers that are not part of the Kubernetes system."
        ),
    ),
    column(
        "Port(s)",
        (
            "The list of ports that are exposed by this service. More info: "
            "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"
        ),
    ),
    AGE_COLUMN,
    column(
        "Selector",
        (
            "Route service traffic to pods with label keys and values matching this selector. If "
            "empty or not present, the service is assumed to have an external process managing its "
            "endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, "
            "and LoadBalancer. Ignored if type is ExternalName. More info: "
            "https://kubernetes.io/docs/concepts/services-networking/service/"
        ),
        1,
    ),
]


def service_cells(svc: Printed, now_us: int) -> Cells:
    spec = svc.get("spec") or EMPTY
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = ",".join(
        f"{p.get('port', 0)}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p.get('port', 0)}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or ()
    )
    return [
        object_name(svc),
        spec.get("type", "ClusterIP"),
        cluster_ips[0] if cluster_ips else "<none>",
        _service_external_ip(svc),
        ports or "<none>",
        age(svc, now_us),
        format_labels(spec.get("selector")),
    ]


def _service_external_ip(svc: Printed) -> str:
    spec = svc.get("spec") or EMPTY
    external = spec.get("externalIPs") or []
    kind = spec.get("type", "ClusterIP")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = ((svc.get("status") or EMPTY).get("loadBalancer") or EMPTY).get("ingress") or ()
        balancers = sorted({i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")})
        if external:
            return ",".join([*balancers, *external])
        return ",".join(balancers) if balancers else "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


Obj = dict[str, Any]

CLUSTER_IP_FAMILIES = ("IPv4",)
DEFAULT_CLIENT_IP_TIMEOUT = 10800
MAX_CLIENT_IP_TIMEOUT = 86400
_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")


class ServiceStrategy(Strategy):
    """Services (core/v1)."""

    short_names = ("svc",)
    categories = ("all",)
    subresources = (STATUS,)
    table_columns = SERVICE_COLUMNS
    printer = staticmethod(service_cells)
    selectable_fields = selectable(
        {**NAMESPACED, "spec.clusterIP": path_field("spec", "clusterIP"), "spec.type": path_field("spec", "type")}
    )

    allow_create_on_update = True

    returns_deleted_object = True
    name_rule = NameRule.DNS1035_LABEL
    serialize_writes = True

    def __init__(self, allocator: ServiceAllocator | None = None) -> None:
        self.allocator = allocator or ServiceAllocator()

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        affinity = spec.get("sessionAffinity") or "None"
        spec["sessionAffinity"] = affinity
        if affinity == "None":
            spec.pop("sessionAffinityConfig", None)
        elif affinity == "ClientIP":
            client_ip = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
            if client_ip.get("timeoutSeconds") is None:
                spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}}
        kind = spec.get("type") or "ClusterIP"
        spec["type"] = kind
        for port in spec.get("ports") or ():
            if not port.get("protocol"):
                port["protocol"] = "TCP"
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port", 0)
        if _externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
            spec["externalTrafficPolicy"] = "Cluster"
        if spec.get("internalTrafficPolicy") is None and kind in ("ClusterIP", "NodePort", "LoadBalancer"):
            spec["internalTrafficPolicy"] = "Cluster"
        if kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is None:
                spec["allocateLoadBalancerNodePorts"] = True
            for ingress in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ():
                if ingress.get("ip") and ingress.get("ipMode") is None:
                    ingress["ipMode"] = "VIP"

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        obj["status"] = {"loadBalancer": {}}
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        _init_ip_families(spec)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
        _patch_allocated_values(spec, old_spec)
        _normalize_cluster_ips(spec, old_spec)
        _drop_type_dependent_fields(new, old_spec)
        if _needs_cluster_ip(spec) and _needs_cluster_ip(old_spec):
            for key in ("ipFamilyPolicy", "ipFamilies"):
                if not spec.get(key) and old_spec.get(key):
                    spec[key] = old_spec[key]
        _init_ip_families(spec)

    async def admit(self, new: Obj, old: Obj | None, stored: StoredObjects) -> None:
        meta = new.get("metadata") or {}
        me = (meta.get("namespace"), meta.get("name"))
        others = [
            s for s in await stored.list_all("", "v1", "services")
            if (s["metadata"].get("namespace"), s["metadata"].get("name")) != me
        ]  # fmt: skip
        try:
            self.allocator.allocate(new, old, others)
        except AllocationError as exc:
            if not exc.causes:
                raise errors.ApiError(500, "InternalError", f"Internal error occurred: {exc}") from None
            raise errors.invalid("", "Service", meta.get("name") or "", exc.causes) from None

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_service(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        causes = _validate_cluster_ips_update(spec, old_spec)
        causes.extend(_validate_ip_families_update(spec, old_spec))
        lb_class = spec.get("loadBalancerClass")
        if _is_load_balancer(spec) and _is_load_balancer(old_spec) and lb_class != old_spec.get("loadBalancerClass"):
            causes.append(invalid("spec.loadBalancerClass", lb_class, "may not change once set"))
        health, old_health = spec.get("healthCheckNodePort", 0), old_spec.get("healthCheckNodePort", 0)
        if _needs_health_check(spec) and _needs_health_check(old_spec) and health != old_health:
            causes.append(forbidden("spec.healthCheckNodePort", FIELD_IMMUTABLE))
        causes.extend(_validate_service(new))
        return causes


def _kind(spec: Obj) -> str:
    return spec.get("type") or "ClusterIP"


def _is_load_balancer(spec: Obj) -> bool:
    return _kind(spec) == "LoadBalancer"


def _needs_cluster_ip(spec: Obj) -> bool:
    return _kind(spec) in ("ClusterIP", "NodePort", "LoadBalancer")


def _needs_health_check(spec: Obj) -> bool:
    return _is_load_balancer(spec) and spec.get("externalTrafficPolicy") == "Local"


def _externally_accessible(spec: Obj) -> bool:
    kind = _kind(spec)
    return kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def _is_headless(spec: Obj) -> bool:
    return spec.get("clusterIPs") == ["None"]


def _init_ip_families(spec: Obj) -> None:
    """The allocator's initIPFamilyFields for a single-stack IPv4 cluster."""
    if not _needs_cluster_ip(spec):
        return
    if spec.get("clusterIP") == "None" and not spec.get("selector"):
        # selectorless headless services may take every family the cluster has
        if spec.get("ipFamilyPolicy") is None:
            spec["ipFamilyPolicy"] = "RequireDualStack" if len(spec.get("ipFamilies") or ()) == 2 else "PreferDualStack"
    elif spec.get("ipFamilyPolicy") is None:
        spec["ipFamilyPolicy"] = "SingleStack"
    if not spec.get("ipFamilies"):
        spec["ipFamilies"] = list(CLUSTER_IP_FAMILIES)


def _patch_allocated_values(spec: Obj, old_spec: Obj) -> None:
    """An update that omits allocated values (cluster IPs, node ports) keeps the old ones."""
    if _needs_cluster_ip(old_spec) and _needs_cluster_ip(spec):
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = old_spec["clusterIPs"]
    if needs_node_port(old_spec) and needs_node_port(spec):
        old_ports = old_spec.get("ports") or []
        used = {p.get("nodePort") for p in old_ports} & {p.get("nodePort") for p in spec.get("ports") or ()}
        by_name = {p.get("name", ""): p.get("nodePort", 0) for p in old_ports}
        for port in spec.get("ports") or ():
            if not port.get("nodePort"):
                previous = by_name.get(port.get("name", ""), 0)
                if previous and previous not in used:
                    port["nodePort"] = previous
    old_health = old_spec.get("healthCheckNodePort")
    if _needs_health_check(old_spec) and _needs_health_check(spec) and not spec.get("healthCheckNodePort"):
        spec["healthCheckNodePort"] = old_health


def _normalize_cluster_ips(spec: Obj, old_spec: Obj) -> None:
    """Keep clusterIP and clusterIPs in step for clients that set only the singular field."""
    old_ip, old_ips = old_spec.get("clusterIP", ""), old_spec.get("clusterIPs") or []
    ip = spec.get("clusterIP", "")
    if old_ips and not spec.get("clusterIPs") and old_ip == ip:
        spec["clusterIPs"] = old_ips
    if old_ip != ip:
        if old_ip and not ip:
            spec.pop("clusterIPs", None)
        elif ip and (not spec.get("clusterIPs") or (old_ips and spec["clusterIPs"][0] == old_ips[0])):
            spec["clusterIPs"] = [ip]


def _drop_type_dependent_fields(new: Obj, old_spec: Obj) -> None:
    """Fields the old type had and the new one cannot, dropped when the user left them as they were."""
    spec = new["spec"]
    if _needs_cluster_ip(old_spec) and not _needs_cluster_ip(spec):
        same_ips = spec.get("clusterIP", "") == old_spec.get("clusterIP", "")
        if same_ips and (spec.get("clusterIPs") or []) == (old_spec.get("clusterIPs") or []):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        for key in ("ipFamilies", "ipFamilyPolicy"):
            if spec.get(key) == old_spec.get(key):
                spec.pop(key, None)
    if needs_node_port(old_spec) and not needs_node_port(spec):
        ports, old_ports = spec.get("ports") or [], old_spec.get("ports") or []
        if len(ports) == len(old_ports) and all(
            p.get("nodePort", 0) == o.get("nodePort", 0) for p, o in zip(ports, old_ports, strict=True)
        ):
            for port in ports:
                port.pop("nodePort", None)
    same_health = spec.get("healthCheckNodePort", 0) == old_spec.get("healthCheckNodePort", 0)
    if _needs_health_check(old_spec) and not _needs_health_check(spec) and same_health:
        spec.pop("healthCheckNodePort", None)
    if _is_load_balancer(old_spec) and not _is_load_balancer(spec):
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if spec.get(key) == old_spec.get(key):
                spec.pop(key, None)
    same_policy = spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy")
    if _externally_accessible(old_spec) and not _externally_accessible(spec) and same_policy:
        spec.pop("externalTrafficPolicy", None)
    if not _is_load_balancer(spec) and new.get("status") is not None:
        new["status"]["loadBalancer"] = {}


# -- validation ----------------------------------------------------------------------------------------------


def _validate_service(service: Obj) -> list[Cause]:
    spec = service.get("spec") or {}
    kind = spec.get("type", "")
    headless = _is_headless(spec)
    causes: list[Cause] = []
    ports = spec.get("ports") or []
    if not ports and not headless and kind != "ExternalName":
        causes.append(required("spec.ports"))
    if kind in ("LoadBalancer", "NodePort") and headless:
        causes.append(invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services"))
    elif kind == "ExternalName":
        for key in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if spec.get(key):
                causes.append(forbidden(f"spec.{key}", "may not be set for ExternalName services"))
        cname = (spec.get("externalName") or "").removesuffix(".")
        if cname:
            causes.extend(invalid("spec.externalName", cname, m) for m in is_dns1123_subdomain(cname))
        else:
            causes.append(required("spec.externalName"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        causes.extend(_validate_port(port, len(ports) > 1, names, f"spec.ports[{i}]"))
    if spec.get("selector"):
        causes.extend(validate_labels(spec["selector"], "spec.selector"))
    causes.extend(_validate_session_affinity(spec))
    causes.extend(_validate_cluster_ips(spec))
    for i, ip in enumerate(spec.get("externalIPs") or ()):
        problems = validate_ip(ip, f"spec.externalIPs[{i}]")
        causes.extend(problems or non_special_ip(ip, f"spec.externalIPs[{i}]"))
    if not kind:
        causes.append(required("spec.type"))
    elif kind not in _TYPES:
        causes.append(unsupported("spec.type", kind, _TYPES))
    causes.extend(_validate_node_ports(spec))
    causes.extend(_validate_load_balancer_fields(spec))
    causes.extend(_validate_traffic_policies(spec))
    return causes


def _validate_port(port: Obj, require_name: bool, names: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = port.get("name", "")
    if require_name and not name:
        causes.append(required(path + ".name"))
    elif name:
        causes.extend(invalid(path + ".name", name, m) for m in is_dns1123_label(name))
        if name in names:
            causes.append(duplicate(path + ".name", name))
        names.add(name)
    causes.extend(validate_port_number(port.get("port", 0), path + ".port"))
    protocol = port.get("protocol", "")
    if not protocol:
        causes.append(required(path + ".protocol"))
    elif protocol not in PROTOCOLS:
        causes.append(unsupported(path + ".protocol", protocol, PROTOCOLS))
    causes.extend(validate_port_num_or_name(port.get("targetPort", 0), path + ".targetPort"))
    if port.get("appProtocol") is not None:
        causes.extend(
            invalid(path + ".appProtocol", port["appProtocol"], m) for m in is_qualified_name(port["appProtocol"])
        )
    return causes


def _validate_session_affinity(spec: Obj) -> list[Cause]:
    affinity = spec.get("sessionAffinity", "")
    if not affinity:
        return [required("spec.sessionAffinity")]
    if affinity not in ("ClientIP", "None"):
        return [unsupported("spec.sessionAffinity", affinity, ("ClientIP", "None"))]
    config = spec.get("sessionAffinityConfig")
    path = "spec.sessionAffinityConfig"
    if affinity == "None":
        return [forbidden(path, "must not be set when session affinity is None")] if config is not None else []
    why = "when session affinity type is ClientIP"
    if config is None:
        return [required(path, why)]
    if config.get("clientIP") is None:
        return [required(path + ".clientIP", why)]
    timeout = config["clientIP"].get("timeoutSeconds")
    if timeout is None:
        return [required(path + ".clientIP.timeoutSeconds", why)]
    if not 0 < timeout <= MAX_CLIENT_IP_TIMEOUT:
        return [
            invalid(
                path + ".clientIP.timeoutSeconds",
                timeout,
                f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}",
            )
        ]
    return []


def _validate_cluster_ips(spec: Obj) -> list[Cause]:
    """ValidateServiceClusterIPsRelatedFields, and the allocator's refusals on a single-stack IPv4 cluster."""
    if _kind(spec) == "ExternalName":
        return []
    causes: list[Cause] = []
    ip, ips = spec.get("clusterIP", ""), spec.get("clusterIPs") or []
    if ip:
        if not ips:
            causes.append(required("spec.clusterIPs"))
        elif ips[0] != ip:
            causes.append(invalid("spec.clusterIPs", go_string_slice(ips), "first value must match `clusterIP`"))
    elif ips:
        causes.append(
            invalid("spec.clusterIPs", go_string_slice(ips), "must be empty when `clusterIP` is not specified")
        )
    families = spec.get("ipFamilies") or []
    seen: set[str] = set()
    for i, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            causes.append(unsupported(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6")))
        elif family not in CLUSTER_IP_FAMILIES:
            causes.append(invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster"))
        if family in seen:
            causes.append(duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in _POLICIES:
        causes.append(unsupported("spec.ipFamilyPolicy", policy, _POLICIES))
    elif policy == "RequireDualStack":
        causes.append(invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services"))
    bad_ip = False
    for i, cluster_ip in enumerate(ips):
        if i == 0 and cluster_ip == "None":
            if len(ips) > 1:
                bad_ip = True
                causes.append(
                    invalid("spec.clusterIPs", go_string_slice(ips), "'None' must be the first and only value")
                )
            continue
        problems = validate_ip(cluster_ip, f"spec.clusterIPs[{i}]")
        bad_ip = bad_ip or bool(problems)
        causes.extend(problems)
    if len(ips) > 2:
        causes.append(invalid("spec.clusterIPs", go_string_slice(ips), "may only hold up to 2 values"))
    if bad_ip:
        return causes
    if len(ips) > 1 and len({ipaddress.ip_address(a).version for a in ips}) != len(ips):
        causes.append(
            invalid("spec.clusterIPs", go_string_slice(ips), "may specify no more than one IP for each IP family")
        )
    if ips and ips != ["None"]:
        for i, (cluster_ip, family) in enumerate(zip(ips, families, strict=False)):
            version = ipaddress.ip_address(cluster_ip).version
            if family == "IPv4" and version == 6:
                causes.append(
                    invalid(
                        f"spec.clusterIPs[{i}]",
                        cluster_ip,
                        f"expected an IPv4 value as indicated by `ipFamilies[{i}]`",
                    )
                )
            if family == "IPv6" and version == 4:
                causes.append(
                    invalid(
                        f"spec.clusterIPs[{i}]",
                        cluster_ip,
                        f"expected an IPv6 value as indicated by `ipFamilies[{i}]`",
                    )
                )
    return causes


def _validate_node_ports(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    kind = _kind(spec)
    node_ports: set[tuple[str, int]] = set()
    ports: set[tuple[str, int]] = set()
    low, high = NODE_PORT_RANGE
    for i, port in enumerate(spec.get("ports") or ()):
        path = f"spec.ports[{i}]"
        protocol, node_port = port.get("protocol", ""), port.get("nodePort", 0)
        if node_port:
            if kind == "ClusterIP":
                causes.append(forbidden(path + ".nodePort", "may not be used when `type` is 'ClusterIP'"))
            elif not low <= node_port <= high:
                causes.append(
                    invalid(
                        path + ".nodePort",
                        node_port,
                        f"provided port is not in the valid range. The range of valid ports is {low}-{high}",
                    )
                )
            if (protocol, node_port) in node_ports:
                causes.append(duplicate(path + ".nodePort", node_port))
            node_ports.add((protocol, node_port))
        key = (protocol, port.get("port", 0))
        if key in ports:
            causes.append(
                duplicate(
                    path,
                    GoValue(
                        f'core.ServicePort{{Name:"", Protocol:{go_quote(protocol)}, '
                        f"AppProtocol:(*string)(nil), Port:{key[1]}, "
                        'TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'
                    ),
                )
            )
        ports.add(key)
    return causes


def _validate_load_balancer_fields(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    balancer = _is_load_balancer(spec)
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges and not balancer:
        causes.append(forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"))
    for i, value in enumerate(ranges):
        causes.extend(validate_cidr(value.strip(), f"spec.LoadBalancerSourceRanges[{i}]"))
    if spec.get("allocateLoadBalancerNodePorts") is not None and not balancer:
        causes.append(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    if balancer and spec.get("allocateLoadBalancerNodePorts") is None:
        causes.append(required("allocateLoadBalancerNodePorts"))
    lb_class = spec.get("loadBalancerClass")
    if lb_class is not None:
        if balancer:
            causes.extend(invalid("spec.loadBalancerClass", lb_class, m) for m in is_qualified_name(lb_class))
        else:
            causes.append(forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"))
    return causes


def _validate_traffic_policies(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    external = spec.get("externalTrafficPolicy", "")
    if not _externally_accessible(spec):
        if external:
            causes.append(
                invalid(
                    "spec.externalTrafficPolicy",
                    external,
                    "may only be set for externally-accessible services",
                )
            )
    elif not external:
        causes.append(required("spec.externalTrafficPolicy"))
    elif external not in ("Cluster", "Local"):
        causes.append(unsupported("spec.externalTrafficPolicy", external, ("Cluster", "Local")))
    health = spec.get("healthCheckNodePort", 0)
    if not _needs_health_check(spec):
        if health:
            causes.append(
                invalid(
                    "spec.healthCheckNodePort",
                    health,
                    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
                )
            )
    elif not health:
        causes.append(required("spec.healthCheckNodePort"))
    else:
        causes.extend(validate_port_number(health, "spec.healthCheckNodePort"))
    internal = spec.get("internalTrafficPolicy")
    if internal is None:
        if _kind(spec) in ("ClusterIP", "NodePort", "LoadBalancer"):
            causes.append(required("spec.internalTrafficPolicy"))
    elif internal not in ("Cluster", "Local"):
        causes.append(unsupported("spec.internalTrafficPolicy", internal, ("Cluster", "Local")))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        causes.append(unsupported("spec.trafficDistribution", distribution, ("PreferClose",)))
    return causes


def _validate_cluster_ips_update(spec: Obj, old_spec: Obj) -> list[Cause]:
    """validateUpgradeDowngradeClusterIPs: the primary cluster IP never changes once set."""
    if _kind(spec) == "ExternalName" or _kind(old_spec) == "ExternalName":
        return []
    if _is_headless(spec) and _is_headless(old_spec):
        return []
    ips, old_ips = spec.get("clusterIPs") or [], old_spec.get("clusterIPs") or []
    shown = go_string_slice(ips or None)
    causes: list[Cause] = []
    if len(ips) == len(old_ips):
        causes.extend(
            invalid(f"spec.clusterIPs[{i}]", shown, "may not change once set")
            for i, ip in enumerate(old_ips)
            if ip != ips[i]
        )
    elif len(old_ips) > len(ips):
        if not ips:
            causes.append(invalid("spec.clusterIPs[0]", shown, "primary clusterIP can not be unset"))
        elif ips[0] != old_ips[0]:
            causes.append(invalid("spec.clusterIPs[0]", shown, "may not change once set"))
        if len(ips) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            causes.append(
                invalid(
                    "spec.ipFamilyPolicy",
                    spec.get("ipFamilyPolicy"),
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                )
            )
    elif old_ips and ips[0] != old_ips[0]:
        causes.append(invalid("spec.clusterIPs[0]", shown, "may not change once set"))
    return causes


def _validate_ip_families_update(spec: Obj, old_spec: Obj) -> list[Cause]:
    """validateUpgradeDowngradeIPFamilies: the primary family never changes once set."""
    if _kind(spec) == "ExternalName" or _kind(old_spec) == "ExternalName":
        return []
    if _is_headless(spec) or _is_headless(old_spec):
        return []
    families, old_families = spec.get("ipFamilies") or [], old_spec.get("ipFamilies") or []
    shown = GoValue("[]core.IPFamily{" + ", ".join(go_quote(f) for f in families) + "}")
    if len(families) == len(old_families) and families != old_families:
        return [invalid("spec.ipFamilies[0]", shown, "may not change once set")]
    if families and old_families and families[0] != old_families[0]:
        return [invalid("spec.ipFamilies[0]", shown, "may not change once set")]
    return []
