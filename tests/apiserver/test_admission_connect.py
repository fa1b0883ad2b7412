"""Admission of CONNECT requests (pods/exec, attach, portforward, nodes/proxy) and of writes to
``/scale``, through the API server in-process and a real HTTPS webhook backend
(tests/helpers/webhookserver.py, called by URL as ``localhost``).

As kube-apiserver's ``ConnectResource``: the AdmissionReview's operation is CONNECT, its object
the options (``PodExecOptions``... apiVersion v1) decoded from the query, no oldObject; a refusal
is the answer before the pod is read or any kubelet dialled, and what a mutating webhook changes
in the options is what the request goes on with. A ``/scale`` write is reviewed as kube's
``scaleUpdatedObjectInfo`` does: kind ``autoscaling/v1 Scale``, object and oldObject Scales, the
parent's resource with ``subResource: scale``; a mutating webhook's replicas are the ones written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import MultiDict
from tests.helpers.webhookserver import Review, WebhookThread, allow, deny, json_patch

from k8py.apiserver.admission.webhook import MutatingAdmissionWebhook, ValidatingAdmissionWebhook
from k8py.apiserver.kubeletproxy import connect_options, options_params

Obj = dict[str, Any]
AR = "/apis/admissionregistration.k8s.io/v1"
V = "admissionregistration.k8s.io/v1"
PODS = "/api/v1/namespaces/default/pods"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def _validate(review: Review) -> Review:
    req = review["request"]
    obj, sub = req.get("object") or {}, req.get("subResource")
    if sub == "exec" and "rm" in (obj.get("command") or []):
        return deny(review, "no rm in exec")
    if sub == "portforward" and 22 in (obj.get("ports") or []):
        return deny(review, "port 22 is not forwarded", 422, "Invalid")
    if sub == "proxy" and obj.get("path", "").startswith("/configz"):
        return deny(review, "configz is private")
    if sub == "scale" and obj["spec"]["replicas"] > 5:
        return deny(review, f"at most 5 replicas, not {obj['spec']['replicas']}")
    return allow(review)


def _mutate(review: Review) -> Review:
    req = review["request"]
    obj, sub = req["object"], req.get("subResource")
    if sub == "exec" and obj.get("command") == ["danger"]:
        return json_patch(review, [{"op": "replace", "path": "/command", "value": ["echo", "tamed"]}])
    if sub == "exec" and obj.get("command") == ["broken"]:
        return json_patch(review, [{"op": "replace", "path": "/command", "value": "not a list"}])
    if sub == "scale" and obj["spec"]["replicas"] == 4:
        return json_patch(review, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
    if sub == "scale" and obj["spec"]["replicas"] == 9:
        return json_patch(review, [{"op": "replace", "path": "/spec/replicas", "value": -1}])
    return allow(review)


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookThread]:
    h = WebhookThread(("localhost",), {"/validate": _validate, "/mutate": _mutate}).start()
    yield h
    h.close()


@pytest.fixture(autouse=True)
async def close_webhook_sessions(api: TestClient) -> AsyncIterator[None]:
    """The plugins' HTTPS sessions closed after each test (a started server closes them when its
    plugins stop; the in-process one here never starts them)."""
    yield
    for name in ("MutatingAdmissionWebhook", "ValidatingAdmissionWebhook"):
        plugin = api.cp.api.admission.plugin(name)  # type: ignore[attr-defined]
        assert isinstance(plugin, MutatingAdmissionWebhook | ValidatingAdmissionWebhook)
        await plugin._close_all()


def _hook(hooks: WebhookThread, path: str, rules: list[Obj], **extra: Any) -> Obj:
    return {"name": f"{path.strip('/')}.connect.k8py.test",
            "clientConfig": {"url": f"https://localhost:{hooks.port}{path}", "caBundle": hooks.ca_bundle},
            "rules": rules, "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 5, **extra}


CONNECT_RULES = [{"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"],
                  "resources": ["pods/exec", "pods/attach", "pods/portforward", "nodes/proxy"]}]
SCALE_RULES = [{"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                "resources": ["deployments/scale"]}]


async def _configure(api: TestClient, hooks: WebhookThread, rules: list[Obj], *, mutating: bool = True) -> None:
    hooks.seen.clear()
    objs = [("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", "/validate")]
    if mutating:
        objs.append(("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", "/mutate"))
    for plural, kind, path in objs:
        r = await api.post(f"{AR}/{plural}", json={"apiVersion": V, "kind": kind, "metadata": {"name": "connect"},
                                                   "webhooks": [_hook(hooks, path, rules)]})
        assert r.status == 201, await r.text()


async def _pod(api: TestClient, name: str = "p") -> None:
    r = await api.post(PODS, json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert r.status == 201, await r.text()


def _denied(message: str) -> str:
    return f'admission webhook "validate.connect.k8py.test" denied the request: {message}'


def _reviews(hooks: WebhookThread, path: str) -> list[Obj]:
    return [r["request"] for p, r in hooks.seen if p.startswith(path)]


async def test_exec_is_reviewed_as_a_connect_of_its_options_and_refused_before_the_pod_is_read(
        api: TestClient, hooks: WebhookThread) -> None:
    await _configure(api, hooks, CONNECT_RULES)
    # no pod "ghost": the webhook's refusal comes first, as kube's admission runs before Connect
    r = await api.post(f"{PODS}/ghost/exec?command=rm&command=-rf&command=/&container=c&stdin=true&stdout=true")
    body = await r.json()
    assert (r.status, body["reason"]) == (403, "Forbidden"), body
    assert body["message"] == _denied("no rm in exec")
    mutating, validating = _reviews(hooks, "/mutate"), _reviews(hooks, "/validate")
    assert len(mutating) == 1 and len(validating) == 1  # mutating webhooks are called for CONNECT too
    req = validating[0]
    assert req["operation"] == "CONNECT"
    assert req["kind"] == req["requestKind"] == {"group": "", "version": "v1", "kind": "PodExecOptions"}
    assert req["resource"] == req["requestResource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert req["subResource"] == req["requestSubResource"] == "exec"
    assert (req["name"], req["namespace"], req["dryRun"]) == ("ghost", "default", False)
    # the streams the query names, none by default (as kube since 1.7)
    assert req["object"] == {"kind": "PodExecOptions", "apiVersion": "v1", "stdin": True, "stdout": True,
                             "container": "c", "command": ["rm", "-rf", "/"]}
    assert "oldObject" not in req and "options" not in req


async def test_an_admitted_exec_goes_on_and_a_mutated_command_is_the_one_used(
        api: TestClient, hooks: WebhookThread) -> None:
    await _configure(api, hooks, CONNECT_RULES)
    await _pod(api)
    r = await api.post(f"{PODS}/p/exec?command=ls&stdout=true")
    body = await r.json()
    # admitted: the request went on to the pod, which has no node yet
    assert (r.status, body["message"]) == (400, "pod p does not have a host assigned")
    hooks.seen.clear()
    # the mutating webhook replaces the command: the validating one (after it) sees the new one
    r = await api.post(f"{PODS}/p/exec?command=danger&stdout=true")
    assert r.status == 400, await r.text()
    assert _reviews(hooks, "/mutate")[0]["object"]["command"] == ["danger"]
    assert _reviews(hooks, "/validate")[0]["object"]["command"] == ["echo", "tamed"]
    # a patch that does not decode into PodExecOptions: kube's internal error
    r = await api.post(f"{PODS}/p/exec?command=broken&stdout=true")
    body = await r.json()
    assert (r.status, body["reason"]) == (500, "InternalError"), body
    assert "PodExecOptions.command of type []string" in body["message"]


async def test_attach_portforward_and_node_proxy_carry_their_options(api: TestClient, hooks: WebhookThread) -> None:
    await _configure(api, hooks, CONNECT_RULES, mutating=False)
    await _pod(api)
    r = await api.post(f"{PODS}/p/attach?stdin=true&stdout=true&tty=true&stderr=false&container=c")
    assert r.status == 400, await r.text()
    r = await api.post(f"{PODS}/p/portforward?ports=8080,22")
    body = await r.json()
    assert (r.status, body["message"]) == (422, _denied("port 22 is not forwarded"))
    r = await api.get("/api/v1/nodes/n1/proxy/configz")
    body = await r.json()
    assert (r.status, body["message"]) == (403, _denied("configz is private"))
    attach, pf, proxy = _reviews(hooks, "/validate")
    assert attach["kind"]["kind"] == "PodAttachOptions" and attach["subResource"] == "attach"
    assert attach["object"] == {"kind": "PodAttachOptions", "apiVersion": "v1", "stdin": True, "stdout": True,
                                "tty": True, "container": "c"}
    assert pf["kind"]["kind"] == "PodPortForwardOptions" and pf["operation"] == "CONNECT"
    assert pf["object"] == {"kind": "PodPortForwardOptions", "apiVersion": "v1", "ports": [8080, 22]}
    assert proxy["kind"] == {"group": "", "version": "v1", "kind": "NodeProxyOptions"}
    assert (proxy["resource"]["resource"], proxy["subResource"], proxy["name"]) == ("nodes", "proxy", "n1")
    assert "namespace" not in proxy
    assert proxy["object"] == {"kind": "NodeProxyOptions", "apiVersion": "v1", "path": "/configz"}


async def test_connect_rules_must_name_the_operation_and_subresource(api: TestClient, hooks: WebhookThread) -> None:
    await _configure(api, hooks, [{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""],
                                   "apiVersions": ["v1"], "resources": ["pods/exec"]},
                                  {"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"],
                                   "resources": ["pods"]}])
    await _pod(api)
    hooks.seen.clear()
    r = await api.post(f"{PODS}/p/exec?command=rm&stdout=true")
    assert r.status == 400, await r.text()  # on to the pod: no webhook was asked
    assert hooks.seen == []


async def test_a_dry_run_connect_is_refused(api: TestClient, hooks: WebhookThread) -> None:
    await _configure(api, hooks, CONNECT_RULES)
    r = await api.post(f"{PODS}/p/exec?command=ls&dryRun=All")
    body = await r.json()
    assert (r.status, body["reason"], body["message"]) == (400, "BadRequest", "dryRun is not supported")
    assert hooks.seen == []


async def test_a_validating_admission_policy_judges_exec(api: TestClient) -> None:
    for plural, obj in (
            ("validatingadmissionpolicies", {
                "apiVersion": V, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "no-shell"},
                "spec": {"matchConstraints": {"resourceRules": [
                    {"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"],
                     "resources": ["pods/exec"]}]},
                    "validations": [{"expression": "!(object.command[0] in ['sh', 'bash'])",
                                     "messageExpression": "'no shell: ' + object.command[0] + ' in ' + request.subResource",
                                     "reason": "Forbidden"}]}}),
            ("validatingadmissionpolicybindings", {
                "apiVersion": V, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "no-shell"},
                "spec": {"policyName": "no-shell", "validationActions": ["Deny"]}})):
        r = await api.post(f"{AR}/{plural}", json=obj)
        assert r.status == 201, await r.text()
    await _pod(api)
    r = await api.post(f"{PODS}/p/exec?command=sh&stdout=true")
    body = await r.json()
    assert (r.status, body["reason"]) == (403, "Forbidden"), body
    assert body["message"] == ('pods "p" is forbidden: ValidatingAdmissionPolicy \'no-shell\' with binding '
                                      "'no-shell' denied request: no shell: sh in exec")
    r = await api.post(f"{PODS}/p/exec?command=ls&stdout=true")
    assert r.status == 400, await r.text()  # admitted: on to the pod


def test_the_kubelets_query_comes_from_the_options() -> None:
    opts = connect_options("exec", MultiDict([("command", "ls"), ("stdout", "1"), ("container", "c")]))
    opts["command"] = ["id", "-u"]  # as a mutating webhook left it
    opts["tty"] = True
    assert options_params("exec", opts) == ("c", [("stdout", "1"), ("tty", "1"), ("command", "id"),
                                                  ("command", "-u")])
    opts = connect_options("portforward", MultiDict([("ports", "80,443")]))
    opts["ports"] = [8080]
    assert options_params("portforward", opts) == ("", [("port", "8080")])


# --------------------------------------------------------------------------- /scale


def _deployment(name: str, replicas: int) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def test_a_scale_write_is_reviewed_as_a_scale(api: TestClient, hooks: WebhookThread) -> None:
    await _configure(api, hooks, SCALE_RULES)
    r = await api.post(DEPLOYS, json=_deployment("d", 1))
    assert r.status == 201, await r.text()
    hooks.seen.clear()
    # kubectl scale's merge patch of the Scale
    merge = {"Content-Type": "application/merge-patch+json"}
    r = await api.patch(f"{DEPLOYS}/d/scale", data=b'{"spec":{"replicas":7}}', headers=merge)
    body = await r.json()
    assert (r.status, body["message"]) == (403, _denied("at most 5 replicas, not 7")), body
    mut, val = _reviews(hooks, "/mutate")[0], _reviews(hooks, "/validate")[0]
    for req in (mut, val):
        assert req["operation"] == "UPDATE"
        assert req["kind"] == req["requestKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        assert req["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
        assert req["subResource"] == "scale" and req["name"] == "d"
        assert req["object"]["kind"] == req["oldObject"]["kind"] == "Scale"
        assert req["object"]["apiVersion"] == "autoscaling/v1"
        assert (req["object"]["spec"], req["oldObject"]["spec"]) == ({"replicas": 7}, {"replicas": 1})
        assert req["oldObject"]["status"] == {"replicas": 0, "selector": "app=d"}
        assert req["object"]["metadata"]["name"] == "d" and "template" not in str(req["object"])
    assert (await (await api.get(f"{DEPLOYS}/d")).json())["spec"]["replicas"] == 1  # nothing changed
    # a mutating webhook's replicas are what is written (4 -> 3), and what the validating one sees
    hooks.seen.clear()
    scale = await (await api.get(f"{DEPLOYS}/d/scale")).json()
    scale["spec"]["replicas"] = 4
    r = await api.put(f"{DEPLOYS}/d/scale", json=scale)
    body = await r.json()
    assert (r.status, body["kind"], body["spec"]["replicas"]) == (200, "Scale", 3), body
    assert _reviews(hooks, "/mutate")[0]["object"]["spec"]["replicas"] == 4
    assert _reviews(hooks, "/validate")[0]["object"]["spec"]["replicas"] == 3
    d = await (await api.get(f"{DEPLOYS}/d")).json()
    assert (d["spec"]["replicas"], d["metadata"]["generation"]) == (3, 2)
    # the mutated Scale is validated as kube's ValidateScale
    r = await api.patch(f"{DEPLOYS}/d/scale", data=b'{"spec":{"replicas":9}}', headers=merge)
    body = await r.json()
    assert (r.status, body["reason"]) == (422, "Invalid"), body
    assert body["message"] == ('Scale.autoscaling "d" is invalid: spec.replicas: Invalid value: -1: must be greater '
                               "than or equal to 0")


async def test_a_mutating_admission_policy_changes_exec_options_and_scales(
        api: TestClient, hooks: WebhookThread) -> None:
    """A MutatingAdmissionPolicy (CONNECT may be mutated, as kube's) patches the options and a
    Scale as they are: no field of the parent kind is added to them."""
    await _configure(api, hooks, [*CONNECT_RULES, *SCALE_RULES], mutating=False)
    for plural, obj in (
            ("mutatingadmissionpolicies", {
                "apiVersion": V, "kind": "MutatingAdmissionPolicy", "metadata": {"name": "tame"},
                "spec": {"matchConstraints": {"resourceRules": [
                    {"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/exec"]},
                    {"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                     "resources": ["deployments/scale"]}]},
                    "reinvocationPolicy": "Never",
                    "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": (
                        "request.subResource == 'exec' ? [JSONPatch{op: 'replace', path: '/command', "
                        "value: ['echo', 'policy']}] : [JSONPatch{op: 'replace', path: '/spec/replicas', "
                        "value: 2}]")}}]}}),
            ("mutatingadmissionpolicybindings", {
                "apiVersion": V, "kind": "MutatingAdmissionPolicyBinding", "metadata": {"name": "tame"},
                "spec": {"policyName": "tame"}})):
        r = await api.post(f"{AR}/{plural}", json=obj)
        assert r.status == 201, await r.text()
    await _pod(api)
    r = await api.post(f"{PODS}/p/exec?command=rm&stdout=true")
    assert r.status == 400, await r.text()  # admitted: the validating webhook saw no rm
    assert _reviews(hooks, "/validate")[-1]["object"] == {"kind": "PodExecOptions", "apiVersion": "v1",
                                                          "stdout": True, "command": ["echo", "policy"]}
    r = await api.post(DEPLOYS, json=_deployment("m", 1))
    assert r.status == 201, await r.text()
    r = await api.patch(f"{DEPLOYS}/m/scale", data=b'{"spec":{"replicas":8}}',
                        headers={"Content-Type": "application/merge-patch+json"})
    body = await r.json()
    assert (r.status, body["spec"]["replicas"]) == (200, 2), body
    seen = _reviews(hooks, "/validate")[-1]["object"]
    assert (seen["kind"], seen["spec"], sorted(seen)) == ("Scale", {"replicas": 2},
                                                          ["apiVersion", "kind", "metadata", "spec", "status"])


async def test_a_scale_with_another_uid_is_a_conflict(api: TestClient) -> None:
    """kube's scaleUpdatedObjectInfo: a uid in the Scale is a precondition."""
    r = await api.post(DEPLOYS, json=_deployment("u", 1))
    assert r.status == 201, await r.text()
    scale = await (await api.get(f"{DEPLOYS}/u/scale")).json()
    uid = scale["metadata"]["uid"]
    scale["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    scale["spec"]["replicas"] = 2
    r = await api.put(f"{DEPLOYS}/u/scale", json=scale)
    body = await r.json()
    assert (r.status, body["reason"]) == (409, "Conflict"), body
    assert body["message"] == ('Operation cannot be fulfilled on deployments/scale.apps "u": Precondition failed: '
                               f"UID in precondition: 00000000-0000-0000-0000-000000000000, UID in object meta: {uid}")
    assert (await (await api.get(f"{DEPLOYS}/u")).json())["spec"]["replicas"] == 1
    scale["metadata"]["uid"] = uid
    assert (await api.put(f"{DEPLOYS}/u/scale", json=scale)).status == 200
