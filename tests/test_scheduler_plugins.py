"""Each scheduler plugin on its own, on plain Node and Pod dicts (no server)."""

from __future__ import annotations

from typing import Any

from shim.scheduler.cache import Cache
from shim.scheduler.framework import Code, CycleState, Status
from shim.scheduler.info import PodInfo
from shim.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from shim.scheduler.plugins.node_affinity import NodeAffinity
from shim.scheduler.plugins.node_name import NodeName
from shim.scheduler.plugins.node_ports import NodePorts
from shim.scheduler.plugins.node_resources import NodeResourcesBalancedAllocation, NodeResourcesFit
from shim.scheduler.plugins.node_unschedulable import NodeUnschedulable
from shim.scheduler.plugins.pod_topology_spread import PodTopologySpread
from shim.scheduler.plugins.taint_toleration import TaintToleration
from tests.scheduler_objects import node, pod

Obj = dict[str, Any]
ZONE = "topology.kubernetes.io/zone"


def cluster(nodes: list[Obj], pods: tuple[Obj, ...] | list[Obj] = ()) -> Cache:
    cache = Cache()
    for n in nodes:
        cache.set_node(n)
    for p in pods:
        cache.set_pod(PodInfo(p))
    return cache


def filter_all(
    plugin: Any, the_pod: Obj, cache: Cache, namespaces: dict[str, dict[str, str]] | None = None
) -> dict[str, Status | None]:
    """The plugin's verdict per node; a plugin that skips the pod passes every node."""
    state, info = CycleState(cache.node_list(), namespaces or {}), PodInfo(the_pod)
    if not plugin.pre_filter(state, info):
        return {n.name: None for n in cache.node_list()}
    return {n.name: plugin.filter(state, info, n) for n in cache.node_list()}


def feasible(plugin: Any, the_pod: Obj, cache: Cache, namespaces: dict[str, dict[str, str]] | None = None) -> list[str]:
    return [name for name, status in filter_all(plugin, the_pod, cache, namespaces).items() if status is None]


def scores(plugin: Any, the_pod: Obj, cache: Cache) -> dict[str, int] | None:
    """Normalized scores per node, or None when the plugin skips scoring this pod."""
    state, info, nodes = CycleState(cache.node_list()), PodInfo(the_pod), cache.node_list()
    if not plugin.pre_score(state, info, nodes):
        return None
    values = [plugin.score(state, info, n) for n in nodes]
    plugin.normalize(state, info, values)
    return {n.name: v for n, v in zip(nodes, values, strict=True)}


def affinity(kind: str, mode: str, *terms: Obj) -> Obj:
    key = f"{mode}DuringSchedulingIgnoredDuringExecution"
    return {kind: {key: list(terms)}}


# -- NodeUnschedulable ---------------------------------------------------------------------------------------


def test_a_cordoned_node_takes_only_pods_that_tolerate_the_cordon() -> None:
    cache = cluster([node("open"), node("cordoned", unschedulable=True)])
    verdict = filter_all(NodeUnschedulable(), pod("p"), cache)
    assert verdict["open"] is None
    assert verdict["cordoned"] == Status(Code.UNRESOLVABLE, ("node(s) were unschedulable",))
    tolerant = pod("q", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])
    assert feasible(NodeUnschedulable(), tolerant, cache) == ["open", "cordoned"]


# -- NodeName ------------------------------------------------------------------------------------------------


def test_a_pod_naming_its_node_fits_only_there() -> None:
    cache = cluster([node("a"), node("b")])
    verdict = filter_all(NodeName(), pod("p", node_name="b"), cache)
    assert verdict["b"] is None
    assert verdict["a"] is not None and verdict["a"].reasons == ("node(s) didn't match the requested node name",)
    assert feasible(NodeName(), pod("free"), cache) == ["a", "b"]


# -- NodeResourcesFit ----------------------------------------------------------------------------------------


def test_requests_must_fit_what_bound_pods_left_with_every_shortfall_named() -> None:
    busy = node("busy", cpu="2", memory="2Gi", pods=2)
    cache = cluster([busy, node("idle", cpu="2", memory="2Gi")], [pod("running", "1500m", "1536Mi", node_name="busy")])
    verdict = filter_all(NodeResourcesFit(), pod("p", "1", "1Gi"), cache)
    assert verdict["idle"] is None
    assert verdict["busy"] == Status(Code.UNSCHEDULABLE, ("Insufficient cpu", "Insufficient memory"))
    cache.set_pod(PodInfo(pod("second", node_name="busy")))
    full = filter_all(NodeResourcesFit(), pod("tiny", "1m"), cache)["busy"]
    assert full == Status(Code.UNSCHEDULABLE, ("Too many pods",))


