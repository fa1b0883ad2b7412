"""Admission webhooks on a real ``k8py server``, with real kubectl and the official Python client:
a webhook backend (``tests/helpers/webhookserver.py``) on a loopback port behind a Service
without a selector and a hand-made EndpointSlice naming 127.0.0.1:<port>, verified against the
configuration's ``caBundle`` as ``hooks.webhooks.svc``.

- ``deny.k8py.test`` (validating) refuses ConfigMaps named ``forbidden-*`` in namespaces labelled
  ``webhooks=on`` and the deletion of ConfigMaps labelled ``protected=yes``; it warns otherwise;
- ``label.k8py.test`` (mutating) adds ``added-by=webhook`` to ConfigMaps created there;
- ``ignore.k8py.test`` / ``fail.k8py.test`` point at a Service whose endpoint refuses
  connections, for objects labelled ``probe=ignore`` / ``probe=fail``; ``badca.k8py.test`` trusts
  another CA (``probe=badca``), ``slow.k8py.test`` answers after its 1 s timeout
  (``probe=slow``), ``url.k8py.test`` is the validating webhook by URL (``probe=url``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.conftest import KUBECTL, Server, free_port, manifest, start_server, wait
from tests.helpers.wardle import serving_tls
from tests.helpers.webhookserver import Review, WebhookThread, allow, deny, json_patch

NS_ON, NS_OFF = "guarded", "unguarded"


def _validate(review: Review) -> Review:
    r = review["request"]
    obj = r.get("object") or {}
    if r["operation"] == "CREATE" and obj["metadata"]["name"].startswith("forbidden"):
        return deny(review, "configmaps named forbidden-* are not allowed here")
    if r["operation"] == "DELETE" and (r["oldObject"]["metadata"].get("labels") or {}).get("protected") == "yes":
        return deny(review, "protected configmaps cannot be deleted", 422, "Invalid")
    return allow(review, warnings=["checked by deny.k8py.test"])


def _mutate(review: Review) -> Review:
    labels = review["request"]["object"]["metadata"].get("labels")
    if labels is None:
        return json_patch(review, [{"op": "add", "path": "/metadata/labels", "value": {"added-by": "webhook"}}])
    return json_patch(review, [{"op": "add", "path": "/metadata/labels/added-by", "value": "webhook"}])


BIG = "x" * 600_000  # an answer of ~800 kB (base64): read whole, however the bytes arrive


def _big(review: Review) -> Review:
    return json_patch(review, [{"op": "add", "path": "/data", "value": {"big": BIG}}])


async def _slow(review: Review) -> Review:
    await asyncio.sleep(3)  # past the webhook's 1 s timeoutSeconds
    return allow(review)


def _hook(name: str, service: str, path: str, ca: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "clientConfig": {"service": {"namespace": "webhooks", "name": service, "path": path},
                                           "caBundle": ca},
            "rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 5, **extra}


def _endpoint(name: str, port: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "webhooks"},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": "webhooks", "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, WebhookThread, int]]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    s = start_server(tmp_path_factory.mktemp("webhooks"))
    hooks = WebhookThread(("hooks.webhooks.svc", "gone.webhooks.svc", "localhost"),
                          {"/validate": _validate, "/mutate": _mutate, "/slow": _slow, "/big": _big}).start()
    # a CA that did not sign the backend's certificate
    other_ca = base64.b64encode(serving_tls(("elsewhere.invalid",))[0].encode()).decode()
    dead_port = free_port()  # nothing listens there: calls are refused
    on = {"namespaceSelector": {"matchLabels": {"webhooks": "on"}}}
    ca = hooks.ca_bundle
    try:
        s.kubectl("apply", "-f", "-", input=manifest(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "webhooks"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS_ON, "labels": {"webhooks": "on"}}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS_OFF}},
            *_endpoint("hooks", hooks.port), *_endpoint("gone", dead_port),
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
             "metadata": {"name": "deny"}, "webhooks": [_hook("deny.k8py.test", "hooks", "/validate", ca, **on)]},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
             "metadata": {"name": "label"}, "webhooks": [_hook("label.k8py.test", "hooks", "/mutate", ca, **on)]},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
             "metadata": {"name": "big"}, "webhooks": [_hook("big.k8py.test", "hooks", "/big", ca,
                                                             objectSelector={"matchLabels": {"probe": "big"}})]},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
             "metadata": {"name": "down"}, "webhooks": [
                 _hook("ignore.k8py.test", "gone", "/x", ca, failurePolicy="Ignore",
                       objectSelector={"matchLabels": {"probe": "ignore"}}),
                 _hook("fail.k8py.test", "gone", "/x", ca, failurePolicy="Fail",
                       objectSelector={"matchLabels": {"probe": "fail"}}),
                 _hook("badca.k8py.test", "hooks", "/validate", other_ca,
                       objectSelector={"matchLabels": {"probe": "badca"}}),
                 _hook("slow.k8py.test", "hooks", "/slow", ca, timeoutSeconds=1,
                       objectSelector={"matchLabels": {"probe": "slow"}}),
                 {**_hook("url.k8py.test", "hooks", "/validate", ca,
                          objectSelector={"matchLabels": {"probe": "url"}}),
                  "clientConfig": {"url": f"https://localhost:{hooks.port}/validate", "caBundle": ca}}]}))
        # the configurations reach the API server's cache through its watch: wait for the webhook to act
        wait(lambda: s.kubectl("create", "configmap", "forbidden-probe", "-n", NS_ON, "--dry-run=server",
                               check=False).returncode != 0, 30, "the validating webhook called")
        yield s, hooks, dead_port
    finally:
        hooks.close()
        s.stop()


def _reviews(hooks: WebhookThread, path: str, name: str) -> list[dict[str, Any]]:
    out = []
    for p, r in hooks.seen:
        req = r["request"]
        if p.startswith(path) and name in (req.get("name"), ((req.get("object") or {}).get("metadata") or {}).get("name")):
            out.append(r)
    return out


def test_a_denied_create_prints_kubes_message(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, _, _ = cluster
    p = s.kubectl("create", "configmap", "forbidden-a", "-n", NS_ON, check=False)
    assert p.returncode != 0
    assert p.stderr == ('error: failed to create configmap: admission webhook "deny.k8py.test" denied the request: '
                        "configmaps named forbidden-* are not allowed here\n")
    p = s.kubectl("create", "-f", "-", check=False, input=manifest(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "forbidden-b", "namespace": NS_ON}}))
    assert ('Error from server (Forbidden): error when creating "STDIN": admission webhook "deny.k8py.test" denied '
            "the request: configmaps named forbidden-* are not allowed here") in p.stderr
    assert s.kubectl("get", "configmap", "forbidden-a", "-n", NS_ON, check=False).returncode != 0


def test_the_review_and_the_warning(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, hooks, _ = cluster
    p = s.kubectl("create", "configmap", "seen", "-n", NS_ON, "--from-literal=k=v")
    assert "Warning: checked by deny.k8py.test" in p.stderr
    path, review = next((p, r) for p, r in hooks.seen
                        if p.startswith("/validate") and r["request"].get("name") == "seen")
    assert path == "/validate?timeout=5s"
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    req = review["request"]
    assert req["kind"] == req["requestKind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert req["resource"] == req["requestResource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert (req["operation"], req["namespace"], req["dryRun"]) == ("CREATE", NS_ON, False)
    assert req["userInfo"]["username"] and "system:authenticated" in req["userInfo"]["groups"]
    assert req["object"]["data"] == {"k": "v"} and "oldObject" not in req
    assert req["options"]["kind"] == "CreateOptions"
    # the mutating webhook ran first: the validating one saw its label
    assert req["object"]["metadata"]["labels"] == {"added-by": "webhook"}


def test_a_mutating_webhook_adds_a_label_kubectl_shows(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, _, _ = cluster
    s.kubectl("create", "configmap", "mutated", "-n", NS_ON)
    out = s.kubectl("get", "configmap", "mutated", "-n", NS_ON, "--show-labels").stdout
    assert "added-by=webhook" in out
    s.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": NS_ON,
                                                                "labels": {"app": "x"}}}))
    assert s.kjson("get", "configmap", "applied", "-n", NS_ON)["metadata"]["labels"] == {
        "app": "x", "added-by": "webhook"}


def test_a_namespace_selector_skips_other_namespaces(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, hooks, _ = cluster
    s.kubectl("create", "configmap", "forbidden-elsewhere", "-n", NS_OFF)
    assert "labels" not in s.kjson("get", "configmap", "forbidden-elsewhere", "-n", NS_OFF)["metadata"]
    assert _reviews(hooks, "/", "forbidden-elsewhere") == []


def test_update_and_delete_carry_the_old_object(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, hooks, _ = cluster
    s.kubectl("create", "configmap", "keep", "-n", NS_ON)
    s.kubectl("label", "configmap", "keep", "-n", NS_ON, "protected=yes")
    upd = [r["request"] for r in _reviews(hooks, "/validate", "keep") if r["request"]["operation"] == "UPDATE"]
    assert upd and upd[-1]["object"]["metadata"]["labels"]["protected"] == "yes"
    assert "protected" not in upd[-1]["oldObject"]["metadata"]["labels"]
    assert upd[-1]["options"]["kind"] == "UpdateOptions"
    p = s.kubectl("delete", "configmap", "keep", "-n", NS_ON, check=False)
    assert p.returncode != 0
    # kubectl's words for a 422 Invalid without details
    assert p.stderr == ('The request is invalid: admission webhook "deny.k8py.test" denied the request: protected '
                        "configmaps cannot be deleted\n")
    s.kubectl("label", "configmap", "keep", "-n", NS_ON, "protected-")
    s.kubectl("delete", "configmap", "keep", "-n", NS_ON)
    # nothing to delete: 404, the webhook is not asked
    before = len(hooks.seen)
    p = s.kubectl("delete", "configmap", "keep", "-n", NS_ON, check=False)
    assert 'Error from server (NotFound): configmaps "keep" not found' in p.stderr
    assert len(hooks.seen) == before


def test_failure_policy_with_the_backend_down(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, _, dead_port = cluster
    s.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lenient", "namespace": NS_OFF,
                                                                "labels": {"probe": "ignore"}}}))
    assert s.kjson("get", "configmap", "lenient", "-n", NS_OFF)["metadata"]["name"] == "lenient"
    p = s.kubectl("apply", "-f", "-", check=False, input=manifest(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict", "namespace": NS_OFF,
                                                                "labels": {"probe": "fail"}}}))
    assert p.returncode != 0
    assert ('Internal error occurred: failed calling webhook "fail.k8py.test": Post '
            f'"https://gone.webhooks.svc:443/x?timeout=5s": dial tcp 127.0.0.1:{dead_port}: connect: connection '
            "refused") in p.stderr
    assert "(InternalError)" in p.stderr
    assert s.kubectl("get", "configmap", "strict", "-n", NS_OFF, check=False).returncode != 0


def _create_labelled(s: Server, name: str, probe: str) -> Any:
    return s.kubectl("apply", "-f", "-", check=False, input=manifest(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS_OFF,
                                                                "labels": {"probe": probe}}}))


def test_the_certificate_must_be_signed_by_the_ca_bundle(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, _, _ = cluster
    p = _create_labelled(s, "forbidden-ca", "badca")
    assert p.returncode != 0
    assert ('Internal error occurred: failed calling webhook "badca.k8py.test": Post '
            '"https://hooks.webhooks.svc:443/validate?timeout=5s": tls: failed to verify certificate') in p.stderr


def test_a_webhook_past_its_timeout_fails_the_call(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, _, _ = cluster
    p = _create_labelled(s, "slowpoke", "slow")
    assert p.returncode != 0
    assert ('failed calling webhook "slow.k8py.test": Post "https://hooks.webhooks.svc:443/slow?timeout=1s": '
            "context deadline exceeded") in p.stderr


def test_a_large_patch_is_read_whole(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, _, _ = cluster
    p = _create_labelled(s, "big", "big")
    assert p.returncode == 0, p.stderr
    assert s.kjson("get", "configmap", "big", "-n", NS_OFF)["data"]["big"] == BIG


def test_a_url_webhook(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, hooks, _ = cluster
    p = _create_labelled(s, "forbidden-url", "url")
    assert 'admission webhook "url.k8py.test" denied the request: configmaps named forbidden-*' in p.stderr
    assert ("/validate?timeout=5s", "forbidden-url") in [(path, r["request"]["name"]) for path, r in hooks.seen]


def test_a_server_dry_run_is_reviewed_as_one(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, hooks, _ = cluster
    p = s.kubectl("create", "configmap", "forbidden-dry", "-n", NS_ON, "--dry-run=server", check=False)
    assert 'admission webhook "deny.k8py.test" denied the request' in p.stderr
    s.kubectl("create", "configmap", "dry", "-n", NS_ON, "--dry-run=server")
    req = _reviews(hooks, "/validate", "dry")[-1]["request"]
    assert req["dryRun"] is True and req["options"]["dryRun"] == ["All"]


def test_webhook_configurations_are_never_sent_to_webhooks(cluster: tuple[Server, WebhookThread, int]) -> None:
    """A webhook for every admissionregistration resource, failing closed on a dead backend, must
    not lock its own configuration in (kube's exemption)."""
    s, hooks, _ = cluster
    catch_all = _hook("all.k8py.test", "gone", "/x", hooks.ca_bundle, failurePolicy="Fail")
    catch_all["rules"] = [{"operations": ["*"], "apiGroups": ["admissionregistration.k8s.io"],
                           "apiVersions": ["*"], "resources": ["*"]}]
    doc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "catch-all"}, "webhooks": [catch_all]}
    s.kubectl("apply", "-f", "-", input=manifest(doc))
    doc["metadata"]["labels"] = {"changed": "yes"}
    s.kubectl("apply", "-f", "-", input=manifest(doc))
    s.kubectl("delete", "validatingwebhookconfiguration", "catch-all")


