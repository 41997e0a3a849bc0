"""The matching rules the plugins share, parsed once per pod: tolerations against taints, node selector
terms against nodes, pod affinity terms against pods."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shim.machinery.selectors import LabelSelector, Requirement, SelectorError, label_selector_from_object

Obj = dict[str, Any]
Labels = Mapping[str, str]
NodeMatcher = Callable[[Labels, str], bool]

# NodeSelectorOperator -> kube's selection.Operator (as shim.machinery.selectors.Requirement spells them)
_NODE_OPERATORS = {
    "In": "in",
    "NotIn": "notin",
    "Exists": "exists",
    "DoesNotExist": "!",
    "Gt": "gt",
    "Lt": "lt",
}


# -- taints and tolerations ----------------------------------------------------------------------------------


def tolerates(tolerations: Sequence[Obj], taint: Obj) -> bool:
    """v1helper.TolerationsTolerateTaint: some toleration matches the taint's key, value and effect."""
    return any(_tolerates(t, taint) for t in tolerations)


def _tolerates(toleration: Obj, taint: Obj) -> bool:
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


# -- node selectors ------------------------------------------------------------------------------------------


def required_node_matcher(spec: Obj) -> NodeMatcher | None:
    """nodeaffinity.GetRequiredNodeAffinity: spec.nodeSelector AND the required node affinity terms (ORed).

    None when the pod states neither (every node matches).
    """
    selector = spec.get("nodeSelector") or {}
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    ) or None
    if not selector and required is None:
        return None
    terms = [node_selector_term(t) for t in required.get("nodeSelectorTerms") or ()] if required else None
    wanted = tuple(selector.items())

    def matches(labels: Labels, name: str) -> bool:
        for key, value in wanted:
            if labels.get(key) != value:
                return False
        return terms is None or any(term(labels, name) for term in terms)

    return matches


def node_selector_term(term: Obj) -> NodeMatcher:
    """One NodeSelectorTerm: all matchExpressions (on labels) and matchFields (on metadata.name) hold.

    A term with neither, or with a requirement kube would reject, matches no node.
    """
    expressions = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not expressions and not fields:
        return lambda labels, name: False
    try:
        on_labels = _requirements(expressions)
        on_fields = _requirements(f for f in fields if f.get("key") == "metadata.name")
    except SelectorError:
        return lambda labels, name: False
    if len(on_fields.requirements) != len(fields):  # metadata.name is the only node field kube selects on
        return lambda labels, name: False
    if not fields:
        return lambda labels, name: on_labels.matches(labels)
    return lambda labels, name: on_labels.matches(labels) and on_fields.matches({"metadata.name": name})


def _requirements(expressions: Any) -> LabelSelector:
    requirements = []
    for expr in expressions:
        operator = _NODE_OPERATORS.get(expr.get("operator", ""))
        values = tuple(expr.get("values") or ())
        if operator is None or (operator in ("in", "notin") and not values):
            raise SelectorError(f"invalid node selector operator {expr.get('operator')!r}")
        if operator in ("gt", "lt") and len(values) != 1:
            raise SelectorError("Gt and Lt take exactly one value")
        requirements.append(Requirement(expr.get("key", ""), operator, values))
    return LabelSelector(requirements)


# -- pod affinity terms --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """A PodAffinityTerm of some pod: which pods (namespaces + label selector) and in which topology."""

    selector: LabelSelector
    namespaces: frozenset[str]
    namespace_selector: LabelSelector | None
    topology_key: str
    weight: int = 1

    def matches(self, namespace: str, labels: Labels, namespace_labels: Mapping[str, Labels]) -> bool:
        """framework.AffinityTerm.Matches: the pod is in one of the term's namespaces and has the labels."""
        if namespace not in self.namespaces and not (
            self.namespace_selector is not None and self.namespace_selector.matches(namespace_labels.get(namespace))
        ):
            return False
        return self.selector.matches(labels)


def affinity_terms(
    terms: Sequence[Obj] | None, own_namespace: str, own_labels: Labels, weighted: bool = False
) -> tuple[AffinityTerm, ...]:
    """Parse PodAffinityTerms (or WeightedPodAffinityTerms) of a pod; a term kube cannot parse matches nothing.

    matchLabelKeys / mismatchLabelKeys join the selector with the pod's own values (kube-apiserver 1.31+
    merges them at creation; doing it again is harmless).
    """
    out = []
    for raw in terms or ():
        term = (raw.get("podAffinityTerm") or {}) if weighted else raw
        try:
            selector = label_selector_from_object(with_label_keys(term, own_labels))
            ns_selector_obj = term.get("namespaceSelector")
            ns_selector = label_selector_from_object(ns_selector_obj) if ns_selector_obj is not None else None
        except SelectorError:
            selector, ns_selector = LabelSelector(matches_nothing=True), None
        namespaces = frozenset(term.get("namespaces") or ())
        if not namespaces and ns_selector is None:  # no namespaces and no selector: the pod's own namespace
            namespaces = frozenset((own_namespace,))
        weight = int(raw.get("weight", 1)) if weighted else 1
        out.append(AffinityTerm(selector, namespaces, ns_selector, term.get("topologyKey", ""), weight))
    return tuple(out)


def with_label_keys(term: Mapping[str, Any], labels: Labels) -> Obj | None:
    """The labelSelector of a PodAffinityTerm or TopologySpreadConstraint with its matchLabelKeys (`In` the
    pod's own value) and mismatchLabelKeys (`NotIn`) added."""
    selector = term.get("labelSelector")
    extra = [
        {"key": key, "operator": operator, "values": [labels[key]]}
        for field, operator in (("matchLabelKeys", "In"), ("mismatchLabelKeys", "NotIn"))
        for key in term.get(field) or ()
        if key in labels
    ]
    if selector is None or not extra:
        return selector
    return {**selector, "matchExpressions": [*(selector.get("matchExpressions") or ()), *extra]}
