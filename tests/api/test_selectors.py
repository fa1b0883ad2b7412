"""Label and field selectors: kube's grammar, error texts, per-kind field labels and matching."""

from __future__ import annotations

import time
from typing import Any

import pytest

from k8py.api import selectors as sel
from k8py.api.errors import StatusError
from k8py.api.registry import BUILTIN_KINDS, KindInfo
from k8py.apiserver.registry import build

KINDS = {(k.group, k.version, k.kind): k for k in BUILTIN_KINDS}


STRATEGIES = build()


def labels_of(k: KindInfo) -> sel.FieldLabels:
    """The field labels the API server accepts for ``k`` (its strategy's declaration)."""
    return STRATEGIES.for_kind(k).field_labels


def kind(group: str, version: str, k: str) -> KindInfo:
    return KINDS[(group, version, k)]


POD = kind("", "v1", "Pod")

# --- label selector strings ----------------------------------------------------

# (input, kube's String() of the parsed selector)
PARSE_CASES = [
    ("", ""),
    ("a=b", "a=b"),
    ("a==b", "a==b"),
    ("a!=b", "a!=b"),
    ("a", "a"),
    ("!a", "!a"),
    ("a=", "a="),
    ("x=a,y!=b", "x=a,y!=b"),
    ("z=a,a=b", "a=b,z=a"),  # sorted by key
    ("a=b,c!=d,e in (x,y),f notin (z),g,!h", "a=b,c!=d,e in (x,y),f notin (z),g,!h"),
    ("env in (prod, qa)", "env in (prod,qa)"),
    ("  env   in(qa , prod)  ,  tier  ", "env in (prod,qa),tier"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("x in (in)", "x in (in)"),
    ("in in (notin)", "in in (notin)"),
    ("example.com/app=web", "example.com/app=web"),
    ("k>3,j<1", "j<1,k>3"),
    ("a=b-c.d_e", "a=b-c.d_e"),
]


@pytest.mark.parametrize(("text", "normalized"), PARSE_CASES)
def test_parse_label_selector(text: str, normalized: str) -> None:
    assert str(sel.parse_label_selector(text)) == normalized


_NAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
              "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")

