"""ValidatingAdmissionPolicy / ValidatingAdmissionPolicyBinding: kube's validation and defaults
(``pkg/apis/admissionregistration/validation``), and the pure evaluation of policies and match
conditions (:mod:`k8py.api.admissionpolicy`)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from k8py.api import admissionpolicy as ap
from k8py.api import defaults
from k8py.api.registry import Registry
from k8py.api.validation import kinds

REG = Registry()
VAP = REG.by_resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies")
VAPB = REG.by_resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings")
RULES = [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]}]


def vap(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"matchConstraints": {"resourceRules": copy.deepcopy(RULES)},
                            "validations": [{"expression": "object.spec.replicas <= 5"}]}
    for k, v in spec.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "p.example.com"}, "spec": base}


def vapb(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "b"}, "spec": {"policyName": "p.example.com", "validationActions": ["Deny"], **spec}}


def errs(obj: dict[str, Any], kind: Any = VAP) -> list[str]:
    defaults.set_defaults(kind, obj)
    return [str(e).split("\n")[0] for e in kinds.validate(kind, obj)]


def test_defaults_are_kubes() -> None:
    p = vap()
    assert errs(p) == []
    assert p["spec"]["failurePolicy"] == "Fail"
    mc = p["spec"]["matchConstraints"]
    assert (mc["matchPolicy"], mc["namespaceSelector"], mc["objectSelector"], mc["resourceRules"][0]["scope"]) == (
        "Equivalent", {}, {}, "*")
    b = vapb(matchResources={"excludeResourceRules": copy.deepcopy(RULES)})
    assert errs(b, VAPB) == []
    assert b["spec"]["matchResources"]["matchPolicy"] == "Equivalent"


@pytest.mark.parametrize(("spec", "expected"), [
    ({"matchConstraints": None, "validations": None},
     ["spec.matchConstraints: Required value",
      "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
      "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item"]),
    ({"matchConstraints": {"resourceRules": []}, "failurePolicy": "Sometimes"},
     ['spec.failurePolicy: Unsupported value: "Sometimes": supported values: "Fail", "Ignore"',
      "spec.matchConstraints.resourceRules: Required value"]),
    ({"validations": [{"expression": "params.max > 1"}]},
     [("spec.validations[0].expression: Invalid value: \"params.max > 1\": compilation failed: ERROR: <input>:1:7: "
      "undeclared reference to 'params.max' (in container '')")]),
    ({"validations": [{"expression": "object.spec.replicas", "message": " ", "reason": "Teapot",
                       "messageExpression": "1"}]},
     ["spec.validations[0].messageExpression: Invalid value: \"1\": must evaluate to string",
      'spec.validations[0].message: Invalid value: " ": message must be non-empty if specified',
      ('spec.validations[0].reason: Unsupported value: "Teapot": supported values: "Forbidden", "Invalid", '
      '"RequestEntityTooLarge", "Unauthorized"')]),
    ({"validations": [{"expression": "true", "message": "two\nlines"}]},
     ['spec.validations[0].message: Invalid value: "two\\nlines": message must not contain line breaks']),
    ({"variables": [{"name": "first", "expression": "variables.second"}, {"name": "second", "expression": "1"},
                    {"name": "in", "expression": "2"}]},
     [("spec.variables[0].expression: Invalid value: \"variables.second\": compilation failed: ERROR: <input>:1:10: "
      "undefined field 'second'"),
      'spec.variables[2].name: Invalid value: "in": name is not a valid CEL identifier']),
    # request and namespaceObject are typed in kube: a field they lack fails to compile
    ({"validations": [{"expression": "request.userInfo.username != 'request.x' && request.usr == 'a'"},
                      {"expression": "namespaceObject.metadata.name != '' && namespaceObject.labels == {}"}]},
     [("spec.validations[0].expression: Invalid value: \"request.userInfo.username != 'request.x' && request.usr "
       "== 'a'\": compilation failed: ERROR: <input>:1:52: undefined field 'usr'"),
      ("spec.validations[1].expression: Invalid value: \"namespaceObject.metadata.name != '' && "
       "namespaceObject.labels == {}\": compilation failed: ERROR: <input>:1:55: undefined field 'labels'")]),
    ({"paramKind": {"apiVersion": "a/b/c", "kind": "Not_Valid"}},
     ['spec.paramKind.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c',
      ('spec.paramKind.kind: Invalid value: "Not_Valid": may have mixed case, but should otherwise match: a DNS-1035 '
      "label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end "
      "with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
      "'[a-z]([-a-z0-9]*[a-z0-9])?')")]),
    ({"auditAnnotations": [{"key": "k", "valueExpression": "1"}, {"key": "k", "valueExpression": "'v'"}]},
     ['spec.auditAnnotations[0].valueExpression: Invalid value: "1": must evaluate to one of [string null_type]',
      'spec.auditAnnotations[1].key: Duplicate value: "k"']),
    ({"variables": [{"name": "v", "expression": "1"}],
      "matchConditions": [{"name": "c", "expression": "variables.v == 1"}]},
     [("spec.matchConditions[0].expression: Invalid value: \"variables.v == 1\": compilation failed: ERROR: "
      "<input>:1:10: undeclared reference to 'variables.v' (in container '')")]),
    ({"matchConditions": [{"name": "c", "expression": "params == null"}], "paramKind": {"apiVersion": "v1",
                                                                                         "kind": "ConfigMap"}},
     []),
])
def test_policy_validation(spec: dict[str, Any], expected: list[str]) -> None:
    assert errs(vap(**spec)) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ({"validationActions": ["Deny", "Warn", "Deny", "Block"]},
     ['spec.validationActions[2]: Duplicate value: "Deny"',
      'spec.validationActions[3]: Unsupported value: "Block": supported values: "Audit", "Deny", "Warn"',
      ('spec.validationActions: Invalid value: []admissionregistration.ValidationAction{"Deny", "Warn", "Deny", '
      '"Block"}: must not contain both Deny and Warn (repeating the same validation failure information in the API '
      "response and headers serves no purpose)")]),
    ({"validationActions": [], "policyName": ""},
     ["spec.policyName: Required value",
      "spec.validationActions: Required value: at least one validation action is required"]),
    ({"paramRef": {"name": "x", "selector": {}}},
     ["spec.paramRef.name: Forbidden: name and selector are mutually exclusive",
      "spec.paramRef.selector: Forbidden: name and selector are mutually exclusive",
      "spec.paramRef.parameterNotFoundAction: Required value"]),
    ({"paramRef": {"parameterNotFoundAction": "Maybe"}},
     ["spec.paramRef: Required value: one of name or selector must be specified",
      'spec.paramRef.parameterNotFoundAction: Unsupported value: "Maybe": supported values: "Deny", "Allow"']),
])
def test_binding_validation(spec: dict[str, Any], expected: list[str]) -> None:
    assert errs(vapb(**spec), VAPB) == expected


# -- evaluation --------------------------------------------------------------------------------------


def data(obj: Any, old: Any = None, **extra: Any) -> dict[str, Any]:
    return {"object": obj, "oldObject": old, "request": {"operation": "CREATE"}, "namespaceObject": None, **extra}


def compiled(**spec: Any) -> ap.CompiledPolicy:
    p = vap(**spec)
    defaults.set_defaults(VAP, p)
    cp = ap.compile_policy(p)
    assert cp.error == ""
    return cp


def test_messages_fall_back_as_kubes() -> None:
    cp = compiled(validations=[
        {"expression": "object.n < 1"},
        {"expression": "object.n < 2", "message": " custom "},
        {"expression": "object.n < 3", "message": "fallback", "messageExpression": "'n is ' + string(object.n)"},
        {"expression": "object.n < 4", "message": "fallback", "messageExpression": "'two\\nlines'"},
        {"expression": "object.n < 5", "messageExpression": "object.missing"},
        {"expression": "object.n < 100", "reason": "Forbidden"},
    ])
    out = ap.evaluate(cp, data({"n": 7}))
    assert [(d.index, d.message, d.reason, d.error) for d in out.decisions] == [
        (0, "failed expression: object.n < 1", "Invalid", False),
        (1, "custom", "Invalid", False),
        (2, "n is 7", "Invalid", False),
        (3, "fallback", "Invalid", False),
        (4, "failed expression: object.n < 5", "Invalid", False),
    ]


def test_variables_are_lazy_and_evaluated_once() -> None:
    cp = compiled(variables=[{"name": "broken", "expression": "object.missing"},
                             {"name": "n", "expression": "object.n * 2"},
                             {"name": "big", "expression": "variables.n > 10"}],
                  validations=[{"expression": "!variables.big"}, {"expression": "variables.broken == 1"}])
    out = ap.evaluate(cp, data({"n": 6}))
    # the first validation fails (12 > 10); "broken" only fails the validation that names it
    assert [(d.index, d.error) for d in out.decisions] == [(0, False), (1, True)]
    assert out.decisions[1].message == "expression 'object.missing' resulted in error: no such key: missing"
    assert ap.evaluate(cp, data({"n": 1})).decisions[0].index == 1


def test_match_conditions_false_wins_over_errors() -> None:
    conds = ap.compile_conditions([{"name": "err", "expression": "object.missing == 1"},
                                   {"name": "no", "expression": "object.n == 0"}])
    assert ap.match_conditions(conds, data({"n": 1})) == ap.MatchResult(False, failed="no")
    got = ap.match_conditions(conds, data({"n": 0}))
    assert (got.matches, got.error) == (False, "expression 'object.missing == 1' resulted in error: no such key: missing")
    assert ap.match_conditions(conds[1:], data({"n": 0})) == ap.MatchResult(True)


def test_policy_match_conditions_params_and_audit_annotations() -> None:
    cp = compiled(paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
                  matchConditions=[{"name": "has-params", "expression": "params != null"}],
                  validations=[{"expression": "object.n <= int(params.data.max)"}],
                  auditAnnotations=[{"key": "n", "valueExpression": "'n=' + string(object.n)"},
                                    {"key": "none", "valueExpression": "null"}])
    assert ap.evaluate(cp, data({"n": 9}, params=None)).matched is False
    out = ap.evaluate(cp, data({"n": 9}, params={"data": {"max": "3"}}))
    assert [d.message for d in out.decisions] == ["failed expression: object.n <= int(params.data.max)"]
    assert out.annotations == {"n": "n=9"}
    value = json.loads(ap.validation_failure_annotation("p", "b", 0, "m", ["Audit"]))
    assert value == [{"message": "m", "policy": "p", "binding": "b", "expressionIndex": 0,
                      "validationActions": ["Audit"]}]


def test_request_variable_is_kubes_admission_request() -> None:
    from k8py.api import admissionwebhook as aw

    req = aw.Request("CREATE", "apps", "v1", "deployments", "", "default")
    r = ap.admission_request(req, ("apps", "v1", "Deployment"), "d", None, True, "uid-1")
    assert r["operation"] == "CREATE" and r["namespace"] == "default" and r["name"] == "d"
    assert r["kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert r["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
    assert r["dryRun"] is True and "object" not in r and "oldObject" not in r


def test_authz_library_checks_ask_the_authorizer_as_the_principal() -> None:
    from k8py.api import cel

    asked: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def authorize(user: dict[str, Any], attrs: dict[str, Any]) -> tuple[bool, str]:
        asked.append((user, attrs))
        return attrs["verb"] == "get", "RBAC: allowed by test" if attrs["verb"] == "get" else ""

    conds = ap.compile_conditions([
        {"name": "rr", "expression": "authorizer.requestResource.subresource('scale').check('get').allowed()"},
        {"name": "sa", "expression": "!authorizer.serviceAccount('ns', 'sa').group('apps').resource('deployments')"
                                     ".namespace('ns').name('d').check('delete').allowed()"},
        {"name": "path", "expression": "authorizer.path('/healthz').check('get').reason() == 'RBAC: allowed by test'"},
        {"name": "sel", "expression": "authorizer.group('').resource('pods').fieldSelector('spec.nodeName=n1')"
                                      ".labelSelector('app=a').check('get').allowed()"},
    ])
    assert all(c.error == "" for c in conds)
    authz = cel.authorizer_value({"username": "jane", "groups": ["dev"]},
                                 {"group": "apps", "resource": "deployments", "namespace": "ns", "name": "d"})
    with cel.authorizing(authorize):
        assert ap.match_conditions(conds, {**data(None), "authorizer": authz}) == ap.MatchResult(True)
    assert asked == [
        ({"username": "jane", "groups": ["dev"]},
         {"verb": "get", "resourceRequest": True, "group": "apps", "resource": "deployments", "subresource": "scale",
          "namespace": "ns", "name": "d"}),
        ({"username": "system:serviceaccount:ns:sa",
          "groups": ["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"]},
         {"verb": "delete", "resourceRequest": True, "group": "apps", "resource": "deployments", "subresource": "",
          "namespace": "ns", "name": "d"}),
        ({"username": "jane", "groups": ["dev"]}, {"verb": "get", "path": "/healthz"}),
        ({"username": "jane", "groups": ["dev"]},
         {"verb": "get", "resourceRequest": True, "group": "", "resource": "pods", "subresource": "", "namespace": "",
          "name": "", "fieldSelector": "spec.nodeName=n1", "labelSelector": "app=a"}),
    ]
    # without an authorizer a decision is an error; a bad service account name fails the expression
    errored = ap.compile_conditions([{"name": "e", "expression": "authorizer.path('/x').check('get').errored()"}])
    assert ap.match_conditions(errored, {**data(None), "authorizer": authz}) == ap.MatchResult(True)
    bad = ap.compile_conditions([{"name": "b", "expression": "authorizer.serviceAccount('NS', 'x').path('/')"
                                                             ".check('get').allowed()"}])
    got = ap.match_conditions(bad, {**data(None), "authorizer": authz})
    assert got.error.endswith("resulted in error: Invalid service account namespace")


def test_message_expressions_have_no_authorizer() -> None:
    p = vap(validations=[{"expression": "authorizer.path('/').check('get').allowed()",
                          "messageExpression": "authorizer.path('/').check('get').reason()"}])
    assert errs(p) == [("spec.validations[0].messageExpression: Invalid value: \"authorizer.path('/').check('get')"
                       ".reason()\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'authorizer' "
                       "(in container '')")]
