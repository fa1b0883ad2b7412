"""The admission webhooks' pure decisions (k8py.api.admissionwebhook): kube's rule matcher
(predicates/rules), the selectors, the AdmissionReview, the answer's checks and kube's errors."""

import base64
import json

import pytest

from k8py.api import admissionwebhook as aw
from k8py.apiserver.authn import UserInfo


def req(op="CREATE", group="", version="v1", resource="pods", sub="", ns="default"):
    return aw.Request(op, group, version, resource, sub, ns)


def rule(ops=("*",), groups=("*",), versions=("*",), resources=("*",), scope=None):
    r = {"operations": list(ops), "apiGroups": list(groups), "apiVersions": list(versions),
         "resources": list(resources)}
    if scope is not None:
        r["scope"] = scope
    return r


@pytest.mark.parametrize(("r", "request_", "want"), [
    (rule(), req(), True),
    (rule(ops=("UPDATE",)), req(), False),
    (rule(ops=("CREATE", "DELETE")), req(op="DELETE"), True),
    (rule(groups=("apps",)), req(), False),
    (rule(groups=("apps",)), req(group="apps", resource="deployments"), True),
    (rule(versions=("v1beta1",)), req(), False),
    # "*" is every resource without a subresource; "*/*" everything; "res/*", "*/sub"
    (rule(resources=("*",)), req(sub="status"), False),
    (rule(resources=("*/*",)), req(sub="status"), True),
    (rule(resources=("pods",)), req(sub="status"), False),
    (rule(resources=("pods/status",)), req(sub="status"), True),
    (rule(resources=("pods/*",)), req(sub="exec"), True),
    (rule(resources=("pods/*",)), req(), True),  # kube's matcher: a "*" subresource matches none too
    (rule(resources=("*/status",)), req(resource="services", sub="status"), True),
    (rule(resources=("*/status",)), req(resource="services", sub="proxy"), False),
    (rule(resources=("deployments", "pods")), req(), True),
    # scope: a Namespace is cluster-scoped whatever namespace its request names
    (rule(scope="Namespaced"), req(), True),
    (rule(scope="Namespaced"), req(resource="nodes", ns=""), False),
    (rule(scope="Namespaced"), req(resource="namespaces", ns="x"), False),
    (rule(scope="Cluster"), req(resource="namespaces", ns="x"), True),
    (rule(scope="Cluster"), req(resource="nodes", ns=""), True),
    (rule(scope="Cluster"), req(), False),
    (rule(scope="*"), req(resource="nodes", ns=""), True),
])
def test_rules_as_kubes_matcher(r, request_, want):
    assert aw.rule_matches(r, request_) is want


def hook(mutating=False, **w):
    return aw.Hook("c", {"name": "h.example.com", "rules": [rule()], "admissionReviewVersions": ["v1"], **w},
                   mutating)


def test_selectors():
    h = hook(objectSelector={"matchLabels": {"a": "1"}}, namespaceSelector={"matchExpressions": [
        {"key": "env", "operator": "NotIn", "values": ["prod"]}]})
    new, old = {"metadata": {"labels": {"a": "1"}}}, {"metadata": {"labels": {"a": "2"}}}
    # the new or the old object's labels
    assert aw.object_selector_matches(h, new, None) and aw.object_selector_matches(h, old, new)
    assert not aw.object_selector_matches(h, old, None) and not aw.object_selector_matches(h, None, None)
    assert aw.object_selector_matches(hook(objectSelector={}), None, None)
    # cluster-scoped objects other than Namespaces are never exempted by a namespaceSelector
    assert not aw.needs_namespace_labels(h, req(resource="nodes", ns=""))
    assert aw.needs_namespace_labels(h, req(resource="namespaces", ns="x"))
    assert aw.needs_namespace_labels(h, req())
    assert not aw.needs_namespace_labels(hook(namespaceSelector={}), req())
    assert aw.namespace_selector_matches(h, {"env": "dev"}) and not aw.namespace_selector_matches(h, {"env": "prod"})