def test_kubectl_get_prints_the_configurations(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, _, _ = cluster
    out = s.kubectl("get", "validatingwebhookconfigurations").stdout.splitlines()
    assert out[0].split() == ["NAME", "WEBHOOKS", "AGE"]
    assert [line.split()[:2] for line in out[1:]] == [["deny", "1"], ["down", "5"]]
    got = s.kjson("get", "mutatingwebhookconfiguration", "label")["webhooks"][0]
    # kube's v1 defaults
    assert (got["failurePolicy"], got["matchPolicy"], got["reinvocationPolicy"], got["objectSelector"]) == (
        "Fail", "Equivalent", "Never", {})
    assert got["clientConfig"]["service"]["port"] == 443 and got["rules"][0]["scope"] == "*"
    explained = s.kubectl("explain", "validatingwebhookconfigurations.webhooks.sideEffects").stdout
    assert "GROUP:      admissionregistration.k8s.io" in explained and "FIELD: sideEffects <string>" in explained


def test_match_conditions_skip_the_webhook(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, hooks, _ = cluster
    # deny.k8py.test's backend refuses forbidden-* names; this webhook (every namespace) is called
    # only for names starting forbidden-cel that are not labelled skip
    conditions = [{"name": "cel-names", "expression": "object.metadata.name.startsWith('forbidden-cel')"},
                  {"name": "not-skipped",
                   "expression": "!has(object.metadata.labels) || !('skip' in object.metadata.labels)"}]
    hook = _hook("cel.k8py.test", "hooks", "/validate", hooks.ca_bundle, matchConditions=conditions)
    s.kubectl("create", "-f", "-", input=manifest(
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "cel"}, "webhooks": [hook]}))
    try:
        wait(lambda: s.kubectl("create", "configmap", "forbidden-cel-probe", "-n", NS_OFF, "--dry-run=server",
                               check=False).returncode != 0, 30, "the webhook with match conditions called")
        p = s.kubectl("create", "configmap", "forbidden-cel-1", "-n", NS_OFF, check=False)
        assert p.stderr == ('error: failed to create configmap: admission webhook "cel.k8py.test" denied the '
                            "request: configmaps named forbidden-* are not allowed here\n")
        skipped = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "forbidden-cel-2", "namespace": NS_OFF, "labels": {"skip": "yes"}}}
        s.kubectl("create", "-f", "-", input=manifest(skipped))
        s.kubectl("create", "configmap", "forbidden-other", "-n", NS_OFF)  # the first condition is false
        assert not _reviews(hooks, "/validate", "forbidden-cel-2")
        # an expression that does not compile is refused when the configuration is written
        bad = _hook("bad.k8py.test", "hooks", "/validate", hooks.ca_bundle,
                    matchConditions=[{"name": "p", "expression": "params.x == 1"}])
        p = s.kubectl("create", "-f", "-", check=False, input=manifest(
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
             "metadata": {"name": "cel-bad"}, "webhooks": [bad]}))
        assert p.returncode != 0
        assert ('The ValidatingWebhookConfiguration "cel-bad" is invalid: webhooks[0].matchConditions[0].expression: '
                "Invalid value: \"params.x == 1\": compilation failed: ERROR: <input>:1:7: undeclared reference to "
                "'params.x'") in p.stderr
    finally:
        s.kubectl("delete", "validatingwebhookconfiguration", "cel", "--ignore-not-found")
        s.kubectl("delete", "configmap", "forbidden-cel-2", "forbidden-other", "-n", NS_OFF, "--ignore-not-found")