def test_the_largest_init_container_counts_not_the_sum() -> None:
    cache = cluster([node("n", cpu="2")])
    init = [{"name": f"i{i}", "image": "x", "resources": {"requests": {"cpu": "1500m"}}} for i in range(3)]
    assert feasible(NodeResourcesFit(), pod("p", "500m", initContainers=init), cache) == ["n"]
    greedy = [{"name": "i", "image": "x", "resources": {"requests": {"cpu": "3"}}}]
    assert filter_all(NodeResourcesFit(), pod("q", "500m", initContainers=greedy), cache)["n"] is not None


def test_sidecars_keep_running_and_pod_overhead_is_added() -> None:
    cache = cluster([node("n", cpu="2")])
    sidecar = {"name": "proxy", "image": "x", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}}
    assert feasible(NodeResourcesFit(), pod("fits", "1", initContainers=[sidecar]), cache) == ["n"]
    assert feasible(NodeResourcesFit(), pod("too-big", "1001m", initContainers=[sidecar]), cache) == []
    assert feasible(NodeResourcesFit(), pod("overhead", "1900m", overhead={"cpu": "200m"}), cache) == []


def test_extended_resources_must_be_offered() -> None:
    gpu_node = node("gpu")
    gpu_node["status"]["allocatable"]["example.com/gpu"] = "1"
    cache = cluster([gpu_node, node("plain")])
    wants_gpu = pod("p")
    wants_gpu["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "1"}, "limits": {}}
    verdict = filter_all(NodeResourcesFit(), wants_gpu, cache)
    assert verdict["gpu"] is None
    assert verdict["plain"] is not None and verdict["plain"].reasons == ("Insufficient example.com/gpu",)


def test_least_allocated_prefers_the_emptier_node_counting_defaults_for_best_effort_pods() -> None:
    cache = cluster(
        [node("half", cpu="4", memory="8Gi"), node("empty", cpu="4", memory="8Gi")],
        [pod("x", "2", "4Gi", node_name="half")],
    )
    result = scores(NodeResourcesFit(), pod("p", "1", "2Gi"), cache)
    assert result == {"half": 25, "empty": 75}  # (4-3)/4 and (4-1)/4 for both cpu and memory
    # a pod without requests counts as 100m / 200Mi (cpu: 3900/4000 -> 97, memory: 7992Mi/8Gi -> 97)
    assert scores(NodeResourcesFit(), pod("best-effort"), cache) == {"half": 47, "empty": 97}


# -- NodeResourcesBalancedAllocation -------------------------------------------------------------------------


def test_balanced_allocation_prefers_equal_cpu_and_memory_use() -> None:
    cache = cluster(
        [node("cpu-heavy", cpu="4", memory="4Gi"), node("even", cpu="4", memory="4Gi")],
        [pod("x", "2", node_name="cpu-heavy"), pod("y", "1", "1Gi", node_name="even")],
    )
    result = scores(NodeResourcesBalancedAllocation(), pod("p", "1", "1Gi"), cache)
    assert result == {"cpu-heavy": 75, "even": 100}  # fractions .75/.25 -> 1 - .5/2; .5/.5 -> 1
    assert scores(NodeResourcesBalancedAllocation(), pod("best-effort"), cache) is None


# -- NodeAffinity --------------------------------------------------------------------------------------------


def test_node_selector_and_required_terms_with_every_operator() -> None:
    cache = cluster(
        [
            node("small", labels={"disk": "ssd", "cores": "4"}),
            node("big", labels={"disk": "ssd", "cores": "64", "gpu": "yes"}),
            node("hdd", labels={"disk": "hdd", "cores": "16"}),
        ]
    )
    plugin = NodeAffinity()
    assert feasible(plugin, pod("p", nodeSelector={"disk": "ssd"}), cache) == ["small", "big"]

    def expr(key: str, op: str, *values: str) -> Obj:
        return {"key": key, "operator": op, "values": list(values)} if values else {"key": key, "operator": op}

    def fits(*expressions: Obj, fields: list[Obj] | None = None) -> list[str]:
        term: Obj = {"matchExpressions": list(expressions)}
        if fields:
            term["matchFields"] = fields
        required = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        return feasible(plugin, pod("p", affinity={"nodeAffinity": required}), cache)

    assert fits(expr("disk", "In", "hdd", "nvme")) == ["hdd"]
    assert fits(expr("disk", "NotIn", "hdd")) == ["small", "big"]
    assert fits(expr("gpu", "Exists")) == ["big"]
    assert fits(expr("gpu", "DoesNotExist")) == ["small", "hdd"]
    assert fits(expr("cores", "Gt", "8")) == ["big", "hdd"]
    assert fits(expr("cores", "Lt", "8")) == ["small"]
    assert fits(fields=[expr("metadata.name", "In", "small", "hdd")]) == ["small", "hdd"]
    assert fits() == []  # an empty term matches no node
    rejected = filter_all(plugin, pod("p", nodeSelector={"disk": "tape"}), cache)["small"]
    assert rejected == Status(Code.UNRESOLVABLE, ("node(s) didn't match Pod's node affinity/selector",))


def test_preferred_node_affinity_adds_weights_normalized_to_100() -> None:
    cache = cluster([node("a", labels={"tier": "gold"}), node("b", labels={"tier": "silver"}), node("c")])
    preferred = [
        {"weight": 80, "preference": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}},
        {"weight": 20, "preference": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
    ]
    wanting = pod("p", affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}})
    assert scores(NodeAffinity(), wanting, cache) == {"a": 100, "b": 20, "c": 0}
    assert scores(NodeAffinity(), pod("indifferent"), cache) is None