def test_the_order_and_the_exemption():
    confs = {"b": {"webhooks": [{"name": "b1"}, {"name": "b2"}]}, "a": {"webhooks": [{"name": "a1"}]}}
    assert [h.name for h in aw.hooks_of(confs, True)] == ["a1", "b1", "b2"]
    assert aw.exempt("admissionregistration.k8s.io", "validatingwebhookconfigurations")
    assert aw.exempt("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
    assert not aw.exempt("", "configmaps")


def test_the_review():
    user = UserInfo("alice", "u-1", ("dev", "system:authenticated"), {"scopes": ("a",)})
    r = aw.review_request(hook(), "uid-1", req(op="UPDATE", sub="status"), ("", "v1", "Pod"), "p", user,
                          {"o": 1}, {"o": 0}, True)
    assert r["apiVersion"] == "admission.k8s.io/v1" and r["kind"] == "AdmissionReview"
    q = r["request"]
    assert q["uid"] == "uid-1" and q["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert q["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert q["subResource"] == q["requestSubResource"] == "status"
    assert (q["name"], q["namespace"], q["operation"]) == ("p", "default", "UPDATE")
    assert q["userInfo"] == {"username": "alice", "uid": "u-1", "groups": ["dev", "system:authenticated"],
                             "extra": {"scopes": ["a"]}}
    assert (q["object"], q["oldObject"], q["dryRun"]) == ({"o": 1}, {"o": 0}, True)
    assert q["options"] == {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]}
    # matched through an equivalent version: requestKind/requestResource are what the client sent
    r = aw.review_request(hook(), "u", req(group="autoscaling", resource="horizontalpodautoscalers"),
                          ("autoscaling", "v1", "HorizontalPodAutoscaler"), "h", None, None, None, False,
                          request_kind=("autoscaling", "v2", "HorizontalPodAutoscaler"),
                          request=req(group="autoscaling", version="v2", resource="horizontalpodautoscalers"))
    q = r["request"]
    assert q["kind"]["version"] == q["resource"]["version"] == "v1"
    assert q["requestKind"]["version"] == q["requestResource"]["version"] == "v2"
    eq = hook(rules=[rule(groups=("autoscaling",), versions=("v1",), resources=("horizontalpodautoscalers",))])
    v2 = req(group="autoscaling", version="v2", resource="horizontalpodautoscalers")
    assert not aw.rules_match(eq, v2) and aw.may_match_equivalent(eq, v2)
    assert not aw.may_match_equivalent(aw.Hook("c", {**eq.webhook, "matchPolicy": "Exact"}, False), v2)
    assert not aw.may_match_equivalent(eq, req(resource="pods"))
    old_style = aw.Hook("c", {"name": "h", "admissionReviewVersions": ["v2", "v1beta1"]}, False)
    assert aw.review_request(old_style, "u", req(), ("", "v1", "Pod"), "", None, None, None, False)[
        "apiVersion"] == "admission.k8s.io/v1beta1"


def answer(**resp):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "u", **resp}}


def b64(x):
    return base64.b64encode(json.dumps(x).encode()).decode()


@pytest.mark.parametrize(("mutating", "doc", "message"), [
    (False, {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "webhook response was absent"),
    (False, answer(allowed=True) | {"response": {"uid": "v", "allowed": True}}, 'expected response.uid="u", got "v"'),
    (False, answer(allowed=True) | {"apiVersion": "admission.k8s.io/v1beta1"},
     ("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, "
     "Kind=AdmissionReview")),
    (False, answer(allowed=True, patch=b64([])), "validating webhook may not return response.patch"),
    (False, answer(allowed=True, patchType="JSONPatch"), "validating webhook may not return response.patchType"),
    (True, answer(allowed=True, patch=b64([])), "webhook returned response.patch but not response.patchType"),
    (True, answer(allowed=True, patchType="JSONPatch"), "webhook returned response.patchType but not response.patch"),
    (True, answer(allowed=True, patchType="Merge", patch=b64({})), 'unsupported patch type "Merge"'),
])
def test_a_malformed_answer_is_a_failed_call(mutating, doc, message):
    with pytest.raises(aw.CallError) as e:
        aw.verify_response("u", hook(mutating), doc)
    assert str(e.value) == message


def test_a_good_answer():
    ops = [{"op": "add", "path": "/x", "value": 1}]
    r = aw.verify_response("u", hook(True), answer(allowed=True, patchType="JSONPatch", patch=b64(ops),
                                                   warnings=["careful"]))
    assert (r.allowed, r.patch, r.warnings) == (True, ops, ("careful",))
    r = aw.verify_response("u", hook(), answer(allowed=False, status={"code": 409, "message": "no"}))
    assert not r.allowed and r.status == {"code": 409, "message": "no"}


def test_kubes_errors():
    e = aw.denied("h.example.com", {"code": 409, "reason": "Conflict", "message": "taken"})
    assert (e.code, e.reason, e.message) == (409, "Conflict", ('admission webhook "h.example.com" denied the request: '
                                                              "taken"))
    # never below 400; the reason when there is no message; "without explanation" else
    e = aw.denied("h", {"code": 200, "reason": "NotToday"})
    assert (e.code, e.message) == (400, 'admission webhook "h" denied the request: NotToday')
    assert aw.denied("h", {}).message == 'admission webhook "h" denied the request without explanation'
    e = aw.call_failed("h", "boom")
    assert (e.code, e.reason, e.message) == (500, "InternalError",
                                             'Internal error occurred: failed calling webhook "h": boom')
    e = aw.dry_run_unsupported("h")
    assert (e.code, e.message) == (400, 'admission webhook "h" does not support dry run')