# -- ValidatingAdmissionPolicy (kube's documentation examples) -----------------------------------------

VAP = "admissionregistration.k8s.io/v1"
DEPLOYMENTS = [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments"]}]


def test_validating_admission_policy_deny_and_warn(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, _, _ = cluster
    s.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vap-test", "labels": {"environment": "test"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vap-warn", "labels": {"environment": "warn"}}},
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "demo-policy.example.com"},
         "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": DEPLOYMENTS},
                  "validations": [{"expression": "object.spec.replicas <= 5"}]}},
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "demo-binding-test.example.com"},
         "spec": {"policyName": "demo-policy.example.com", "validationActions": ["Deny"],
                  "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "test"}}}}},
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "demo-binding-warn.example.com"},
         "spec": {"policyName": "demo-policy.example.com", "validationActions": ["Warn"],
                  "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "warn"}}}}}))
    wait(lambda: s.kubectl("create", "deployment", "probe", "--image=nginx:1.27", "--replicas=7", "-n", "vap-test",
                           "--dry-run=server", check=False).returncode != 0, 30, "the policy applied")
    p = s.kubectl("create", "deployment", "nginx", "--image=nginx:1.27", "--replicas=7", "-n", "vap-test", check=False)
    assert p.returncode != 0
    # (the lines before are k8py's seed-policy warnings about the pod template)
    assert p.stderr.splitlines()[-1] == (
        'error: failed to create deployment: deployments.apps "nginx" is forbidden: ValidatingAdmissionPolicy '
        "'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: "
        "object.spec.replicas <= 5")
    s.kubectl("create", "deployment", "nginx", "--image=nginx:1.27", "--replicas=3", "-n", "vap-test")
    p = s.kubectl("scale", "deployment", "nginx", "--replicas=6", "-n", "vap-test", check=False)
    assert p.returncode == 0  # the scale subresource is not in the policy's rules, as in kube
    p = s.kubectl("create", "deployment", "nginx", "--image=nginx:1.27", "--replicas=7", "-n", "vap-warn")
    assert ("Warning: Validation failed for ValidatingAdmissionPolicy 'demo-policy.example.com' with binding "
            "'demo-binding-warn.example.com': failed expression: object.spec.replicas <= 5") in p.stderr
    out = s.kubectl("get", "validatingadmissionpolicies").stdout.splitlines()
    assert out[0].split() == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"]
    assert out[1].split()[:3] == ["demo-policy.example.com", "1", "<unset>"]
    out = s.kubectl("get", "validatingadmissionpolicybindings", "demo-binding-test.example.com").stdout.splitlines()
    assert out[0].split() == ["NAME", "POLICYNAME", "PARAMREF", "AGE"]
    assert out[1].split()[:3] == ["demo-binding-test.example.com", "demo-policy.example.com", "<unset>"]
    # the status controller's type checking (kube's validatingadmissionpolicy-status-controller)
    wait(lambda: (s.kjson("get", "validatingadmissionpolicy", "demo-policy.example.com").get("status") or {}).get("observedGeneration") == 1,
         30, "the policy's status written")
    assert s.kjson("get", "validatingadmissionpolicy", "demo-policy.example.com")["status"]["typeChecking"] == {}
    s.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "typo.example.com"},
         "spec": {"matchConstraints": {"resourceRules": DEPLOYMENTS},
                  "validations": [{"expression": "object.spec.replicass <= 5"}]}}))
    wait(lambda: bool((s.kjson("get", "validatingadmissionpolicy", "typo.example.com").get("status") or {}).get("typeChecking")),
         30, "the typo reported")
    assert s.kjson("get", "validatingadmissionpolicy", "typo.example.com")["status"]["typeChecking"]["expressionWarnings"] == [
        {"fieldRef": "spec.validations[0].expression",
         "warning": ("apps/v1, Kind=Deployment: ERROR: <input>:1:12: undefined field 'replicass'\n"
                     " | object.spec.replicass <= 5\n | ...........^")}]
    s.kubectl("delete", "validatingadmissionpolicy", "typo.example.com")
    explained = s.kubectl("explain", "validatingadmissionpolicy.spec.validations").stdout
    assert "GROUP:      admissionregistration.k8s.io" in explained and "FIELD: validations <[]Validation>" in explained
    # server-side apply of a binding, and its defaults as kubectl reads them back
    s.kubectl("apply", "--server-side", "-f", "-", input=manifest(
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "ssa-binding"},
         "spec": {"policyName": "demo-policy.example.com", "validationActions": ["Audit"],
                  "matchResources": {"objectSelector": {"matchLabels": {"never": "matched"}}}}}))
    got = s.kjson("get", "validatingadmissionpolicybinding", "ssa-binding")["spec"]["matchResources"]
    assert (got["matchPolicy"], got["namespaceSelector"]) == ("Equivalent", {})
    s.kubectl("delete", "validatingadmissionpolicybinding", "ssa-binding")


