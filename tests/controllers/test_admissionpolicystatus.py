"""The ValidatingAdmissionPolicy status controller writes observedGeneration and kube's
type-checking warnings (fields the matched kinds' schemas lack), and again after a change."""

from __future__ import annotations

from typing import Any

from tests.helpers.cluster import InProcessCluster

from k8py.api import admissionpolicy as ap
from k8py.api.registry import Registry
from k8py.controllers.admissionpolicystatus import desired_status

VAP = ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy")
RULES = [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]}]


def policy(expression: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "p", "generation": 1},
            "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": RULES},
                     "validations": [{"expression": expression}], **spec}}


def test_warnings_name_the_kind_and_the_field_as_kube() -> None:
    status = desired_status(policy("object.spec.replicass <= 5"), Registry())
    assert status == {"observedGeneration": 1, "typeChecking": {"expressionWarnings": [{
        "fieldRef": "spec.validations[0].expression",
        "warning": ("apps/v1, Kind=Deployment: ERROR: <input>:1:12: undefined field 'replicass'\n"
                    " | object.spec.replicass <= 5\n"
                    " | ...........^")}]}}
    assert desired_status(policy("object.spec.replicas <= 5"), Registry())["typeChecking"] == {}


def test_only_kinds_named_without_wildcards_are_checked() -> None:
    p = policy("object.nothing == 1", matchConstraints={"resourceRules": [
        {"apiGroups": ["*"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]},
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods/status", "*"]},
        {"apiGroups": ["example.com"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["widgets"]}]})
    kind_of = lambda g, v, r: (k.kind if (k := Registry().by_resource(g, v, r)) else None)
    assert ap.kinds_to_check(p, kind_of) == []
    assert desired_status(p, Registry())["typeChecking"] == {}
    # params are typed by their paramKind's schema: a ConfigMap has data, not values
    p = policy("object.spec.replicas <= int(params.values.max)", paramKind={"apiVersion": "v1", "kind": "ConfigMap"})
    warning = desired_status(p, Registry())["typeChecking"]["expressionWarnings"][0]["warning"]
    assert warning.startswith("apps/v1, Kind=Deployment: ERROR: <input>:1:35: undefined field 'values'")


async def test_the_controller_writes_the_status_and_follows_changes() -> None:
    async with InProcessCluster(controllers=["validatingadmissionpolicy-status-controller"]) as c:
        p = policy("object.spec.replicass <= 5")
        del p["metadata"]["generation"]
        await c.client.create(VAP, p)

        async def status() -> dict[str, Any]:
            return (await c.client.get(VAP, "p")).get("status") or {}

        async def observed(gen: int) -> bool:
            return bool((await status()).get("observedGeneration") == gen)

        await c.until(lambda: observed(1), what="generation 1 observed")
        assert [w["fieldRef"] for w in (await status())["typeChecking"]["expressionWarnings"]] == [
            "spec.validations[0].expression"]
        got = await c.client.get(VAP, "p")
        got["spec"]["validations"][0]["expression"] = "object.spec.replicas <= 5"
        await c.client.update(VAP, got)
        await c.until(lambda: observed(2), what="generation 2 observed")
        assert (await status())["typeChecking"] == {}