# -- TaintToleration -----------------------------------------------------------------------------------------


def test_untolerated_no_schedule_and_no_execute_taints_are_named_in_the_reason() -> None:
    cache = cluster(
        [
            node("cp", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
            node("gpu", taints=[{"key": "gpu", "value": "true", "effect": "NoExecute"}]),
            node("soft", taints=[{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]),
        ]
    )
    verdict = filter_all(TaintToleration(), pod("p"), cache)
    assert verdict["cp"] == Status(
        Code.UNRESOLVABLE, ("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",)
    )
    assert verdict["gpu"] == Status(Code.UNRESOLVABLE, ("node(s) had untolerated taint {gpu: true}",))
    assert verdict["soft"] is None
    tolerant = pod(
        "t",
        tolerations=[
            {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoExecute"},
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
        ],
    )
    assert feasible(TaintToleration(), tolerant, cache) == ["cp", "gpu", "soft"]
    wrong_value = pod("w", tolerations=[{"key": "gpu", "operator": "Equal", "value": "false"}])
    assert "gpu" not in feasible(TaintToleration(), wrong_value, cache)
    assert feasible(TaintToleration(), pod("all", tolerations=[{"operator": "Exists"}]), cache) == ["cp", "gpu", "soft"]


def test_prefer_no_schedule_taints_lower_the_score_unless_tolerated() -> None:
    cache = cluster([node("clean"), node("spot", taints=[{"key": "spot", "effect": "PreferNoSchedule"}])])
    assert scores(TaintToleration(), pod("p"), cache) == {"clean": 100, "spot": 0}
    tolerant = pod("t", tolerations=[{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert scores(TaintToleration(), tolerant, cache) == {"clean": 100, "spot": 100}


# -- NodePorts -----------------------------------------------------------------------------------------------


def test_host_ports_clash_on_the_same_ip_and_0_0_0_0_clashes_with_every_ip() -> None:
    def with_port(name: str, port: int, ip: str = "", node_name: str = "") -> Obj:
        p = pod(name, node_name=node_name)
        p["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": port, "hostIP": ip}]
        return p

    cache = cluster(
        [node("wildcard"), node("specific"), node("free")],
        [with_port("a", 8080, node_name="wildcard"), with_port("b", 8080, "10.0.0.1", node_name="specific")],
    )
    verdict = filter_all(NodePorts(), with_port("p", 8080), cache)
    assert verdict["wildcard"] == Status(
        Code.UNSCHEDULABLE, ("node(s) didn't have free ports for the requested pod ports",)
    )
    assert verdict["specific"] is not None and verdict["free"] is None
    assert feasible(NodePorts(), with_port("q", 8080, "10.0.0.2"), cache) == ["specific", "free"]
    assert feasible(NodePorts(), with_port("r", 9090), cache) == ["wildcard", "specific", "free"]


# -- InterPodAffinity ----------------------------------------------------------------------------------------


def zoned_nodes() -> list[Obj]:
    return [
        node("a1", labels={ZONE: "a"}),
        node("a2", labels={ZONE: "a"}),
        node("b1", labels={ZONE: "b"}),
        node("nozone"),
    ]


def term(labels: dict[str, str], topology_key: str = ZONE, **extra: Any) -> Obj:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": topology_key, **extra}


def with_affinity(p: Obj, kind: str, mode: str, *terms: Obj) -> Obj:
    p["spec"].setdefault("affinity", {}).update(affinity(kind, mode, *terms))
    return p


def pod_affinity_plugin(cache: Cache) -> InterPodAffinity:
    return InterPodAffinity(cache.pods_with_required_anti_affinity, cache.pods_with_affinity)


def test_required_pod_affinity_follows_the_matching_pod_into_its_zone() -> None:
    cache = cluster(zoned_nodes(), [pod("db", labels={"app": "db"}, node_name="a2")])
    plugin = pod_affinity_plugin(cache)
    web = with_affinity(pod("web"), "podAffinity", "required", term({"app": "db"}))
    verdict = filter_all(plugin, web, cache)
    assert [n for n, s in verdict.items() if s is None] == ["a1", "a2"]
    assert verdict["b1"] == Status(Code.UNRESOLVABLE, ("node(s) didn't match pod affinity rules",))
    # another namespace's db does not count unless the term names it
    other_ns = with_affinity(pod("web", namespace="shop"), "podAffinity", "required", term({"app": "db"}))
    assert feasible(plugin, other_ns, cache) == []
    named = term({"app": "db"}, namespaces=["default"])
    assert feasible(plugin, with_affinity(pod("web", namespace="shop"), "podAffinity", "required", named), cache) == [
        "a1",
        "a2",
    ]


def test_the_first_pod_of_a_group_may_land_anywhere_when_it_matches_its_own_affinity() -> None:
    cache = cluster(zoned_nodes())
    first = with_affinity(pod("w0", labels={"app": "web"}), "podAffinity", "required", term({"app": "web"}))
    assert feasible(pod_affinity_plugin(cache), first, cache) == ["a1", "a2", "b1"]  # not the node without a zone


def test_anti_affinity_keeps_replicas_apart_both_ways() -> None:
    repel = term({"app": "web"}, "kubernetes.io/hostname")
    running = with_affinity(pod("w0", labels={"app": "web"}, node_name="a1"), "podAntiAffinity", "required", repel)
    cache = cluster(zoned_nodes(), [running])
    plugin = pod_affinity_plugin(cache)
    second = with_affinity(pod("w1", labels={"app": "web"}), "podAntiAffinity", "required", repel)
    verdict = filter_all(plugin, second, cache)
    assert verdict["a1"] == Status(Code.UNSCHEDULABLE, ("node(s) didn't match pod anti-affinity rules",))
    assert [n for n, s in verdict.items() if s is None] == ["a2", "b1", "nozone"]
    # a pod without terms of its own is still kept away by the running pod's anti-affinity
    plain = filter_all(plugin, pod("w2", labels={"app": "web"}), cache)
    assert plain["a1"] == Status(Code.UNSCHEDULABLE, ("node(s) didn't satisfy existing pods anti-affinity rules",))
    assert plain["a2"] is None
    assert feasible(plugin, pod("other", labels={"app": "db"}), cache) == ["a1", "a2", "b1", "nozone"]


def test_namespace_selector_picks_pods_in_labelled_namespaces() -> None:
    cache = cluster(zoned_nodes(), [pod("cache", namespace="infra", labels={"app": "cache"}, node_name="b1")])
    by_selector = term({"app": "cache"}, namespaceSelector={"matchLabels": {"team": "platform"}})
    near = with_affinity(pod("p"), "podAffinity", "required", by_selector)
    labelled = {"infra": {"team": "platform"}, "default": {}}
    assert feasible(pod_affinity_plugin(cache), near, cache, labelled) == ["b1"]
    assert feasible(pod_affinity_plugin(cache), near, cache, {"infra": {"team": "other"}}) == []


def test_preferred_pod_affinity_and_anti_affinity_score_zones() -> None:
    cache = cluster(
        zoned_nodes(),
        [pod("db", labels={"app": "db"}, node_name="a1"), pod("batch", labels={"app": "batch"}, node_name="b1")],
    )
    p = with_affinity(pod("web"), "podAffinity", "preferred", {"weight": 10, "podAffinityTerm": term({"app": "db"})})
    with_affinity(p, "podAntiAffinity", "preferred", {"weight": 5, "podAffinityTerm": term({"app": "batch"})})
    result = scores(pod_affinity_plugin(cache), p, cache)
    assert result == {"a1": 100, "a2": 100, "b1": 0, "nozone": 33}  # +10 in zone a, -5 in zone b, 0 elsewhere


# -- PodTopologySpread ---------------------------------------------------------------------------------------


def spread(max_skew: int = 1, when: str = "DoNotSchedule", app: str = "web", **extra: Any) -> Obj:
    return {
        "maxSkew": max_skew,
        "topologyKey": ZONE,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": app}},
        **extra,
    }


def test_do_not_schedule_keeps_zones_within_max_skew() -> None:
    web = {"app": "web"}
    cache = cluster(zoned_nodes(), [pod("w0", labels=web, node_name="a1"), pod("w1", labels=web, node_name="a2")])
    verdict = filter_all(PodTopologySpread(), pod("w2", labels=web, topologySpreadConstraints=[spread()]), cache)
    assert verdict["b1"] is None
    assert verdict["a1"] == Status(Code.UNSCHEDULABLE, ("node(s) didn't match pod topology spread constraints",))
    assert verdict["nozone"] == Status(
        Code.UNRESOLVABLE, ("node(s) didn't match pod topology spread constraints (missing required label)",)
    )
    loose = pod("w2", labels=web, topologySpreadConstraints=[spread(max_skew=3)])
    assert feasible(PodTopologySpread(), loose, cache) == ["a1", "a2", "b1"]
    # only the pods the constraint selects count
    other_app = pod("x", labels={"app": "x"}, topologySpreadConstraints=[spread(app="x")])
    assert feasible(PodTopologySpread(), other_app, cache) == ["a1", "a2", "b1"]


def test_min_domains_treats_missing_domains_as_empty() -> None:
    web = {"app": "web"}
    cache = cluster(zoned_nodes(), [pod("w0", labels=web, node_name="a1"), pod("w1", labels=web, node_name="b1")])
    plain = pod("w2", labels=web, topologySpreadConstraints=[spread()])
    assert feasible(PodTopologySpread(), plain, cache) == ["a1", "a2", "b1"]
    wants_three_zones = pod("w2", labels=web, topologySpreadConstraints=[spread(minDomains=3)])
    assert feasible(PodTopologySpread(), wants_three_zones, cache) == []


def test_schedule_anyway_prefers_the_emptier_zone() -> None:
    web = {"app": "web"}
    cache = cluster(zoned_nodes(), [pod("w0", labels=web, node_name="a1"), pod("w1", labels=web, node_name="a2")])
    soft = pod("w2", labels=web, topologySpreadConstraints=[spread(when="ScheduleAnyway")])
    result = scores(PodTopologySpread(), soft, cache)
    assert result is not None and result["b1"] == 100 and result["a1"] == result["a2"] < 100
    assert result["nozone"] == 0
    assert filter_all(PodTopologySpread(), soft, cache)["a1"] is None  # soft constraints never filter


def test_match_label_keys_count_only_pods_of_the_same_revision() -> None:
    old, new = {"app": "web", "rev": "1"}, {"app": "web", "rev": "2"}
    cache = cluster(zoned_nodes(), [pod("w0", labels=old, node_name="a1"), pod("w1", labels=old, node_name="a2")])
    constraints = [spread(matchLabelKeys=["rev"])]
    new_revision = pod("n0", labels=new, topologySpreadConstraints=constraints)
    assert feasible(PodTopologySpread(), new_revision, cache) == ["a1", "a2", "b1"]
    old_revision = pod("o2", labels=old, topologySpreadConstraints=constraints)
    assert feasible(PodTopologySpread(), old_revision, cache) == ["b1"]
