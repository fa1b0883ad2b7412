"""ValidatingAdmissionPolicy and its bindings through the API server in-process: kube's
messages, codes and reasons for Deny, the Warn header, params (paramKind + paramRef),
variables, match conditions, failure policies, and the webhooks' matchConditions (the webhook's
HTTPS call is the one seam, as in test_admission_webhooks.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from k8py.api import admissionwebhook as aw
from k8py.apiserver.admission import Attributes
from k8py.apiserver.admission.webhook import ValidatingAdmissionWebhook

Obj = dict[str, Any]
AR = "/apis/admissionregistration.k8s.io/v1"
V = "admissionregistration.k8s.io/v1"
DEPLOY_RULES = [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["deployments"]}]


def policy(name: str, validations: list[Obj], **spec: Any) -> Obj:
    return {"apiVersion": V, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
            "spec": {"matchConstraints": {"resourceRules": DEPLOY_RULES}, "validations": validations, **spec}}


def binding(name: str, policy_name: str, actions: list[str], **spec: Any) -> Obj:
    return {"apiVersion": V, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
            "spec": {"policyName": policy_name, "validationActions": actions, **spec}}


def deployment(name: str, replicas: int, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def _post(api: TestClient, path: str, body: Obj) -> tuple[int, Obj, list[str]]:
    r = await api.post(path, json=body)
    return r.status, await r.json(), r.headers.getall("Warning", [])


async def _setup(api: TestClient, *objs: Obj) -> None:
    for o in objs:
        plural = "validatingadmissionpolicies" if o["kind"] == "ValidatingAdmissionPolicy" else \
            "validatingadmissionpolicybindings"
        status, body, _ = await _post(api, f"{AR}/{plural}", o)
        assert status == 201, body


async def _namespace(api: TestClient, name: str, labels: dict[str, str]) -> None:
    status, body, _ = await _post(api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                               "metadata": {"name": name, "labels": labels}})
    assert status == 201, body


def _deploys(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments"


async def test_deny_binding_refuses_with_kubes_status(api: TestClient) -> None:
    # kube's documentation example
    await _setup(api, policy("demo-policy.example.com", [{"expression": "object.spec.replicas <= 5"}]),
                 binding("demo-binding-test.example.com", "demo-policy.example.com", ["Deny"],
                         matchResources={"namespaceSelector": {"matchLabels": {"environment": "test"}}}))
    await _namespace(api, "test", {"environment": "test"})
    status, body, _ = await _post(api, _deploys("test"), deployment("nginx", 7))
    msg = ("ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' "
           "denied request: failed expression: object.spec.replicas <= 5")
    assert (status, body["reason"], body["code"]) == (422, "Invalid", 422)
    assert body["message"] == f'deployments.apps "nginx" is forbidden: {msg}'
    assert body["details"] == {"name": "nginx", "group": "apps", "kind": "deployments", "causes": [{"message": msg}]}
    # within the limit, or outside the binding's namespaces: admitted
    assert (await _post(api, _deploys("test"), deployment("small", 5)))[0] == 201
    assert (await _post(api, _deploys("default"), deployment("nginx", 7)))[0] == 201
    # an update is judged too (the policy's operations include UPDATE)
    status, body, _ = await _post(api, _deploys("test"), deployment("grow", 1))
    body["spec"]["replicas"] = 9
    r = await api.put(f"{_deploys('test')}/grow", json=body)
    assert r.status == 422 and "denied request: failed expression" in (await r.json())["message"]


async def test_warn_binding_adds_kubes_warning_header(api: TestClient) -> None:
    await _setup(api, policy("max-replicas", [{"expression": "object.spec.replicas <= 5",
                                               "message": "at most 5 replicas"}]),
                 binding("warn-all", "max-replicas", ["Warn", "Audit"]))
    status, _, warnings = await _post(api, _deploys("default"), deployment("d", 6))
    assert status == 201
    mine = [w for w in warnings if "ValidatingAdmissionPolicy" in w]
    assert mine == [("299 - \"Validation failed for ValidatingAdmissionPolicy 'max-replicas' with binding "
                    "'warn-all': at most 5 replicas\"")]


async def test_params_from_a_config_map(api: TestClient) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "limits", "namespace": "default"},
          "data": {"maxReplicas": "3"}}
    assert (await _post(api, "/api/v1/namespaces/default/configmaps", cm))[0] == 201
    await _setup(api, policy("limit", [{"expression": "object.spec.replicas <= int(params.data.maxReplicas)",
                                        "messageExpression": "'replicas ' + string(object.spec.replicas) + "
                                                             "' above ' + params.data.maxReplicas",
                                        "reason": "Forbidden"}],
                             paramKind={"apiVersion": "v1", "kind": "ConfigMap"}),
                 binding("limit-default", "limit", ["Deny"],
                         paramRef={"name": "limits", "parameterNotFoundAction": "Deny"}))
    status, body, _ = await _post(api, _deploys("default"), deployment("four", 4))
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"].endswith("with binding 'limit-default' denied request: replicas 4 above 3")
    assert (await _post(api, _deploys("default"), deployment("three", 3)))[0] == 201
    # no ConfigMap "limits" in kube-public: parameterNotFoundAction Deny refuses
    status, body, _ = await _post(api, _deploys("kube-public"), deployment("three", 3))
    assert status == 422
    assert body["message"] == (
        "deployments.apps \"three\" is forbidden: ValidatingAdmissionPolicy 'limit' with binding 'limit-default' "
        "denied request: failed to configure binding: no params found for policy binding with `Deny` "
        "parameterNotFoundAction")


async def test_missing_params_allowed_and_a_selector_evaluates_each_param(api: TestClient) -> None:
    for name, value in (("a", "2"), ("b", "4")):
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": name, "namespace": "default", "labels": {"limits": "yes"}},
              "data": {"max": value}}
        assert (await _post(api, "/api/v1/namespaces/default/configmaps", cm))[0] == 201
    await _setup(api, policy("each", [{"expression": "object.spec.replicas <= int(params.data.max)",
                                       "messageExpression": "'limit ' + params.data.max"}],
                             paramKind={"apiVersion": "v1", "kind": "ConfigMap"}),
                 binding("each", "each", ["Deny"], paramRef={
                     "selector": {"matchLabels": {"limits": "yes"}}, "parameterNotFoundAction": "Allow"}))
    status, body, _ = await _post(api, _deploys("default"), deployment("three", 3))
    assert status == 422 and body["message"].endswith("denied request: limit 2")
    assert (await _post(api, _deploys("default"), deployment("two", 2)))[0] == 201
    assert (await _post(api, _deploys("kube-public"), deployment("nine", 9)))[0] == 201  # no params: Allow


async def test_variables_match_conditions_and_failure_policies(api: TestClient) -> None:
    await _setup(
        api,
        policy("labelled", [{"expression": "variables.team != ''", "message": "a team label is required"}],
               variables=[{"name": "labels", "expression": "has(object.metadata.labels) ? object.metadata.labels : {}"},
                          {"name": "team", "expression": "'team' in variables.labels ? variables.labels.team : ''"}],
               matchConditions=[{"name": "not-system", "expression": "!object.metadata.name.startsWith('system-')"}]),
        binding("labelled", "labelled", ["Deny"]),
        policy("broken-fail", [{"expression": "object.spec.paused == false"}],
               matchConditions=[{"name": "only-broken", "expression": "object.metadata.name.startsWith('broken')"}]),
        binding("broken-fail", "broken-fail", ["Deny"]),
        policy("broken-ignore", [{"expression": "object.spec.nothing == 1"}], failurePolicy="Ignore"),
        binding("broken-ignore", "broken-ignore", ["Deny"]),
    )
    status, body, _ = await _post(api, _deploys("default"), deployment("plain", 1))
    assert status == 422 and body["message"].endswith("with binding 'labelled' denied request: a team label is required")
    assert (await _post(api, _deploys("default"), deployment("system-x", 1)))[0] == 201  # match condition false
    got = await _post(api, _deploys("default"), deployment("teamed", 1, {"team": "a"}))
    assert got[0] == 201, got[1]["message"]
    # an evaluation error under failurePolicy Fail (the default) refuses with the error
    status, body, _ = await _post(api, _deploys("default"), deployment("broken", 1, {"team": "a"}))
    assert status == 422
    assert body["message"].endswith("with binding 'broken-fail' denied request: expression 'object.spec.paused == "
                                    "false' resulted in error: no such key: paused")


async def test_a_binding_to_a_missing_policy_or_a_missing_param_kind(api: TestClient) -> None:
    await _setup(api, binding("orphan", "no-such-policy", ["Deny"]),
                 policy("unknown-kind", [{"expression": "true"}], paramKind={"apiVersion": "example.com/v1",
                                                                            "kind": "Limits"}),
                 binding("unknown-kind", "unknown-kind", ["Deny"],
                         paramRef={"name": "x", "parameterNotFoundAction": "Allow"}))
    status, body, _ = await _post(api, _deploys("default"), deployment("d", 1))
    assert status == 422
    assert body["message"] == ("deployments.apps \"d\" is forbidden: ValidatingAdmissionPolicy 'unknown-kind' "
                               "denied request: failed to configure policy: failed to find resource referenced by "
                               "paramKind: 'example.com/v1, Kind=Limits'")


async def test_policies_are_served_with_defaults_and_validated(api: TestClient) -> None:
    status, body, _ = await _post(api, f"{AR}/validatingadmissionpolicies",
                                  policy("p", [{"expression": "object.spec.replicas <= 5"}]))
    assert status == 201
    assert body["spec"]["failurePolicy"] == "Fail"
    assert body["spec"]["matchConstraints"] == {
        "resourceRules": [{**DEPLOY_RULES[0], "scope": "*"}], "matchPolicy": "Equivalent",
        "namespaceSelector": {}, "objectSelector": {}}
    status, body, _ = await _post(api, f"{AR}/validatingadmissionpolicies",
                                  policy("q", [{"expression": "object.spec.replicas +"}]))
    assert status == 422
    assert body["message"].startswith(
        'ValidatingAdmissionPolicy.admissionregistration.k8s.io "q" is invalid: spec.validations[0].expression: '
        'Invalid value: "object.spec.replicas +": compilation failed: ERROR: <input>:1:23: Syntax error:')
    status, body, _ = await _post(api, f"{AR}/validatingadmissionpolicybindings",
                                  binding("b", "p", ["Deny", "Warn"], paramRef={"name": "x"}))
    assert status == 422
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.paramRef.parameterNotFoundAction",
                                                               "spec.validationActions"]
    r = await api.get(f"{AR}/validatingadmissionpolicies", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    table = await r.json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Validations", "ParamKind", "Age"]
    assert table["rows"][0]["cells"][:3] == ["p", 1, "<unset>"]


# -- webhooks' matchConditions ------------------------------------------------------------------------

def _webhook_config(conditions: list[Obj], failure_policy: str = "Fail") -> Obj:
    return {"apiVersion": V, "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "cel"},
            "webhooks": [{"name": "cel.example.com", "clientConfig": {"url": "https://hooks.example.com/v"},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["configmaps"]}],
                          "sideEffects": "None", "admissionReviewVersions": ["v1"],
                          "failurePolicy": failure_policy, "matchConditions": conditions}]}


def _fake_validating(api: TestClient) -> list[str]:
    plugin = api.cp.api.admission.plugin("ValidatingAdmissionWebhook")  # type: ignore[attr-defined]
    assert isinstance(plugin, ValidatingAdmissionWebhook)
    calls: list[str] = []

    async def call(hook: aw.Hook, a: Attributes, req: aw.Request, obj: Obj | None, old: Obj | None,
                   via: Any = None) -> aw.Result:
        calls.append(str((obj or {}).get("metadata", {}).get("name")))
        return aw.Result(True, {}, None, ())

    plugin._call = call  # type: ignore[method-assign]
    return calls


def _cm(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


async def test_webhook_match_conditions_skip_or_call(api: TestClient) -> None:
    conds = [{"name": "not-skipped", "expression": "!object.metadata.name.startsWith('skip')"},
             {"name": "is-create", "expression": "request.operation == 'CREATE' && oldObject == null"}]
    status, body, _ = await _post(api, f"{AR}/validatingwebhookconfigurations", _webhook_config(conds))
    assert status == 201, body
    calls = _fake_validating(api)
    assert (await _post(api, "/api/v1/namespaces/default/configmaps", _cm("skip-me")))[0] == 201
    assert (await _post(api, "/api/v1/namespaces/default/configmaps", _cm("call-me")))[0] == 201
    assert calls == ["call-me"]


async def test_webhook_match_condition_errors_follow_the_failure_policy(api: TestClient) -> None:
    conds = [{"name": "needs-label", "expression": "object.metadata.labels.team == 'a'"}]
    assert (await _post(api, f"{AR}/validatingwebhookconfigurations", _webhook_config(conds)))[0] == 201
    calls = _fake_validating(api)
    status, body, _ = await _post(api, "/api/v1/namespaces/default/configmaps", _cm("nolabels"))
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == ('configmaps "nolabels" is forbidden: expression \'object.metadata.labels.team == '
                               "'a'' resulted in error: no such key: labels")
    r = await api.get(f"{AR}/validatingwebhookconfigurations/cel")
    conf = await r.json()
    conf["webhooks"][0]["failurePolicy"] = "Ignore"
    assert (await api.put(f"{AR}/validatingwebhookconfigurations/cel", json=conf)).status == 200
    assert (await _post(api, "/api/v1/namespaces/default/configmaps", _cm("nolabels")))[0] == 201
    assert calls == []


async def test_webhook_match_conditions_are_compiled_when_written(api: TestClient) -> None:
    status, body, _ = await _post(api, f"{AR}/validatingwebhookconfigurations", _webhook_config(
        [{"name": "bad", "expression": "'a string'"}, {"name": "bad", "expression": "params.x"}]))
    assert status == 422
    causes = [(c["field"], c["message"].split("\n")[0]) for c in body["details"]["causes"]]
    assert causes == [
        ("webhooks[0].matchConditions[0].expression", "Invalid value: \"'a string'\": must evaluate to bool"),
        ("webhooks[0].matchConditions[1].expression",
         ("Invalid value: \"params.x\": compilation failed: ERROR: <input>:1:7: undeclared reference to 'params.x' "
         "(in container '')")),
        ("webhooks[0].matchConditions[1].name", 'Duplicate value: "bad"')]


async def test_audit_action_and_audit_annotations_reach_the_audit_log(tmp_path: Any) -> None:
    import json

    import aiohttp
    from tests.apiserver.test_audit import events, serve_with_audit, stop

    cp, runner, url, log_path = await serve_with_audit(tmp_path, """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: Metadata
