"""Validation and defaults of ValidatingWebhookConfiguration / MutatingWebhookConfiguration
(kube's ``pkg/apis/admissionregistration/validation`` rules and v1 defaults)."""

import copy

import pytest

from k8py.api import defaults
from k8py.api.registry import Registry
from k8py.api.validation import kinds

REG = Registry()
VWC = REG.by_resource("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
MWC = REG.by_resource("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")

HOOK = {
    "name": "deny.example.com",
    "clientConfig": {"service": {"namespace": "ns", "name": "svc", "path": "/validate"}},
    "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
    "sideEffects": "None",
    "admissionReviewVersions": ["v1"],
}


def conf(*hooks, **changes):
    hs = []
    for h in hooks or (HOOK,):
        h = copy.deepcopy(h)
        for k, v in changes.items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        hs.append(h)
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "c"}, "webhooks": hs}


def errs(obj, kind=VWC):
    defaults.set_defaults(kind, obj)
    return [str(e) for e in kinds.validate(kind, obj)]


def test_a_valid_configuration_passes_and_gets_kubes_defaults():
    obj = conf()
    assert errs(obj) == []
    h = obj["webhooks"][0]
    assert (h["failurePolicy"], h["matchPolicy"], h["timeoutSeconds"]) == ("Fail", "Equivalent", 10)
    assert h["namespaceSelector"] == {} and h["objectSelector"] == {}
    assert h["rules"][0]["scope"] == "*"
    assert h["clientConfig"]["service"]["port"] == 443
    assert "reinvocationPolicy" not in h
    m = conf()
    m["kind"] = "MutatingWebhookConfiguration"
    assert errs(m, MWC) == []
    assert m["webhooks"][0]["reinvocationPolicy"] == "Never"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"name": "short.com"},
     [('webhooks[0].name: Invalid value: "short.com": should be a domain with at least three segments separated '
      "by dots")]),
    ({"name": None}, ["webhooks[0].name: Required value"]),
    ({"name": "Bad_Name.example.com"},
     [('webhooks[0].name: Invalid value: "Bad_Name.example.com": a lowercase RFC 1123 subdomain must consist of '
      "lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
      "(e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
      "[a-z0-9])?)*')")]),
    ({"sideEffects": None}, ["webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"]),
    ({"sideEffects": "Some"},
     ['webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"']),
    ({"admissionReviewVersions": None},
     ["webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1"]),
    ({"admissionReviewVersions": ["v2"]},
     [('webhooks[0].admissionReviewVersions: Invalid value: []string{"v2"}: must include at least one of v1, '
      "v1beta1")]),
    ({"admissionReviewVersions": ["v1", "v1"]},
     ['webhooks[0].admissionReviewVersions[1]: Invalid value: "v1": duplicate version']),
    ({"timeoutSeconds": 31},
     ["webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"]),
    ({"failurePolicy": "Maybe"},
     ['webhooks[0].failurePolicy: Unsupported value: "Maybe": supported values: "Fail", "Ignore"']),
    ({"matchPolicy": "Close"},
     ['webhooks[0].matchPolicy: Unsupported value: "Close": supported values: "Equivalent", "Exact"']),
    ({"clientConfig": {}}, ["webhooks[0].clientConfig: Required value: exactly one of url or service is required"]),
    ({"clientConfig": {"url": "https://a.example.com/x", "service": {"namespace": "n", "name": "s"}}},
     ["webhooks[0].clientConfig: Required value: exactly one of url or service is required"]),
    ({"clientConfig": {"url": "http://u:p@a.example.com/x?q=1#f"}},
     [('webhooks[0].clientConfig.url: Invalid value: "http": \'https\' is the only allowed URL scheme; desired '
      "format: https://host[/path]"),
      'webhooks[0].clientConfig.url: Invalid value: "u:p": user information is not permitted in the URL',
      'webhooks[0].clientConfig.url: Invalid value: "f": fragments are not permitted in the URL',
      'webhooks[0].clientConfig.url: Invalid value: "q=1": query parameters are not permitted in the URL']),
    ({"clientConfig": {"service": {"path": "foo//Bar", "port": 70000}}},
     ["webhooks[0].clientConfig.service.name: Required value: service name is required",
      "webhooks[0].clientConfig.service.namespace: Required value: service namespace is required",
      ("webhooks[0].clientConfig.service.port: Invalid value: 70000: port is not valid: must be between 1 and "
      "65535, inclusive"),
      "webhooks[0].clientConfig.service.path: Invalid value: \"foo//Bar\": must start with a '/'",
      'webhooks[0].clientConfig.service.path: Invalid value: "foo//Bar": segment[1] may not be empty',
      ('webhooks[0].clientConfig.service.path: Invalid value: "foo//Bar": segment[2]: a lowercase RFC 1123 '
      "subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an "
      "alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?"
      "(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]),
    ({"matchConditions": [{"name": "x", "expression": "params.x"}, {"name": "Bad Name!", "expression": "true"},
                          {"name": "x", "expression": " "}]},
     [('webhooks[0].matchConditions[0].expression: Invalid value: "params.x": compilation failed: ERROR: '
       "<input>:1:7: undeclared reference to 'params.x' (in container '')\n | params.x\n | ......^"),
      ('webhooks[0].matchConditions[1].name: Invalid value: "Bad Name!": name part must consist of alphanumeric '
       "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
       "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
      "webhooks[0].matchConditions[2].expression: Required value",
      'webhooks[0].matchConditions[2].name: Duplicate value: "x"']),
    ({"matchConditions": [{"name": f"c{i}", "expression": "true"} for i in range(65)]},
     ["webhooks[0].matchConditions: Too many: 65: must have at most 64 items"]),
    ({"rules": [{"operations": ["CREATE", "*"], "apiGroups": ["*", "apps"], "apiVersions": [],
                 "resources": ["*", "pods"], "scope": "Everywhere"}]},
     [('webhooks[0].rules[0].operations: Invalid value: []admissionregistration.OperationType{"CREATE", "*"}: if \'*\' is present, must not '
      "specify other operations"),
      ('webhooks[0].rules[0].apiGroups: Invalid value: []string{"*", "apps"}: if \'*\' is present, must not specify '
      "other API groups"),
      "webhooks[0].rules[0].apiVersions: Required value",
      ('webhooks[0].rules[0].resources: Invalid value: []string{"*", "pods"}: if \'*\' is present, must not '
      "specify other resources without subresources"),
      ('webhooks[0].rules[0].scope: Unsupported value: "Everywhere": supported values: "*", "Cluster", '
      '"Namespaced"')]),
    ({"rules": [{"operations": ["PATCH"], "apiGroups": [""], "apiVersions": ["v1"],
                 "resources": ["pods/*", "pods/status", "*/*"]}]},
     [('webhooks[0].rules[0].operations[0]: Unsupported value: "PATCH": supported values: "*", "CONNECT", '
      '"CREATE", "DELETE", "UPDATE"'),
      ('webhooks[0].rules[0].resources[1]: Invalid value: "pods/status": if \'pods/*\' is present, must not '
      "specify pods/status"),
      ('webhooks[0].rules[0].resources: Invalid value: []string{"pods/*", "pods/status", "*/*"}: if \'*/*\' is '
      "present, must not specify other resources")]),
    ({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}},
     [('webhooks[0].namespaceSelector.matchExpressions[0].operator: Invalid value: "Is": not a valid selector '
      "operator")]),
])
def test_kubes_rules_refuse_a_bad_webhook(changes, expected):
    assert errs(conf(**changes)) == expected


def test_names_are_unique_per_configuration():
    assert errs(conf(HOOK, HOOK)) == ['webhooks[1].name: Duplicate value: "deny.example.com"']


def test_reinvocation_policy_is_checked_on_mutating_webhooks_only():
    m = conf(reinvocationPolicy="Often")
    m["kind"] = "MutatingWebhookConfiguration"
    assert errs(m, MWC) == [
        'webhooks[0].reinvocationPolicy: Unsupported value: "Often": supported values: "IfNeeded", "Never"']


def test_an_update_keeps_what_the_old_object_already_had():
    """kube relaxed rules (side effects, unique names) stay relaxed for objects stored before."""
    old = conf(HOOK, HOOK, sideEffects="Some")
    old["metadata"]["resourceVersion"] = "1"
    new = copy.deepcopy(old)
    new["webhooks"][0]["timeoutSeconds"] = 5
    defaults.set_defaults(VWC, new)
    assert [str(e) for e in kinds.validate_update(VWC, new, old)] == []
    fresh = conf(sideEffects="None")
    fresh["metadata"]["resourceVersion"] = "1"
    bad = copy.deepcopy(fresh)
    bad["webhooks"][0]["sideEffects"] = "Some"
    assert [str(e) for e in kinds.validate_update(VWC, bad, fresh)] == [
        'webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"']


def test_match_conditions_that_compile_are_accepted_and_kept_on_update():
    ok = conf(matchConditions=[{"name": "not-me", "expression": "request.userInfo.username != 'me'"},
                               {"name": "new", "expression": "object != null && oldObject == null"}])
    assert errs(ok) == []
    # an update that leaves the conditions as they were does not compile them again (kube's
    # ignoreMatchConditions); one that changes them does
    old = conf(matchConditions=[{"name": "x", "expression": "params.x"}])
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"a": "b"}
    defaults.set_defaults(VWC, old)
    defaults.set_defaults(VWC, new)
    old["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"] = "1"
    assert [str(e) for e in kinds.validate_update(VWC, new, old)] == []
    new["webhooks"][0]["matchConditions"][0]["expression"] = "params.y"
    assert [str(e).split(":")[0] for e in kinds.validate_update(VWC, new, old)] == [
        "webhooks[0].matchConditions[0].expression"]