def test_validating_admission_policy_with_params(cluster: tuple[Server, WebhookThread, int]) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    s, _, _ = cluster
    s.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vap-params", "labels": {"limits": "on"}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "replica-limit", "namespace": "vap-params"},
         "data": {"maxReplicas": "3"}},
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "replica-limit.example.com"},
         "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                  "matchConstraints": {"resourceRules": DEPLOYMENTS},
                  "validations": [{"expression": "object.spec.replicas <= int(params.data.maxReplicas)",
                                   "messageExpression": "'object.spec.replicas must be no greater than ' + "
                                                        "params.data.maxReplicas",
                                   "reason": "Forbidden"}]}},
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "replica-limit-binding"},
         "spec": {"policyName": "replica-limit.example.com", "validationActions": ["Deny"],
                  "paramRef": {"name": "replica-limit", "parameterNotFoundAction": "Deny"},
                  "matchResources": {"namespaceSelector": {"matchLabels": {"limits": "on"}}}}}))
    wait(lambda: s.kubectl("create", "deployment", "probe", "--image=nginx:1.27", "--replicas=4", "-n", "vap-params",
                           "--dry-run=server", check=False).returncode != 0, 30, "the policy applied")
    p = s.kubectl("create", "deployment", "four", "--image=nginx:1.27", "--replicas=4", "-n", "vap-params",
                  check=False)
    assert p.stderr.splitlines()[-1] == (
        'error: failed to create deployment: deployments.apps "four" is forbidden: ValidatingAdmissionPolicy '
        "'replica-limit.example.com' with binding 'replica-limit-binding' denied request: object.spec.replicas must "
        "be no greater than 3")
    out = s.kubectl("get", "validatingadmissionpolicybinding", "replica-limit-binding").stdout.splitlines()
    assert out[1].split()[:3] == ["replica-limit-binding", "replica-limit.example.com", "*/replica-limit"]
    # the official Python client: the kinds, and the refusal's Status (403: the validation's reason)
    api = client.ApiClient(s.client().configuration)
    names = [p.metadata.name for p in client.AdmissionregistrationV1Api(api).list_validating_admission_policy().items]
    assert "replica-limit.example.com" in names
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py"),
        spec=client.V1DeploymentSpec(replicas=5, selector=client.V1LabelSelector(match_labels={"app": "py"}),
                                     template=client.V1PodTemplateSpec(
                                         metadata=client.V1ObjectMeta(labels={"app": "py"}),
                                         spec=client.V1PodSpec(containers=[client.V1Container(name="c",
                                                                                              image="nginx:1.27")]))))
    with pytest.raises(ApiException) as e:
        client.AppsV1Api(api).create_namespaced_deployment("vap-params", dep)
    assert e.value.status == 403
    body = json.loads(e.value.body)
    assert body["reason"] == "Forbidden" and body["message"].endswith("must be no greater than 3")


