"""Label and field selectors: kube's syntax, matching rules, supported fields and error messages."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from shim.apiserver.resources import build_registry
from shim.apiserver.selectable_fields import SelectableFields
from shim.machinery.selectors import (
    FieldRequirement,
    FieldSelector,
    SelectorError,
    label_selector_from_object,
    parse_field_selector,
    parse_label_selector,
    selector_to_string,
)

WEB = {"app": "web", "tier": "frontend", "app.kubernetes.io/name": "shop", "replicas": "3", "empty": ""}

REGISTRY = build_registry()


def fields_of(group: str, resource: str) -> SelectableFields:
    """The served kind's selectable fields (its strategy's)."""
    return next(r.strategy.selectable_fields for r in REGISTRY.resources if (r.group, r.plural) == (group, resource))


def selectable_fields(group: str, resource: str, obj: dict[str, Any]) -> dict[str, str]:
    return fields_of(group, resource).values(obj)


def supported_fields(group: str, resource: str) -> frozenset[str]:
    return fields_of(group, resource).supported()


def convert_field_selector(group: str, resource: str, selector: FieldSelector) -> FieldSelector:
    return fields_of(group, resource).convert(selector)


def field_matcher(group: str, resource: str, selector: FieldSelector) -> Callable[[Any], bool]:
    return fields_of(group, resource).matcher(selector)


def selects(selector: str, labels: dict[str, str] | None = WEB) -> bool:
    return parse_label_selector(selector).matches(labels)


def label_error(selector: str) -> str:
    with pytest.raises(SelectorError) as error:
        parse_label_selector(selector)
    return str(error.value)


# -- label selectors: matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app=api", False),
        ("app!=api", True),
        ("app!=web", False),
        ("app in (api,web)", True),
        ("app in (api,db)", False),
        ("app notin (api,db)", True),
        ("app notin (web)", False),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("missing", False),
        ("replicas>2", True),
        ("replicas>3", False),
        ("replicas<4", True),
        ("replicas<3", False),
        ("app.kubernetes.io/name=shop", True),
        ("empty=", True),
        ("empty in ()", True),
        ("app=web,tier=frontend,!missing,replicas>1", True),
        ("app=web,tier=backend", False),
    ],
)
def test_every_operator_matches_like_kube(selector: str, selected: bool) -> None:
    assert selects(selector) is selected


def test_a_missing_key_satisfies_only_the_negative_operators() -> None:
    for selector in ("missing!=x", "missing notin (x)", "!missing"):
        assert selects(selector), selector
    for selector in ("missing=", "missing in (x,)", "missing", "missing>0", "missing<0"):
        assert not selects(selector), selector


def test_gt_and_lt_compare_integers_and_never_match_other_values() -> None:
    assert not selects("app>1")  # "web" is not an integer
    assert selects("n<10", {"n": "9"}) and selects("n<10", {"n": "-3"}) and selects("n>1", {"n": "+2"})
    assert not selects("n<10", {"n": "99999999999999999999"})  # beyond int64: not a number to kube
    assert not selects("n>1", {"n": "1_000"}) and not selects("n>1", {"n": " 5"})


def test_whitespace_is_free_around_tokens() -> None:
    assert selects("  app = web ,\ttier in ( frontend , backend ) , ! missing  ")
    assert str(parse_label_selector(" app  notin  ( b , a ) ")) == "app notin (a,b)"


def test_empty_and_blank_selectors_select_everything() -> None:
    for text in ("", "   "):
        selector = parse_label_selector(text)
        assert selector.empty and selector.matches(None) and selector.matches(WEB)


def test_an_object_without_labels_matches_only_negative_requirements() -> None:
    assert selects("!app", None) and selects("app!=web", None)
    assert not selects("app=web", None) and not selects("app", None)


def test_set_values_may_be_empty_strings() -> None:
    assert parse_label_selector("x in (a,,b)").requirements[0].values == ("", "a", "b")
    assert parse_label_selector("x in (,a)").requirements[0].values == ("", "a")
    assert parse_label_selector("x in (a,)").requirements[0].values == ("", "a")
    assert parse_label_selector("x in ()").requirements[0].values == ("",)
    assert parse_label_selector("x=").requirements[0].values == ("",)


def test_in_and_notin_are_keywords_only_where_an_operator_is_expected() -> None:
    assert selects("in in (in)", {"in": "in"}) and selects("notin=in", {"notin": "in"})


def test_the_string_form_sorts_keys_and_values_and_keeps_the_operator() -> None:
    text = "tier notin (z,a),app==web,!legacy,b>2,a,c!=d"
    assert str(parse_label_selector(text)) == "a,app==web,b>2,c!=d,!legacy,tier notin (a,z)"


# -- label selectors: parse errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("app=a b", "found 'b', expected: ',' or 'end of string'"),
        (",app", "found ',', expected: !, identifier, or 'end of string'"),
        ("app=web,", "found '', expected: identifier after ','"),
        ("app=web,,x", "found ',', expected: identifier after ','"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!app=web", "found '=', expected: ',' or 'end of string'"),
        ("app (a)", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
        ("app in a", "unable to parse requirement: found 'a' expected: '('"),
        ("app in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("app in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("app in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("app===web", "unable to parse requirement: found '=', expected: identifier"),
        ("app=(", "unable to parse requirement: found '(', expected: identifier"),
        (
            "replicas>three",
            'unable to parse requirement: values[0]: Invalid value: "three": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
    ],
)
def test_syntax_errors_read_like_kube(selector: str, message: str) -> None:
    assert label_error(selector) == message


NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def test_invalid_keys_and_values_are_reported_with_kubes_validation_text() -> None:
    assert label_error("-app=web") == f'unable to parse requirement: <nil>: Invalid value: "-app": {NAME_RULE}'
    assert label_error("app=a/b") == f'unable to parse requirement: values[0][app]: Invalid value: "a/b": {VALUE_RULE}'
    assert label_error("n>-1") == f'unable to parse requirement: values[0][n]: Invalid value: "-1": {VALUE_RULE}'
    too_long = "v" * 64
    assert label_error(f"app={too_long}") == (
        f'unable to parse requirement: values[0][app]: Invalid value: "{too_long}": must be no more than 63 characters'
    )
    assert label_error("Example.com/name=x") == (
        'unable to parse requirement: <nil>: Invalid value: "Example.com/name": prefix part a lowercase '
        "RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
        "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
    assert label_error("a/b/c") == (
        'unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
        "(e.g. 'example.com/MyName')"
    )
    assert label_error("example.com/=x") == (
        f'unable to parse requirement: <nil>: Invalid value: "example.com/": name part must be non-empty; {NAME_RULE}'
    )


# -- metav1.LabelSelector objects ----------------------------------------------------------------------------


def test_a_selector_object_combines_match_labels_and_expressions() -> None:
    selector = label_selector_from_object(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "env", "operator": "In", "values": ["staging", "prod"]},
            ],
        }
    )
    assert str(selector) == "app=web,env in (prod,staging),!legacy,tier"
    assert selector.matches({"app": "web", "tier": "a", "env": "prod"})
    assert not selector.matches({"app": "web", "tier": "a", "env": "dev"})
    assert not selector.matches({"app": "web", "tier": "a", "env": "prod", "legacy": "1"})


def test_a_nil_selector_selects_nothing_and_an_empty_one_everything() -> None:
    nothing = label_selector_from_object(None)
    assert not nothing.matches({}) and not nothing.matches(WEB) and not nothing.empty and str(nothing) == ""
    everything = label_selector_from_object({})
    assert everything.matches(None) and everything.matches(WEB) and everything.empty
    assert label_selector_from_object({"matchLabels": {}, "matchExpressions": []}).empty


def test_scale_status_selector_strings() -> None:
    assert selector_to_string({"matchLabels": {"app": "web"}}) == "app=web"
    assert selector_to_string({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}) == "app in (a)"
    assert selector_to_string({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"
    assert selector_to_string({}) == ""


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
            '"Equals" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: ["x"]: values set must be empty for exists and does not exist',
        ),
        ({"matchLabels": {"bad key": "x"}}, f'key: Invalid value: "bad key": {NAME_RULE}'),
        ({"matchLabels": {"app": "a b"}}, f'values[0][app]: Invalid value: "a b": {VALUE_RULE}'),
    ],
)
def test_invalid_selector_objects_are_rejected_like_label_selector_as_selector(
    selector: dict[str, Any], message: str
) -> None:
    with pytest.raises(SelectorError) as error:
        label_selector_from_object(selector)
    assert str(error.value) == message


def test_several_problems_in_one_requirement_are_aggregated() -> None:
    with pytest.raises(SelectorError) as error:
        label_selector_from_object({"matchLabels": {"-k": "-v"}})
    assert (
        str(error.value) == f'[key: Invalid value: "-k": {NAME_RULE}, values[0][-k]: Invalid value: "-v": {VALUE_RULE}]'
    )


# -- field selectors -----------------------------------------------------------------------------------------


def test_field_terms_use_equals_double_equals_and_not_equals() -> None:
    selector = parse_field_selector("status.phase=Running,spec.nodeName==node-1,metadata.name!=web-0")
    assert selector.requirements == (
        FieldRequirement("metadata.name", "!=", "web-0"),
        FieldRequirement("spec.nodeName", "=", "node-1"),
        FieldRequirement("status.phase", "=", "Running"),
    )
    fields = {"metadata.name": "web-1", "spec.nodeName": "node-1", "status.phase": "Running"}
    assert selector.matches(fields)
    assert not selector.matches({**fields, "metadata.name": "web-0"})
    assert not selector.matches({**fields, "status.phase": "Pending"})


def test_describe_event_selectors_match_whatever_the_term_order() -> None:
    terms = ["involvedObject.name=app", "involvedObject.namespace=default", "involvedObject.uid=0b1e"]
    parsed = {str(parse_field_selector(",".join(order))) for order in itertools.permutations(terms)}
    assert parsed == {"involvedObject.name=app,involvedObject.namespace=default,involvedObject.uid=0b1e"}
    event = {"involvedObject": {"kind": "Pod", "name": "app", "namespace": "default", "uid": "0b1e"}}
    for order in itertools.permutations(terms):
        assert field_matcher("", "events", parse_field_selector(",".join(order)))(event)


def test_an_absent_field_reads_as_empty() -> None:
    unscheduled = parse_field_selector("spec.nodeName=")
    assert unscheduled.matches({}) and not unscheduled.matches({"spec.nodeName": "node-1"})
    assert parse_field_selector("spec.nodeName!=").matches({"spec.nodeName": "node-1"})


def test_escaped_commas_equals_and_backslashes_are_part_of_the_value() -> None:
    assert parse_field_selector(r"metadata.name=a\,b,type=x").requirements == (
        FieldRequirement("metadata.name", "=", "a,b"),
        FieldRequirement("type", "=", "x"),
    )
    assert parse_field_selector(r"a=b\=c").requirements[0].value == "b=c"
    assert parse_field_selector(r"a=b\\c").requirements[0].value == "b\\c"
    assert str(parse_field_selector(r"a=x\,y\=z")) == r"a=x\,y\=z"


def test_empty_terms_are_ignored() -> None:
    assert parse_field_selector("").empty and parse_field_selector(",,").empty
    assert len(parse_field_selector("a=b,,c=d").requirements) == 2


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("status.phase", "invalid selector: 'status.phase'; can't understand 'status.phase'"),
        ("b=1,a", "invalid selector: 'b=1,a'; can't understand 'a'"),
        (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    ],
)
def test_field_selector_syntax_errors_read_like_kube(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as error:
        parse_field_selector(selector)
    assert str(error.value) == message


def test_requires_exact_match_finds_an_equality_term() -> None:
    selector = parse_field_selector("metadata.name=web,status.phase!=Failed")
    assert selector.requires_exact_match("metadata.name") == "web"
    assert selector.requires_exact_match("status.phase") is None


# -- the fields each kind supports ---------------------------------------------------------------------------


def unsupported(group: str, resource: str, selector: str) -> str:
    with pytest.raises(SelectorError) as error:
        convert_field_selector(group, resource, parse_field_selector(selector))
    return str(error.value)


def test_unsupported_field_labels_are_rejected_with_the_kinds_own_message() -> None:
    assert unsupported("", "pods", "spec.foo=x") == "field label not supported: spec.foo"
    assert unsupported("", "nodes", "metadata.namespace=x") == "field label not supported: metadata.namespace"
    assert unsupported("", "configmaps", "data.x=1") == (
        '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
    assert unsupported("apps", "replicasets", "spec.replicas=1") == "field label not supported: spec.replicas"
    assert unsupported("apps", "deployments", "status.replicas=1") == (
        '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
    assert unsupported("events.k8s.io", "events", "involvedObject.name=x") == (
        "field label not supported: involvedObject.name"
    )
    # terms are checked in kube's (sorted) order, so the first reported is the same whatever the query order
    assert unsupported("", "pods", "zzz=1,aaa=2") == "field label not supported: aaa"


def test_supported_fields_per_kind() -> None:
    assert supported_fields("", "pods") == {
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
        "spec.host",
    }
    assert supported_fields("", "nodes") == {"metadata.name", "spec.unschedulable"}
    assert supported_fields("", "namespaces") == {"metadata.name", "status.phase"}
    assert supported_fields("", "secrets") == {"metadata.name", "metadata.namespace", "type"}
    assert supported_fields("", "services") == {
        "metadata.name",
        "metadata.namespace",
        "spec.clusterIP",
        "spec.type",
    }
    assert supported_fields("apps", "deployments") == {"metadata.name", "metadata.namespace"}
    assert "source" in supported_fields("", "events") and "source" not in supported_fields("events.k8s.io", "events")
    assert {"regarding.name", "reportingController"} <= supported_fields("events.k8s.io", "events")


def pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "web-1", "namespace": "shop"},
        "spec": {
            "nodeName": "node-1",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "containers": [{"name": "app", "image": "nginx"}],
        },
        "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.7"}], "podIP": "10.244.0.7"},
    }


def test_a_pods_selectable_fields() -> None:
    assert selectable_fields("", "pods", pod()) == {
        "metadata.name": "web-1",
        "metadata.namespace": "shop",
        "spec.nodeName": "node-1",
        "spec.restartPolicy": "Always",
        "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "default",
        "spec.hostNetwork": "false",
        "status.phase": "Running",
        "status.podIP": "10.244.0.7",
        "status.nominatedNodeName": "",
        "status.podIPs": "",
    }


def test_old_clients_spec_host_selects_on_the_node_name() -> None:
    converted = convert_field_selector("", "pods", parse_field_selector("spec.host=node-1"))
    assert converted.requirements == (FieldRequirement("spec.nodeName", "=", "node-1"),)
    assert field_matcher("", "pods", converted)(pod())


def test_other_kinds_selectable_fields() -> None:
    node = {"metadata": {"name": "node-1"}, "spec": {"unschedulable": True}}
    assert selectable_fields("", "nodes", node) == {"metadata.name": "node-1", "spec.unschedulable": "true"}
    assert selectable_fields("", "secrets", {"metadata": {"name": "s", "namespace": "a"}, "type": "Opaque"}) == {
        "metadata.name": "s",
        "metadata.namespace": "a",
        "type": "Opaque",
    }
    assert selectable_fields("", "configmaps", {"metadata": {"name": "c", "namespace": "a"}}) == {
        "metadata.name": "c",
        "metadata.namespace": "a",
    }


def test_an_events_source_falls_back_to_its_reporting_controller() -> None:
    core = {"metadata": {"name": "e"}, "reportingController": "default-scheduler", "source": {}}
    assert selectable_fields("", "events", core)["source"] == "default-scheduler"
    assert selectable_fields("", "events", {**core, "source": {"component": "kubelet"}})["source"] == "kubelet"


def test_events_k8s_io_clients_select_with_regarding_and_reporting_controller() -> None:
    event = {
        "metadata": {"name": "web.1", "namespace": "shop"},
        "regarding": {"kind": "Pod", "name": "web", "namespace": "shop"},
        "reportingController": "kubelet",
        "reason": "Pulled",
        "type": "Normal",
    }
    converted = convert_field_selector(
        "events.k8s.io", "events", parse_field_selector("regarding.name=web,reportingController=kubelet")
    )
    assert converted.requirements == (
        FieldRequirement("involvedObject.name", "=", "web"),
        FieldRequirement("reportingComponent", "=", "kubelet"),
    )
    assert field_matcher("events.k8s.io", "events", converted)(event)
    assert selectable_fields("events.k8s.io", "events", event)["involvedObject.kind"] == "Pod"


@pytest.mark.parametrize(
    "selector",
    [
        "status.phase=Running",
        "status.phase!=Running",
        "spec.nodeName=node-1,status.phase=Running",
        "spec.nodeName=",
        "status.podIP=10.244.0.7,metadata.namespace=shop",
        "spec.hostNetwork=false",
        "status.podIPs=",
    ],
)
def test_the_fast_matcher_agrees_with_the_field_set(selector: str) -> None:
    converted = convert_field_selector("", "pods", parse_field_selector(selector))
    unscheduled = pod()
    del unscheduled["spec"]["nodeName"]
    for obj in (pod(), unscheduled, {"metadata": {"name": "bare"}}):
        assert field_matcher("", "pods", converted)(obj) == converted.matches(selectable_fields("", "pods", obj))