ERROR_CASES = [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("a==(", "unable to parse requirement: found '(', expected: identifier"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    (",", "found ',', expected: !, identifier, or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a=-b", "unable to parse requirement: values[0][a]: Invalid value: \"-b\": " + _LABEL_VALUE),
    ("-a", "unable to parse requirement: <nil>: Invalid value: \"-a\": " + _NAME_PART),
    ("a/b/c=d", ("unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of "
                "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')")),
    ("Example.com/a", ("unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a "
                      "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                      "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                      "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")),
    ("k>x", ("unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value "
            "must be an integer")),
    ("a=" + "x" * 64, "unable to parse requirement: values[0][a]: Invalid value: \"" + "x" * 64
     + "\": must be no more than 63 bytes"),
]


@pytest.mark.parametrize(("text", "message"), ERROR_CASES)
def test_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(sel.SelectorError) as e:
        sel.parse_label_selector(text)
    err: StatusError = e.value
    assert issubclass(sel.SelectorError, ValueError)
    assert (err.code, err.reason, err.message) == (400, "BadRequest", message)
    assert err.status()["message"] == message


MATCH_CASES = [
    ("", {}, True),
    ("a=b", {"a": "b"}, True),
    ("a=b", {"a": "c"}, False),
    ("a=b", {}, False),
    ("a!=b", {}, True),
    ("a!=b", {"a": "b"}, False),
    ("a", {"a": ""}, True),
    ("a", {"b": "a"}, False),
    ("!a", {"b": "1"}, True),
    ("!a", {"a": ""}, False),
    ("a=", {"a": ""}, True),
    ("a=", {}, False),
    ("e in (x,y)", {"e": "y"}, True),
    ("e in (x,y)", {"e": "z"}, False),
    ("e in (x,y)", {}, False),
    ("e notin (x,y)", {}, True),
    ("e notin (x,y)", {"e": "x"}, False),
    ("k>3", {"k": "4"}, True),
    ("k>3", {"k": "3"}, False),
    ("k>3", {"k": "four"}, False),
    ("k<3", {"k": "-10"}, True),  # matching only parses the label value as an integer
    ("a=b,c!=d,e in (x,y),f notin (z),g,!h", {"a": "b", "e": "x", "g": "1"}, True),
    ("a=b,c!=d,e in (x,y),f notin (z),g,!h", {"a": "b", "e": "x", "g": "1", "h": ""}, False),
    ("a=b,c!=d,e in (x,y),f notin (z),g,!h", {"a": "b", "c": "d", "e": "x", "g": ""}, False),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCH_CASES)
def test_label_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert sel.parse_label_selector(text).matches(labels) is expected


def test_everything_and_nothing() -> None:
    assert sel.parse_label_selector(None).empty
    assert sel.LabelSelector.everything().matches(None)
    assert not sel.LabelSelector.nothing().matches({})
    assert not sel.LabelSelector.nothing().empty
    assert sel.parse_label_selector("a=b").requires_exact_match("a") == "b"
    assert sel.parse_label_selector("a in (b)").requires_exact_match("a") == "b"
    assert sel.parse_label_selector("a in (b,c)").requires_exact_match("a") is None
    assert sel.parse_label_selector("a=b").requires_exact_match("x") is None


# --- the LabelSelector object -----------------------------------------------------

def test_from_label_selector() -> None:
    assert sel.from_label_selector(None).matches_nothing
    assert sel.from_label_selector({}).empty
    assert sel.from_label_selector({"matchLabels": {}, "matchExpressions": []}).empty
    s = sel.from_label_selector({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                             {"key": "canary", "operator": "DoesNotExist"},
                             {"key": "zone", "operator": "Exists"},
                             {"key": "env", "operator": "NotIn", "values": ["dev"]}]})
    assert str(s) == "app=web,!canary,env notin (dev),tier in (be,fe),zone"
    assert s.matches({"app": "web", "tier": "fe", "zone": "a"})
    assert not s.matches({"app": "web", "tier": "fe", "zone": "a", "canary": "1"})
    assert not s.matches({"app": "web", "tier": "fe", "zone": "a", "env": "dev"})
    assert not s.matches({"app": "web", "tier": "qa", "zone": "a"})


