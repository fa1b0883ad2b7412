"""LimitRanger admission: container defaults (and the annotation kube writes), Container, Pod and
PersistentVolumeClaim bounds with kube's messages, through the API server in-process."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from k8py.apiserver.admission import Attributes
from k8py.apiserver.admission.limitranger import (
    ANNOTATION,
    LimitRanger,
    aggregate,
    merge_defaults,
    pod_errors,
    pvc_errors,
)

Obj = dict[str, Any]

NS = "/api/v1/namespaces/default"


def lr(*items: Obj) -> Obj:
    return {"metadata": {"name": "lr"}, "spec": {"limits": list(items)}}


def pod(*containers: Obj, init: tuple[Obj, ...] = ()) -> Obj:
    spec: Obj = {"containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    return {"metadata": {"name": "p"}, "spec": spec}


def c(name: str, requests: Obj | None = None, limits: Obj | None = None) -> Obj:
    res: Obj = {}
    if requests is not None:
        res["requests"] = requests
    if limits is not None:
        res["limits"] = limits
    return {"name": name, "image": "busybox", "resources": res}


def test_defaults_fill_only_what_is_missing_and_annotate_containers_and_init_containers() -> None:
    p = pod(c("a"), c("b", requests={"cpu": "50m"}, limits={"cpu": "100m"}), init=(c("i", limits={"memory": "1Gi"}),))
    merge_defaults(lr({"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                       "defaultRequest": {"cpu": "250m", "memory": "128Mi"}}), p)
    a, b = p["spec"]["containers"]
    assert a["resources"] == {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    assert b["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "256Mi"}}
    assert p["spec"]["initContainers"][0]["resources"]["limits"] == {"memory": "1Gi", "cpu": "500m"}
    assert p["metadata"]["annotations"][ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; "
        "memory request for container b; memory limit for container b; "
        "cpu, memory request for init container i; cpu limit for init container i")


def test_nothing_to_default_leaves_the_pod_alone() -> None:
    p = pod(c("a", requests={"cpu": "1"}, limits={"cpu": "1"}))
    merge_defaults(lr({"type": "Container", "default": {"cpu": "2"}}), p)
    assert "annotations" not in p["metadata"]
    merge_defaults(lr({"type": "Pod", "max": {"cpu": "2"}}), p)
    assert "annotations" not in p["metadata"]


def test_container_bounds_and_ratio_messages() -> None:
    item = {"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}, "min": {"memory": "10Mi"},
            "maxLimitRequestRatio": {"cpu": "2"}}
    errs = pod_errors(lr(item), pod(c("a", requests={"cpu": "500m", "memory": "5Mi"},
                                      limits={"cpu": "2", "memory": "512Mi"})))
    assert errs == ["minimum memory usage per Container is 10Mi, but request is 5Mi",
                    "maximum cpu usage per Container is 1, but limit is 2",
                    "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"]
    assert pod_errors(lr(item), pod(c("a", requests={"memory": "20Mi"}))) == [
        "maximum cpu usage per Container is 1.  No limit is specified",
        "maximum memory usage per Container is 1Gi.  No limit is specified",
        "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"]
    assert pod_errors(lr(item), pod(c("a", requests={"cpu": "1", "memory": "20Mi"},
                                      limits={"cpu": "1", "memory": "20Mi"}))) == []


def test_pod_bounds_count_init_containers_at_their_peak() -> None:
    item = {"type": "Pod", "max": {"cpu": "2"}}
    ok = pod(c("a", limits={"cpu": "1"}, requests={"cpu": "1"}), c("b", limits={"cpu": "1"}, requests={"cpu": "1"}),
             init=(c("i", limits={"cpu": "2"}, requests={"cpu": "2"}),))
    assert pod_errors(lr(item), ok) == []
    big = pod(c("a", limits={"cpu": "1"}, requests={"cpu": "1"}), init=(c("i", limits={"cpu": "3"}, requests={"cpu": "1"}),))
    assert pod_errors(lr(item), big) == ["maximum cpu usage per Pod is 2, but limit is 3"]


def test_claims_are_held_to_their_storage_request() -> None:
    item = {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}
    claim = {"spec": {"resources": {"requests": {"storage": "5Gi"}}}}
    assert pvc_errors(lr(item), claim) == ["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]
    claim["spec"]["resources"]["requests"]["storage"] = "500Mi"
    assert pvc_errors(lr(item), claim) == ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]


def test_aggregate_is_gos() -> None:
    assert aggregate(["a"]) == "a"
    assert aggregate(["a", "b", "a"]) == "[a, b]"
    assert aggregate(["a", "a"]) == "a"


# --------------------------------------------------------------------------- through the API


async def _create_lr(api: TestClient, spec: Obj) -> Obj:
    r = await api.post(f"{NS}/limitranges", json={"apiVersion": "v1", "kind": "LimitRange",
                                                  "metadata": {"name": "limits"}, "spec": spec})
    assert r.status == 201, await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def test_api_defaults_a_pod_and_its_qos_class_counts_them(api: TestClient) -> None:
    await _create_lr(api, {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"},
                                       "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]})
    r = await api.post(f"{NS}/pods", json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                                           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert r.status == 201, await r.text()
    p = await r.json()
    res = p["spec"]["containers"][0]["resources"]
    # the LimitRange's own defaulting: defaultRequest.memory from default.memory
    assert res == {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert p["metadata"]["annotations"][ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    assert p["status"]["qosClass"] == "Burstable"


async def test_api_refuses_an_over_max_pod_and_claim_with_kubes_message(api: TestClient) -> None:
    await _create_lr(api, {"limits": [{"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}},
                                      {"type": "PersistentVolumeClaim", "max": {"storage": "1Gi"}}]})
    r = await api.post(f"{NS}/pods", json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
                                           "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {
                                               "limits": {"cpu": "2", "memory": "2Gi"}}}]}})
    assert r.status == 403
    st = await r.json()
    assert st["reason"] == "Forbidden"
    assert st["message"] == ('pods "big" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, '
                             "maximum memory usage per Container is 1Gi, but limit is 2Gi]")
    assert st["details"] == {"name": "big", "kind": "pods"}
    assert (await api.get(f"{NS}/pods/big")).status == 404
    r = await api.post(f"{NS}/persistentvolumeclaims", json={
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}})
    assert r.status == 403
    assert (await r.json())["message"] == ('persistentvolumeclaims "data" is forbidden: maximum storage usage per '
                                           "PersistentVolumeClaim is 1Gi, but request is 5Gi")


async def test_api_validates_limit_ranges_as_kube(api: TestClient) -> None:
    r = await api.post(f"{NS}/limitranges", json={"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bad"},
                                                  "spec": {"limits": [
                                                      {"type": "Container", "max": {"cpu": "1"}},
                                                      {"type": "Container", "max": {"memory": "1Gi"}},
                                                      {"type": "Node"},
                                                      {"type": "PersistentVolumeClaim", "min": {"cpu": "1"}},
                                                      {"type": "Pod", "default": {"cpu": "1"}, "max": {"foo": "1"}},
                                                      {"type": "example.com/x", "min": {"cpu": "100m"},
                                                       "max": {"cpu": "200m"}, "maxLimitRequestRatio": {"cpu": "3"}},
                                                  ]}})
    assert r.status == 422
    st = await r.json()
    assert [(c["field"], c["message"]) for c in st["details"]["causes"]] == [
        ("spec.limits[1].type", 'Duplicate value: "Container"'),
        ("spec.limits[2].type", 'Invalid value: "Node": must be a standard limit type or fully qualified'),
        ("spec.limits[3].limits",
         "Required value: either minimum or maximum storage value is required, but neither was provided"),
        ("spec.limits[4].default", "Forbidden: may not be specified when `type` is 'Pod'"),
        ("spec.limits[4].max[foo]", 'Invalid value: "foo": must be a standard resource type or fully qualified'),
        ("spec.limits[4].max[foo]", 'Invalid value: "foo": must be a standard resource for containers'),
        ("spec.limits[5].maxLimitRequestRatio[cpu]", "Invalid value: 3: ratio 3 is greater than max/min = 2.000000"),
    ]


async def test_limit_ranges_are_kept_from_a_store_watch(api: TestClient) -> None:
    cp = api.cp  # type: ignore[attr-defined]
    plugin = LimitRanger(cp.objects, cp.registry)
    task = await plugin.start()
    assert task is not None
    kind = cp.registry.by_resource("", "v1", "pods")
    try:
        await _create_lr(api, {"limits": [{"type": "Container", "default": {"cpu": "300m"}}]})
        for _ in range(200):  # the watch brings it within a few loop turns
            p = pod(c("a"))
            await plugin.admit(Attributes("CREATE", kind, "default", "p"), p, None)
            if p["spec"]["containers"][0]["resources"].get("limits") == {"cpu": "300m"}:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the LimitRange created was never applied")
        assert (await api.delete(f"{NS}/limitranges/limits")).status == 200
        for _ in range(200):
            p = pod(c("a"))
            await plugin.admit(Attributes("CREATE", kind, "default", "p"), p, None)
            if "limits" not in p["spec"]["containers"][0]["resources"]:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the LimitRange deleted is still applied")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