def test_validating_admission_policy_authorizer_asks_rbac(cluster: tuple[Server, WebhookThread, int]) -> None:
    s, _, _ = cluster
    s.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vap-authz", "labels": {"authz": "on"}}},
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "deployer-may-create"},
         "spec": {"matchConstraints": {"resourceRules": DEPLOYMENTS}, "validations": [{
             "expression": "authorizer.serviceAccount(object.metadata.namespace, 'deployer').group('apps')"
                           ".resource('deployments').namespace(object.metadata.namespace).check('create').allowed()",
             "message": "the deployer service account may not create deployments here"}]}},
        {"apiVersion": VAP, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "deployer-may-create"},
         "spec": {"policyName": "deployer-may-create", "validationActions": ["Deny"],
                  "matchResources": {"namespaceSelector": {"matchLabels": {"authz": "on"}}}}}))
    wait(lambda: s.kubectl("create", "deployment", "probe", "--image=nginx:1.27", "-n", "vap-authz",
                           "--dry-run=server", check=False).returncode != 0, 30, "the policy applied")
    p = s.kubectl("create", "deployment", "d", "--image=nginx:1.27", "-n", "vap-authz", check=False)
    assert p.stderr.splitlines()[-1].endswith("denied request: the deployer service account may not create "
                                              "deployments here")
    # RBAC grants it: the policy's check sees the grant (the authorizer's cache follows its watch)
    s.kubectl("create", "role", "deploy", "--verb=create", "--resource=deployments.apps", "-n", "vap-authz")
    s.kubectl("create", "rolebinding", "deploy", "--role=deploy", "--serviceaccount=vap-authz:deployer",
              "-n", "vap-authz")
    wait(lambda: s.kubectl("create", "deployment", "d", "--image=nginx:1.27", "-n", "vap-authz",
                           check=False).returncode == 0, 30, "the deployment created once RBAC allows it")


def test_the_python_client_sees_the_denial(cluster: tuple[Server, WebhookThread, int]) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    s, _, _ = cluster
    api = client.CoreV1Api(s.client())
    with pytest.raises(ApiException) as e:
        api.create_namespaced_config_map(NS_ON, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="forbidden-py")))
    assert e.value.status == 403
    body = json.loads(e.value.body)
    assert body["message"] == ('admission webhook "deny.k8py.test" denied the request: configmaps named '
                               "forbidden-* are not allowed here")
    made = api.create_namespaced_config_map(NS_ON, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py")))
    assert made.metadata.labels == {"added-by": "webhook"}