def test_from_label_selector_errors() -> None:
    with pytest.raises(sel.SelectorError) as e:
        sel.from_label_selector({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]})
    assert e.value.message == '"Equals" is not a valid label selector operator'
    with pytest.raises(sel.SelectorError) as e:
        sel.from_label_selector({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
    assert e.value.message == "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    with pytest.raises(sel.SelectorError) as e:
        sel.from_label_selector({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
    assert e.value.message == ('values: Invalid value: []string{"x"}: values set must be empty for exists and '
                               'does not exist')
    with pytest.raises(sel.SelectorError) as e:
        sel.from_label_selector({"matchLabels": {"-bad": "x!"}})
    assert e.value.message == ('[key: Invalid value: "-bad": ' + _NAME_PART + ', values[0][-bad]: Invalid value: '
                               '"x!": ' + _LABEL_VALUE + "]")


@pytest.mark.parametrize(("selector", "text"), [
    (None, "<none>"),
    ({}, "<none>"),
    ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
    ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, "<error>"),
])
def test_format_label_selector(selector: dict[str, Any] | None, text: str) -> None:
    assert sel.format_label_selector(selector) == text


def test_format_labels_and_set_selector() -> None:
    assert sel.format_labels(None) == "<none>"
    assert sel.format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    s = sel.selector_from_set({"app": "web", "tier": "fe"})
    assert str(s) == "app=web,tier=fe"
    assert s.matches({"app": "web", "tier": "fe", "x": "y"})
    assert not s.matches({"app": "web"})
    assert sel.selector_from_set({}).empty
    assert sel.label_selector_string({"matchLabels": {"app": "web"}}) == "app=web"
    assert sel.label_selector_string(None) == ""


def test_validate_label_selector() -> None:
    errs = sel.validate_label_selector({
        "matchLabels": {"ok": "fine", "bad key": "v", "k": "-v"},
        "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]},
                             {"key": "b", "operator": "In"},
                             {"key": "c", "operator": "Equals", "values": ["x"]},
                             {"key": "d", "operator": "In", "values": ["bad value"]}],
    }, "spec.selector")
    assert [(e.type.value, e.field) for e in errs] == [
        ("FieldValueInvalid", "spec.selector.matchLabels"),
        ("FieldValueInvalid", "spec.selector.matchLabels"),
        ("FieldValueForbidden", "spec.selector.matchExpressions[0].values"),
        ("FieldValueRequired", "spec.selector.matchExpressions[1].values"),
        ("FieldValueInvalid", "spec.selector.matchExpressions[2].operator"),
        ("FieldValueInvalid", "spec.selector.matchExpressions[3].values[0]"),
    ]
    assert str(errs[2]) == ("spec.selector.matchExpressions[0].values: Forbidden: may not be specified when "
                            "`operator` is 'Exists' or 'DoesNotExist'")
    assert str(errs[4]) == 'spec.selector.matchExpressions[2].operator: Invalid value: "Equals": not a valid ' \
                           "selector operator"
    assert sel.validate_label_selector(None, "spec.selector") == []
    assert sel.validate_label_selector({"matchLabels": {"app": "web"}}, "spec.selector") == []


# --- field selectors ------------------------------------------------------------

@pytest.mark.parametrize(("text", "normalized", "reqs"), [
    ("", "", []),
    ("a=b", "a=b", [("a", "=", "b")]),
    ("a==b", "a=b", [("a", "=", "b")]),
    ("a!=b", "a!=b", [("a", "!=", "b")]),
    ("c=d,a!=b,e==f", "a!=b,c=d,e=f", [("a", "!=", "b"), ("c", "=", "d"), ("e", "=", "f")]),
    ("spec.nodeName=", "spec.nodeName=", [("spec.nodeName", "=", "")]),
    ("a=b\\,c", "a=b\\,c", [("a", "=", "b,c")]),
    ("a=x\\=y\\\\z", "a=x\\=y\\\\z", [("a", "=", "x=y\\z")]),
    ("a=b,,", "a=b", [("a", "=", "b")]),
])
def test_parse_field_selector(text: str, normalized: str, reqs: list[tuple[str, str, str]]) -> None:
    fs = sel.parse_field_selector(text)
    assert str(fs) == normalized
    assert [(r.field, r.operator, r.value) for r in fs.requirements] == reqs


@pytest.mark.parametrize(("text", "message"), [
    ("a", "invalid selector: 'a'; can't understand 'a'"),
    ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    ("a=\\x", "invalid field selector: invalid escape sequence: \\x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(sel.SelectorError) as e:
        sel.parse_field_selector(text)
    assert (e.value.code, e.value.message) == (400, message)


@pytest.mark.parametrize(("k", "selector", "message"), [
    (("", "v1", "Pod"), "spec.foo=x", "field label not supported: spec.foo"),
    (("", "v1", "Node"), "metadata.namespace=x", "field label not supported: metadata.namespace"),
    (("", "v1", "Namespace"), "metadata.namespace=x", "field label not supported: metadata.namespace"),
    (("", "v1", "Secret"), "data.x=1", "field label not supported: data.x"),
    (("", "v1", "Event"), "regarding.name=x", "field label not supported: regarding.name"),
    (("events.k8s.io", "v1", "Event"), "involvedObject.name=x", "field label not supported: involvedObject.name"),
    (("batch", "v1", "Job"), "status.failed=1", 'field label "status.failed" not supported for batchv1.Job'),
    (("apps", "v1", "ReplicaSet"), "status.replicas=1",
     '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    (("", "v1", "ConfigMap"), "data.k=v",
     '"data.k" is not a known field selector: only "metadata.name", "metadata.namespace"'),
])
def test_unsupported_field_labels(k: tuple[str, str, str], selector: str, message: str) -> None:
    with pytest.raises(sel.SelectorError) as e:
        sel.compile_selector(labels_of(kind(*k)), None, selector)
    assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", message)


def pod(**kw: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": kw.get("name", "web-1"), "namespace": kw.get("ns", "default"),
                     "labels": kw.get("labels", {"app": "web"})},
        "spec": {"nodeName": kw.get("node", ""), "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "serviceAccountName": "default", **({"hostNetwork": True} if kw.get("host") else {})},
        "status": {"phase": kw.get("phase", "Running"), "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]},
    }


def test_pod_field_attributes() -> None:
    assert sel.field_attributes(labels_of(POD), pod(node="node-1")) == {
        "metadata.name": "web-1", "metadata.namespace": "default", "spec.nodeName": "node-1",
        "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "default", "spec.hostNetwork": "false", "status.phase": "Running",
        "status.podIP": "10.0.0.1", "status.nominatedNodeName": ""}
    assert sel.field_attributes(labels_of(POD), pod(host=True))["spec.hostNetwork"] == "true"


@pytest.mark.parametrize(("label", "field", "obj", "expected"), [
    ("", "spec.nodeName=node-1", pod(node="node-1"), True),
    ("", "spec.nodeName=node-1", pod(node="node-2"), False),
    ("", "spec.nodeName=", pod(), True),  # unscheduled pods, as the scheduler asks
    ("", "spec.nodeName!=", pod(), False),
    ("", "spec.host=node-1", pod(node="node-1"), True),  # legacy alias
    ("", "status.phase!=Succeeded,status.phase!=Failed", pod(phase="Running"), True),
    ("", "status.phase!=Succeeded,status.phase!=Failed", pod(phase="Failed"), False),
    ("", "metadata.name=web-1,metadata.namespace=default", pod(), True),
    ("", "metadata.namespace=kube-system", pod(), False),
    ("", "spec.hostNetwork=true", pod(host=True), True),
    ("", "spec.hostNetwork=false", pod(host=True), False),
    ("", "status.podIP=10.0.0.1", pod(), True),
    ("", "status.podIPs=10.0.0.1", pod(), False),  # accepted, but never in the field set (as in kube)
    ("", "status.podIPs=", pod(), True),
    ("app=web", "spec.nodeName=node-1", pod(node="node-1"), True),
    ("app=api", "spec.nodeName=node-1", pod(node="node-1"), False),
    ("app", "", pod(labels={}), False),
    ("!app", "", pod(labels={}), True),
])
def test_pod_selection(label: str, field: str, obj: dict[str, Any], expected: bool) -> None:
    s = sel.compile_selector(labels_of(POD), label, field)
    assert s.matches(obj) is expected
    assert s(obj) is expected


def test_event_fields_in_both_groups() -> None:
    core = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "u1",
                               "apiVersion": "v1", "resourceVersion": "5", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "type": "Normal", "source": {"component": "kubelet", "host": "node-1"},
            "reportingComponent": "kubelet", "reportingInstance": "node-1"}
    ev = kind("", "v1", "Event")
    attrs = sel.field_attributes(labels_of(ev), core)
    assert attrs == {"metadata.name": "e", "metadata.namespace": "default", "involvedObject.kind": "Pod",
                     "involvedObject.namespace": "default", "involvedObject.name": "web-1",
                     "involvedObject.uid": "u1", "involvedObject.apiVersion": "v1",
                     "involvedObject.resourceVersion": "5", "involvedObject.fieldPath": "spec.containers{app}",
                     "reason": "Pulled", "reportingComponent": "kubelet", "source": "kubelet", "type": "Normal"}
    assert sel.compile_selector(labels_of(ev), None, "involvedObject.name=web-1,involvedObject.kind=Pod").matches(core)
    assert not sel.compile_selector(labels_of(ev), None, "type=Warning").matches(core)
    # no source: falls back to the reporting controller
    assert sel.field_attributes(labels_of(ev), {**core, "source": {}})["source"] == "kubelet"

    from k8py.api import conversion
    new = conversion.convert(core, "events.k8s.io/v1")
    ev1 = kind("events.k8s.io", "v1", "Event")
    assert sel.field_attributes(labels_of(ev1), new) == attrs
    assert sel.compile_selector(labels_of(ev1), None, "regarding.name=web-1,reportingController=kubelet").matches(new)
    assert sel.compile_selector(labels_of(ev1), None, "source=kubelet,reason=Pulled").matches(new)
    assert not sel.compile_selector(labels_of(ev1), None, "regarding.kind=Node").matches(new)


@pytest.mark.parametrize(("k", "obj", "selector", "expected"), [
    (("", "v1", "Secret"), {"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls"},
     "type=kubernetes.io/tls", True),
    (("", "v1", "Secret"), {"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"},
     "type=kubernetes.io/tls", False),
    (("", "v1", "Node"), {"metadata": {"name": "n"}, "spec": {"unschedulable": True}}, "spec.unschedulable=true",
     True),
    (("", "v1", "Node"), {"metadata": {"name": "n"}, "spec": {}}, "spec.unschedulable=false", True),
    (("", "v1", "Node"), {"metadata": {"name": "n"}}, "metadata.name=n", True),
    (("", "v1", "Namespace"), {"metadata": {"name": "x"}, "status": {"phase": "Terminating"}},
     "status.phase=Active", False),
    (("", "v1", "Service"), {"metadata": {"name": "s", "namespace": "d"},
                             "spec": {"type": "NodePort", "clusterIP": "10.96.0.1"}},
     "spec.type=NodePort,spec.clusterIP=10.96.0.1", True),
    (("", "v1", "ReplicationController"), {"metadata": {"name": "r", "namespace": "d"},
                                           "status": {"replicas": 3}}, "status.replicas=3", True),
    (("", "v1", "ReplicationController"), {"metadata": {"name": "r", "namespace": "d"}}, "status.replicas=0",
     True),
    (("batch", "v1", "Job"), {"metadata": {"name": "j", "namespace": "d"}, "status": {"succeeded": 1}},
     "status.successful=1", True),
    (("", "v1", "ConfigMap"), {"metadata": {"name": "c", "namespace": "d"}}, "metadata.name=c", True),
    # cluster-scoped kinds accept metadata.namespace but have none
    (("storage.k8s.io", "v1", "StorageClass"), {"metadata": {"name": "sc"}}, "metadata.namespace=", True),
    (("storage.k8s.io", "v1", "StorageClass"), {"metadata": {"name": "sc"}}, "metadata.namespace=x", False),
])
def test_kind_field_selection(k: tuple[str, str, str], obj: dict[str, Any], selector: str, expected: bool) -> None:
    assert sel.compile_selector(labels_of(kind(*k)), None, selector).matches(obj) is expected


def test_every_kind_has_name_field() -> None:
    for k in BUILTIN_KINDS:
        attrs = sel.field_attributes(labels_of(k), {"metadata": {"name": "x", "namespace": "ns"}})
        assert attrs["metadata.name"] == "x", k
        s = sel.compile_selector(labels_of(k), None, "metadata.name=x")
        assert s.matches({"metadata": {"name": "x", "namespace": "ns"}}), k


def test_compat_names_and_empty_selector() -> None:
    s = sel.compile_selectors(labels_of(POD), "", "")
    assert s.empty
    assert s.matches({})
    assert sel.label_selector_to_string({"matchLabels": {"a": "b"}}) == "a=b"


def test_selection_is_fast() -> None:
    pods = [pod(name=f"p{i}", node=f"node-{i % 50}", labels={"app": f"a{i % 10}", "tier": "fe"})
            for i in range(2000)]
    s = sel.compile_selector(labels_of(POD), "app=a3,tier=fe", "spec.nodeName=node-3")
    s2 = sel.compile_selector(labels_of(POD), "app in (a1,a3),!canary", "status.phase!=Failed")
    start = time.perf_counter()
    for _ in range(10):
        hits = sum(1 for p in pods if s.matches(p))
        hits2 = sum(1 for p in pods if s2.matches(p))
    elapsed = time.perf_counter() - start
    assert hits == 40
    assert hits2 == 400
    # 40k matches; a generous bound so the test is not flaky on slow machines
    assert elapsed < 2.0