""")
    try:
        async with aiohttp.ClientSession(url) as s:
            for o in (policy("audited", [{"expression": "object.spec.replicas <= 5", "message": "too many"}],
                             auditAnnotations=[{"key": "replicas",
                                                "valueExpression": "string(object.spec.replicas)"}]),
                      binding("audited", "audited", ["Audit"])):
                plural = "validatingadmissionpolicies" if o["kind"] == "ValidatingAdmissionPolicy" else \
                    "validatingadmissionpolicybindings"
                async with s.post(f"{AR}/{plural}", json=o) as r:
                    assert r.status == 201
            async with s.post(_deploys("default"), json=deployment("audited", 7)) as r:
                assert r.status == 201  # Audit only records
    finally:
        await stop(cp, runner)
    done = [e for e in events(log_path) if e.get("verb") == "create" and e["stage"] == "ResponseComplete"
            and e.get("objectRef", {}).get("resource") == "deployments"]
    notes = done[-1]["annotations"]
    assert notes["audited/replicas"] == "7"
    assert json.loads(notes["validation.policy.admission.k8s.io/validation_failure"]) == [
        {"message": "too many", "policy": "audited", "binding": "audited", "expressionIndex": 0,
         "validationActions": ["Audit"]}]


async def test_delete_sees_the_old_object_and_subresources_their_own_kind(api: TestClient) -> None:
    await _setup(
        api,
        {"apiVersion": V, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "keep-protected"},
         "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["DELETE"], "resources": ["configmaps"]}]},
                  "validations": [{"expression": "object == null && oldObject.metadata.labels.protected != 'yes'",
                                   "messageExpression": "'configmap ' + oldObject.metadata.name + ' is protected'"}]}},
        binding("keep-protected", "keep-protected", ["Deny"]),
        {"apiVersion": V, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "scale-limit"},
         "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                          "operations": ["UPDATE"],
                                                          "resources": ["deployments/scale"]}]},
                  "validations": [{"expression": "request.subResource == 'scale' && object.spec.replicas <= 4"}]}},
        binding("scale-limit", "scale-limit", ["Deny"]),
    )
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p", "labels": {"protected": "yes"}}}
    assert (await _post(api, "/api/v1/namespaces/default/configmaps", cm))[0] == 201
    r = await api.delete("/api/v1/namespaces/default/configmaps/p")
    body = await r.json()
    assert r.status == 422 and body["message"].endswith("denied request: configmap p is protected")
    assert (await api.delete("/api/v1/namespaces/default/configmaps/absent")).status == 404
    assert (await _post(api, _deploys("default"), deployment("s", 1)))[0] == 201
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "s", "namespace": "default"},
             "spec": {"replicas": 9}}
    r = await api.put(f"{_deploys('default')}/s/scale", json=scale)
    assert r.status == 422 and "denied request: failed expression: request.subResource" in (await r.json())["message"]
    scale["spec"]["replicas"] = 3
    r = await api.put(f"{_deploys('default')}/s/scale", json=scale)
    assert r.status == 200, await r.text()


async def test_match_policy_equivalent_converts_to_the_rules_version(api: TestClient) -> None:
    rules = [{"apiGroups": ["autoscaling"], "apiVersions": ["v2"], "operations": ["CREATE"],
              "resources": ["horizontalpodautoscalers"]}]
    check = ("request.kind.version == 'v2' && request.requestKind.version == 'v1' && "
             "object.spec.metrics.all(m, m.resource.target.averageUtilization <= 80)")
    await _setup(api,
                 {"apiVersion": V, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "hpa-target"},
                  "spec": {"matchConstraints": {"resourceRules": rules},
                           "validations": [{"expression": check, "message": "target at most 80%"}]}},
                 binding("hpa-target", "hpa-target", ["Deny"]),
                 {"apiVersion": V, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "hpa-exact"},
                  "spec": {"matchConstraints": {"resourceRules": rules, "matchPolicy": "Exact"},
                           "validations": [{"expression": "false"}]}},
                 binding("hpa-exact", "hpa-exact", ["Deny"]))

    def hpa(name: str, cpu: int) -> Obj:
        return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                         "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": cpu}}

    path = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"
    status, body, _ = await _post(api, path, hpa("high", 90))
    assert status == 422 and body["message"].endswith("with binding 'hpa-target' denied request: target at most 80%")
    status, body, _ = await _post(api, path, hpa("low", 50))
    assert status == 201, body["message"]


def test_authorizer_checks_reach_the_servers_authorizer_as_request_attributes() -> None:
    from k8py.api import admissionpolicy as ap
    from k8py.api import cel
    from k8py.api.registry import Registry
    from k8py.apiserver.admission.policy import ValidatingAdmissionPolicy

    seen: list[Any] = []

    class Authorizer:
        def authorize(self, user: Any, attrs: Any) -> tuple[bool, str]:
            seen.append((user, attrs))
            return attrs.verb == "list", ""

    plugin = ValidatingAdmissionPolicy(None, Registry())  # type: ignore[arg-type]
    plugin.authorizer = Authorizer()
    conds = ap.compile_conditions([{"name": "a", "expression": (
        "authorizer.serviceAccount('kube-system', 'node-reader').group('').resource('pods')"
        ".fieldSelector('spec.nodeName=n1').check('list').allowed()")}])
    authz = cel.authorizer_value({"username": "jane"})
    with plugin.authorizing():
        assert ap.match_conditions(conds, {"object": None, "oldObject": None, "request": {},
                                           "authorizer": authz}).matches
    user, attrs = seen[0]
    assert (user.name, user.groups) == ("system:serviceaccount:kube-system:node-reader",
                                        ("system:serviceaccounts", "system:serviceaccounts:kube-system",
                                         "system:authenticated"))
    assert (attrs.verb, attrs.resource, attrs.is_resource_request, attrs.api_version, attrs.field_requirements) == (
        "list", "pods", True, "*", (("spec.nodeName", "=", "n1"),))


@pytest.mark.parametrize("plugin_cls", ["validating", "mutating"])
def test_a_policy_that_cannot_be_compiled_fails_its_requests_not_the_server(plugin_cls: str,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from k8py.api import admissionpolicy as ap
    from k8py.api import mutatingpolicy as mp
    from k8py.apiserver.admission.mutatingpolicy import MutatingAdmissionPolicy
    from k8py.apiserver.admission.policy import ValidatingAdmissionPolicy

    def broken(obj: dict[str, object]) -> ap.CompiledPolicy:
        raise RuntimeError("boom")

    cls: type[ValidatingAdmissionPolicy | MutatingAdmissionPolicy]
    if plugin_cls == "validating":
        monkeypatch.setattr(ap, "compile_policy", broken)
        cls, want = ValidatingAdmissionPolicy, ap.CompiledPolicy
    else:
        monkeypatch.setattr(mp, "compile_policy", broken)
        cls, want = MutatingAdmissionPolicy, mp.CompiledMutatingPolicy
    plugin = object.__new__(cls)  # compile() needs no running plugin
    cp = plugin.compile({"metadata": {"name": "p1"}, "spec": {}})
    assert type(cp) is want and cp.name == "p1"
    assert cp.error == "internal error compiling the policy: boom"
