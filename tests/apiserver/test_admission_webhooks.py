"""The mutating webhooks' order, reinvocation (``reinvocationPolicy: IfNeeded``) and the
validation that follows a patch, through the API server in-process. The one seam is the
plugin's ``_call`` (the HTTPS call; the e2e test drives the real one): each webhook here is a
function of the object it is sent."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from k8py.api import admissionwebhook as aw
from k8py.apiserver.admission import Attributes
from k8py.apiserver.admission.webhook import MutatingAdmissionWebhook

Obj = dict[str, Any]
NS = "/api/v1/namespaces/default"
MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def _config(name: str, hook: str, reinvocation: str = "Never") -> Obj:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name}, "webhooks": [{
                "name": hook, "clientConfig": {"url": "https://hooks.example.com/m"},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["configmaps"]}],
                "sideEffects": "None", "admissionReviewVersions": ["v1"], "reinvocationPolicy": reinvocation}]}


# (the request as the webhook's rules matched it, the object it was sent) of the fake's calls
seen: list[tuple[aw.Request, Obj | None]] = []


def _fake(api: TestClient, answers: dict[str, Callable[[Obj], list[Obj]]]) -> list[str]:
    """Replace the plugin's call with ``answers`` (webhook name -> JSON patch for the object);
    returns the list of the calls made, by webhook name."""
    plugin = api.cp.api.admission.plugin("MutatingAdmissionWebhook")  # type: ignore[attr-defined]
    assert isinstance(plugin, MutatingAdmissionWebhook)
    calls: list[str] = []
    seen.clear()

    async def call(hook: aw.Hook, a: Attributes, req: aw.Request, obj: Obj | None, old: Obj | None,
                   via: Any = None) -> aw.Result:
        calls.append(hook.name)
        seen.append((req, obj))
        assert obj is not None
        ops = answers[hook.name](obj)
        doc = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": "u", "allowed": True,
            **({"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}
               if ops else {})}}
        return aw.verify_response("u", hook, doc)

    plugin._call = call  # type: ignore[method-assign]
    return calls


def _add_label(key: str) -> Callable[[Obj], list[Obj]]:
    def fn(obj: Obj) -> list[Obj]:
        labels = obj["metadata"].get("labels")
        if labels is None:
            return [{"op": "add", "path": "/metadata/labels", "value": {key: "1"}}]
        return [] if key in labels else [{"op": "add", "path": f"/metadata/labels/{key}", "value": "1"}]
    return fn


async def _create_cm(api: TestClient, name: str) -> Any:
    return await api.post(f"{NS}/configmaps", json={"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": name}})


async def test_webhooks_in_order_and_an_if_needed_one_called_again_after_a_change(api: TestClient) -> None:
    for conf in (_config("1-first", "first.example.com", "IfNeeded"), _config("2-second", "second.example.com")):
        assert (await api.post(MWC, json=conf)).status == 201
    calls = _fake(api, {"first.example.com": _add_label("first"), "second.example.com": _add_label("second")})
    r = await _create_cm(api, "a")
    assert r.status == 201, await r.text()
    assert (await r.json())["metadata"]["labels"] == {"first": "1", "second": "1"}
    # the second changed the object after the first (IfNeeded) ran: the first is called once more
    assert calls == ["first.example.com", "second.example.com", "first.example.com"]


async def test_no_reinvocation_without_a_later_change_or_with_never(api: TestClient) -> None:
    for conf in (_config("1-first", "first.example.com", "IfNeeded"), _config("2-second", "second.example.com")):
        assert (await api.post(MWC, json=conf)).status == 201
    calls = _fake(api, {"first.example.com": _add_label("first"), "second.example.com": lambda obj: []})
    assert (await _create_cm(api, "b")).status == 201
    assert calls == ["first.example.com", "second.example.com"]
    calls.clear()
    conf = (await (await api.get(f"{MWC}/1-first")).json())
    conf["webhooks"][0]["reinvocationPolicy"] = "Never"
    assert (await api.put(f"{MWC}/1-first", json=conf)).status == 200
    calls = _fake(api, {"first.example.com": _add_label("first"), "second.example.com": _add_label("second")})
    assert (await _create_cm(api, "c")).status == 201
    assert calls == ["first.example.com", "second.example.com"]


async def test_a_patched_object_is_validated_and_a_bad_patch_is_an_internal_error(api: TestClient) -> None:
    assert (await api.post(MWC, json=_config("bad", "bad.example.com"))).status == 201
    _fake(api, {"bad.example.com": lambda obj: [{"op": "add", "path": "/data", "value": {"not a key": "v"}}]})
    r = await _create_cm(api, "d")
    body = await r.json()
    assert r.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "data[not a key]"
    _fake(api, {"bad.example.com": lambda obj: [{"op": "remove", "path": "/nothing/there"}]})
    r = await _create_cm(api, "e")
    body = await r.json()
    assert r.status == 500 and body["reason"] == "InternalError"
    assert body["message"].startswith("Internal error occurred: ")
    assert (await api.get(f"{NS}/configmaps/e")).status == 404


HPA_V2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"


async def test_an_equivalent_version_is_matched_and_sent_in_the_rules_version(api: TestClient) -> None:
    """matchPolicy Equivalent (kube's default): a webhook for autoscaling/v1 HPAs sees one
    created through autoscaling/v2, converted to v1; its patch comes back into v2."""
    conf = _config("hpa", "hpa.example.com")
    conf["webhooks"][0]["rules"] = [{"operations": ["CREATE"], "apiGroups": ["autoscaling"], "apiVersions": ["v1"],
                                     "resources": ["horizontalpodautoscalers"]}]
    assert (await api.post(MWC, json=conf)).status == 201
    calls = _fake(api, {"hpa.example.com": _add_label("seen-as-v1")})
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                    "minReplicas": 1, "maxReplicas": 3}}
    r = await api.post(HPA_V2, json=hpa)
    assert r.status == 201, await r.text()
    got = await r.json()
    assert got["apiVersion"] == "autoscaling/v2" and got["metadata"]["labels"] == {"seen-as-v1": "1"}
    assert calls == ["hpa.example.com"]
    req, sent = seen[0]
    assert (req.group, req.version, req.resource) == ("autoscaling", "v1", "horizontalpodautoscalers")
    assert sent is not None and sent["apiVersion"] == "autoscaling/v1"
    # Exact: the v2 request is not the webhook's
    conf = await (await api.get(f"{MWC}/hpa")).json()
    conf["webhooks"][0]["matchPolicy"] = "Exact"
    assert (await api.put(f"{MWC}/hpa", json=conf)).status == 200
    calls = _fake(api, {"hpa.example.com": _add_label("seen-as-v1")})
    hpa["metadata"]["name"] = "h2"
    r = await api.post(HPA_V2, json=hpa)
    assert r.status == 201 and "labels" not in (await r.json())["metadata"]
    assert calls == []


async def test_a_webhooks_change_runs_the_built_in_plugins_again(api: TestClient) -> None:
    """kube's reinvocation: a sidecar a webhook adds gets LimitRanger's defaults as the app does."""
    r = await api.post(f"{NS}/limitranges", json={"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
                                                   "spec": {"limits": [{"type": "Container",
                                                                        "default": {"cpu": "200m"}}]}})
    assert r.status == 201, await r.text()
    conf = _config("inject", "inject.example.com")
    conf["webhooks"][0]["rules"][0]["resources"] = ["pods"]
    assert (await api.post(MWC, json=conf)).status == 201

    def sidecar(pod: Obj) -> list[Obj]:
        if any(c["name"] == "sidecar" for c in pod["spec"]["containers"]):
            return []
        return [{"op": "add", "path": "/spec/containers/-", "value": {"name": "sidecar", "image": "busybox"}}]

    calls = _fake(api, {"inject.example.com": sidecar})
    r = await api.post(f"{NS}/pods", json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                           "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    assert r.status == 201, await r.text()
    containers = (await r.json())["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    assert [c["resources"]["limits"] for c in containers] == [{"cpu": "200m"}, {"cpu": "200m"}]
    # the webhook (Never) is not called again in the second run
    assert calls == ["inject.example.com"]
    # defaulted as any container (the patch is decoded and defaulted, as kube does)
    assert containers[1]["imagePullPolicy"] == "Always" and containers[1]["terminationMessagePath"]


async def test_sessions_of_ca_bundles_no_webhook_names_are_retired(api: TestClient) -> None:
    from tests.helpers.wardle import serving_tls

    from k8py.apiserver.admission.webhook import ValidatingAdmissionWebhook

    plugin = api.cp.api.admission.plugin("ValidatingAdmissionWebhook")  # type: ignore[attr-defined]
    assert isinstance(plugin, ValidatingAdmissionWebhook)
    ca_a, ca_b, ca_c = (base64.b64encode(serving_tls()[0].encode()).decode() for _ in range(3))
    plugin._hooks = [aw.Hook("c", {"name": "a", "clientConfig": {"caBundle": ca_a}}, False),
                     aw.Hook("c", {"name": "c", "clientConfig": {"caBundle": ca_c}}, False)]
    a, b = plugin._session(ca_a), plugin._session(ca_b)
    assert plugin._session(ca_a) is a  # pooled
    plugin._session(ca_c)  # a new session: b's CA is named by no webhook any more
    assert set(plugin._sessions) == {ca_a, ca_c} and plugin._retiring.sessions() == [b] and not b.closed
    kept = list(plugin._sessions.values())
    await plugin._close_all()  # the plugin's end: retired sessions closed too, their tasks cancelled
    assert b.closed and all(s.closed for s in kept) and not plugin._retiring
