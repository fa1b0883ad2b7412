"""The per-kind registry: what each kind's strategy adds on create, keeps on update and does on
delete, and the request path using it (Pod QoS after defaulting, Service allocation hooks)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from k8py.api.defaults import set_defaults
from k8py.api.registry import Registry
from k8py.apiserver.registry import Strategy, build

REGISTRY = Registry()
STRATEGIES = build()


def kind(api_version: str, k: str) -> Any:
    info = REGISTRY.by_api_version(api_version, k)
    assert info is not None
    return info


def created(obj: dict[str, Any]) -> dict[str, Any]:
    """What the create path makes of ``obj`` before validation: strategy, defaults, strategy."""
    obj = copy.deepcopy(obj)
    k = kind(obj["apiVersion"], obj["kind"])
    s = STRATEGIES.for_kind(k)
    s.prepare_for_create(k, obj)
    set_defaults(k, obj)
    s.finish_create(k, obj)
    return obj


def pod(resources: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]}}


def test_create_semantics_per_kind() -> None:
    ns = created({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "status": {"phase": "x"}})
    assert ns["spec"]["finalizers"] == ["kubernetes"] and ns["status"] == {"phase": "Active"}
    assert "generation" not in ns["metadata"] and ns["metadata"]["uid"]

    job = created({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"},
                   "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                  "containers": [{"name": "c", "image": "x"}]}}}})
    uid = job["metadata"]["uid"]
    assert job["metadata"]["generation"] == 1
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"] == {
        "job-name": "pi", "batch.kubernetes.io/job-name": "pi", "controller-uid": uid,
        "batch.kubernetes.io/controller-uid": uid}

    p = created(pod({"requests": {"cpu": "100m"}}))
    assert p["status"] == {"phase": "Pending", "qosClass": "Burstable"}
    assert p["metadata"]["generation"] == 1


@pytest.mark.parametrize(("resources", "qos"), [
    # only non-zero quantities count (kube's GetPodQOS): cpu "0" everywhere is BestEffort
    ({"requests": {"cpu": "0"}, "limits": {"cpu": "0"}}, "BestEffort"),
    ({"requests": {"cpu": "0", "memory": "0"}, "limits": {"cpu": "0", "memory": "0"}}, "BestEffort"),
    # limits alone are copied into requests by defaulting first: Guaranteed
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ({"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}}, "Burstable"),
])
def test_pod_qos_is_computed_after_defaulting(resources: dict[str, Any], qos: str) -> None:
    assert created(pod(resources))["status"]["qosClass"] == qos


def test_every_registered_kind_has_a_strategy_and_plain_kinds_the_generic_one() -> None:
    for k in REGISTRY.all():
        s = STRATEGIES.for_kind(k)
        assert isinstance(s, Strategy)
        assert (s.group, s.kind) in (("", ""), (k.group, k.kind))
    assert STRATEGIES.for_kind(kind("v1", "Pod")).return_deleted_object
    assert STRATEGIES.for_kind(kind("apps/v1", "Deployment")).scalable
    assert not STRATEGIES.for_kind(kind("v1", "ConfigMap")).scalable
    rc = kind("v1", "ReplicationController")
    assert STRATEGIES.for_kind(rc).scale_selector({"spec": {"selector": {"b": "2", "a": "1"}}}) == "a=1,b=2"


def test_namespace_update_keeps_status_and_spec() -> None:
    k = kind("v1", "Namespace")
    old = created({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    new = copy.deepcopy(old)
    new["spec"] = {"finalizers": []}
    new["status"] = {"phase": "Terminating"}
    STRATEGIES.for_kind(k).prepare_for_update(k, new, old)
    assert new["spec"] == {"finalizers": ["kubernetes"]} and new["status"] == {"phase": "Active"}




async def test_a_pod_with_zero_cpu_is_best_effort_through_the_api(api: TestClient) -> None:
    body = pod({"requests": {"cpu": "0"}, "limits": {"cpu": "0"}})
    r = await api.post("/api/v1/namespaces/default/pods", json=body)
    assert r.status == 201, await r.text()
    assert (await r.json())["status"]["qosClass"] == "BestEffort"


async def test_service_addresses_come_and_go_with_the_service(api: TestClient) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"a": "b"}}}
    r = await api.post("/api/v1/namespaces/default/services", json=svc)
    assert r.status == 201
    got = await r.json()
    ip, port = got["spec"]["clusterIP"], got["spec"]["ports"][0]["nodePort"]
    # the same address asked for by another Service is taken
    other = copy.deepcopy(svc)
    other["metadata"]["name"] = "t"
    other["spec"]["clusterIP"] = ip
    r = await api.post("/api/v1/namespaces/default/services", json=other)
    assert r.status == 422 and "already allocated" in (await r.json())["message"]
    # deleted: the address and the port are free again at once
    assert (await api.delete("/api/v1/namespaces/default/services/s")).status == 200
    other["spec"]["ports"][0]["nodePort"] = port
    r = await api.post("/api/v1/namespaces/default/services", json=other)
    assert r.status == 201, await r.text()
