"""ResourceQuota admission and the quota arithmetic it shares with the quota controller
(``k8py.api.quota``): what objects cost, which quotas they count against, kube's messages, and
charges written atomically into ``status.used`` (concurrent creates never both take the last
slot, on one server or on two sharing a store)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from k8py.api import quota as q
from k8py.api.quantity import parse_quantity
from k8py.apiserver.admission import Attributes
from k8py.apiserver.admission.resourcequota import ResourceQuota
from k8py.storage.interface import ConflictError

Obj = dict[str, Any]

NS = "/api/v1/namespaces/default"
NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def pod(name: str = "p", *containers: Obj, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": list(containers) or [{"name": "c", "image": "busybox"}], **spec}}


def c(name: str, requests: Obj | None = None, limits: Obj | None = None) -> Obj:
    return {"name": name, "image": "busybox", "resources": {"requests": requests or {}, "limits": limits or {}}}


def quota(hard: Obj, used: Obj | None = None, name: str = "q", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": "7"},
            "spec": {"hard": hard, **spec},
            "status": {"hard": hard, "used": used if used is not None else dict.fromkeys(hard, "0")}}


# --------------------------------------------------------------------------- arithmetic


def test_sums_keep_gos_formats() -> None:
    zero = q.parse_list({"memory": "0"})
    assert q.to_wire(q.add(zero, q.parse_list({"memory": "128Mi"}))) == {"memory": "128Mi"}
    assert q.to_wire(q.add(q.parse_list({"cpu": "500m"}), q.parse_list({"cpu": "500m"}))) == {"cpu": "1"}
    assert q.to_wire(q.subtract_non_negative(q.parse_list({"a": "1", "b": "5"}), q.parse_list({"a": "3", "c": "1"}))) \
        == {"a": "0", "b": "5", "c": "0"}
    ok, over = q.less_than_or_equal(q.parse_list({"pods": "3", "cpu": "1"}), q.parse_list({"pods": "2"}))
    assert not ok and over == ["pods"]
    assert q.pretty(q.parse_list({"pods": "1", "cpu": "500m"})) == "cpu=500m,pods=1"


def test_pod_usage_counts_containers_init_peak_and_only_live_pods() -> None:
    p = pod("p", c("a", {"cpu": "250m", "memory": "64Mi"}, {"cpu": "500m", "memory": "128Mi"}),
            c("b", {"cpu": "250m", "memory": "64Mi"}, {"cpu": "500m", "memory": "128Mi"}),
            initContainers=[c("i", {"cpu": "2"}, {"cpu": "2"})])
    assert q.to_wire(q.PodEvaluator().usage(p, NOW)) == {
        "count/pods": "1", "pods": "1", "cpu": "2", "requests.cpu": "2", "limits.cpu": "2",
        "memory": "128Mi", "requests.memory": "128Mi", "limits.memory": "256Mi"}
    done = {**p, "status": {"phase": "Succeeded"}}
    assert q.to_wire(q.PodEvaluator().usage(done, NOW)) == {"count/pods": "1"}
    gone = {**p, "metadata": {**p["metadata"], "deletionTimestamp": "2023-12-31T23:59:00Z",
                              "deletionGracePeriodSeconds": 30}}
    assert q.to_wire(q.PodEvaluator().usage(gone, NOW)) == {"count/pods": "1"}
    assert q.PodEvaluator().usage_changed(p, done, NOW) and not q.PodEvaluator().usage_changed(done, done, NOW)


def test_pod_scopes() -> None:
    ev = q.PodEvaluator()
    best, burst = pod("a"), pod("b", c("c", {"cpu": "1"}))
    term = pod("t", activeDeadlineSeconds=60, priorityClassName="high")
    assert ev.matches_scope({"scopeName": "BestEffort"}, best) and not ev.matches_scope({"scopeName": "BestEffort"}, burst)
    assert ev.matches_scope({"scopeName": "NotBestEffort"}, burst)
    assert ev.matches_scope({"scopeName": "Terminating"}, term) and ev.matches_scope({"scopeName": "NotTerminating"}, best)
    sel = {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}
    assert ev.matches_scope(sel, term) and not ev.matches_scope(sel, best)
    assert ev.matches_scope({"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}, best)
    assert ev.matches_scope({"scopeName": "PriorityClass", "operator": "Exists"}, term)
    # a BestEffort-scoped quota on pods does not see a Burstable pod at all
    rq = quota({"pods": "1"}, {"pods": "1"}, scopes=["BestEffort"])
    assert q.check_request([rq], ev, "CREATE", burst, None, NOW) == [rq]
    with pytest.raises(q.QuotaRefused, match="exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"):
        q.check_request([rq], ev, "CREATE", best, None, NOW)


def test_services_claims_and_object_counts() -> None:
    svc = {"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert q.to_wire(q.ServiceEvaluator().usage(svc, NOW)) == {
        "count/services": "1", "services": "1", "services.loadbalancers": "1", "services.nodeports": "2"}
    pvc = {"metadata": {"name": "d"}, "spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1.5Gi"}}}}
    assert q.to_wire(q.PVCEvaluator().usage(pvc, NOW)) == {
        "persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1",
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "requests.storage": "1536Mi", "gold.storageclass.storage.k8s.io/requests.storage": "1536Mi"}
    assert q.evaluator_for("", "secrets").matching_resources(["secrets", "count/secrets", "pods"]) == \
        ["secrets", "count/secrets"]
    assert q.evaluator_for("apps", "deployments").count_name == "count/deployments.apps"
    assert q.tracked_kinds(["pods", "count/deployments.apps", "requests.storage"]) == {
        ("", "pods"), ("apps", "deployments"), ("", "persistentvolumeclaims")}


def test_check_request_messages() -> None:
    ev = q.PodEvaluator()
    rq = quota({"pods": "2", "limits.cpu": "1", "requests.memory": "1Gi"})
    with pytest.raises(q.QuotaRefused) as e:
        q.check_request([rq], ev, "CREATE", pod("p", c("a"), c("b", {"memory": "1Mi"}, {"cpu": "1"})), None, NOW)
    assert str(e.value) == "failed quota: q: must specify limits.cpu for: a; requests.memory for: a"
    fits = pod("p", c("a", {"memory": "512Mi", "cpu": "250m"}, {"cpu": "500m"}))
    out = q.check_request([rq], ev, "CREATE", fits, None, NOW)
    assert out[0]["status"]["used"] == {"pods": "1", "limits.cpu": "500m", "requests.memory": "512Mi"}
    assert rq["status"]["used"] == {"pods": "0", "limits.cpu": "0", "requests.memory": "0"}  # a copy was charged
    with pytest.raises(q.QuotaRefused) as e:
        q.check_request(out, ev, "CREATE", pod("p2", c("a", {"memory": "600Mi"}, {"cpu": "600m"})), None, NOW)
    assert str(e.value) == ("exceeded quota: q, requested: limits.cpu=600m,requests.memory=600Mi, "
                            "used: limits.cpu=500m,requests.memory=512Mi, limited: limits.cpu=1,requests.memory=1Gi")
    unknown = quota({"pods": "2"}, {})
    with pytest.raises(q.QuotaRefused, match="status unknown for quota: q, resources: pods"):
        q.check_request([unknown], ev, "CREATE", fits, None, NOW)
    # a quota the controller has not taken in yet (no status.hard) does not apply
    fresh = {"metadata": {"name": "new"}, "spec": {"hard": {"pods": "0"}}}
    assert q.check_request([fresh], ev, "CREATE", fits, None, NOW) == [fresh]


def test_an_update_is_charged_only_what_grew() -> None:
    ev = q.ServiceEvaluator()
    rq = quota({"services.nodeports": "2", "services": "5"}, {"services.nodeports": "1", "services": "1"})
    old = {"metadata": {"name": "s", "resourceVersion": "3"}, "spec": {"type": "NodePort", "ports": [{"port": 1}]}}
    new = {"metadata": {"name": "s", "resourceVersion": "3"}, "spec": {"type": "NodePort", "ports": [{"port": 1},
                                                                                                     {"port": 2}]}}
    out = q.check_request([rq], ev, "UPDATE", new, old, NOW)
    assert out[0]["status"]["used"] == {"services.nodeports": "2", "services": "1"}
    assert q.check_request([rq], ev, "UPDATE", old, old, NOW) == [rq]  # nothing grew: nothing charged


def test_controller_usage_and_status() -> None:
    rq = quota({"pods": "5", "requests.cpu": "2", "count/deployments.apps": "3", "secrets": "9"},
               {"pods": "4", "secrets": "1"})
    objs = {("", "pods"): [pod("a", c("c", {"cpu": "1"})), {**pod("b"), "status": {"phase": "Failed"}}],
            ("apps", "deployments"): [{}, {}]}
    used, unknown = q.calculate_usage(rq, lambda g, r: objs.get((g, r)) if r != "secrets" else None, NOW)
    assert q.to_wire(used) == {"pods": "1", "requests.cpu": "1", "count/deployments.apps": "2"}
    assert unknown == {"secrets"}
    assert q.quota_status(rq, used, unknown) == {
        "hard": {"pods": "5", "requests.cpu": "2", "count/deployments.apps": "3", "secrets": "9"},
        "used": {"pods": "1", "requests.cpu": "1", "count/deployments.apps": "2", "secrets": "1"}}


# --------------------------------------------------------------------------- through the API


async def _quota(api: TestClient, hard: Obj, name: str = "q", **spec: Any) -> Obj:
    """A quota whose status is set as the controller would (no controller runs here)."""
    r = await api.post(f"{NS}/resourcequotas", json={"apiVersion": "v1", "kind": "ResourceQuota",
                                                     "metadata": {"name": name}, "spec": {"hard": hard, **spec}})
    assert r.status == 201, await r.text()
    rq = await r.json()
    rq["status"] = {"hard": hard, "used": dict.fromkeys(hard, "0")}
    r = await api.put(f"{NS}/resourcequotas/{name}/status", json=rq)
    assert r.status == 200, await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def _pod(api: TestClient, name: str, *, dry: bool = False, **res: Any) -> Any:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": res}]}}
    return await api.post(f"{NS}/pods" + ("?dryRun=All" if dry else ""), json=body)


async def _used(api: TestClient, name: str = "q") -> Obj:
    return (await (await api.get(f"{NS}/resourcequotas/{name}")).json())["status"]["used"]  # type: ignore[no-any-return]


async def test_api_charges_refuses_and_dry_run_charges_nothing(api: TestClient) -> None:
    await _quota(api, {"pods": "2", "limits.cpu": "1"})
    r = await _pod(api, "bare")
    assert r.status == 403
    st = await r.json()
    assert st["message"] == 'pods "bare" is forbidden: failed quota: q: must specify limits.cpu for: c'
    assert (st["reason"], st["details"]) == ("Forbidden", {"name": "bare", "kind": "pods"})
    assert (await _pod(api, "dry", dry=True, limits={"cpu": "500m"})).status == 201
    assert await _used(api) == {"pods": "0", "limits.cpu": "0"}
    for n in ("a", "b"):
        r = await _pod(api, n, limits={"cpu": "500m"})
        assert r.status == 201, await r.text()
    assert await _used(api) == {"pods": "2", "limits.cpu": "1"}
    r = await _pod(api, "c", limits={"cpu": "100m"})
    assert r.status == 403
    assert (await r.json())["message"] == (
        'pods "c" is forbidden: exceeded quota: q, requested: limits.cpu=100m,pods=1, '
        "used: limits.cpu=1,pods=2, limited: limits.cpu=1,pods=2")
    # other kinds pass a pods quota untouched
    r = await api.post(f"{NS}/configmaps", json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert r.status == 201


async def test_api_object_counts_and_generated_names(api: TestClient) -> None:
    await _quota(api, {"configmaps": "1", "count/deployments.apps": "0"})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}}
    assert (await api.post(f"{NS}/configmaps", json=cm)).status == 201
    r = await api.post(f"{NS}/configmaps", json={**cm, "metadata": {"generateName": "cm-"}})
    assert r.status == 403
    msg = (await r.json())["message"]
    assert msg.startswith('configmaps "cm-') and msg.endswith(
        '" is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps=1, limited: configmaps=1')
    r = await api.post("/apis/apps/v1/namespaces/default/deployments", json={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    assert r.status == 403
    assert (await r.json())["message"] == (
        'deployments.apps "web" is forbidden: exceeded quota: q, requested: count/deployments.apps=1, '
        "used: count/deployments.apps=0, limited: count/deployments.apps=0")


async def test_concurrent_creates_never_both_take_the_last_slot(api: TestClient) -> None:
    await _quota(api, {"pods": "3"})
    rs = await asyncio.gather(*(_pod(api, f"p{i}") for i in range(8)))
    codes = sorted(r.status for r in rs)
    assert codes == [201] * 3 + [403] * 5
    assert await _used(api) == {"pods": "3"}
    listed = await (await api.get(f"{NS}/pods")).json()
    assert len(listed["items"]) == 3


class _Yielding:
    """The server's Objects, yielding to the event loop after every read so that two plugins
    (two API servers on one store) interleave between reading a quota and writing it back."""

    def __init__(self, objects: Any) -> None:
        self.objects = objects
        self.conflicts = 0

    async def list(self, *a: Any, **kw: Any) -> Any:
        page = await self.objects.list(*a, **kw)
        for _ in range(3):
            await asyncio.sleep(0)
        return page

    async def replace(self, *a: Any, **kw: Any) -> Any:
        try:
            return await self.objects.replace(*a, **kw)
        except ConflictError:
            self.conflicts += 1
            raise


async def test_two_servers_on_one_store_compare_and_swap(api: TestClient) -> None:
    await _quota(api, {"pods": "2"})
    cp = api.cp  # type: ignore[attr-defined]
    objects = _Yielding(cp.objects)
    servers = [ResourceQuota(objects, cp.registry), ResourceQuota(objects, cp.registry)]  # type: ignore[arg-type]
    kind = cp.registry.by_resource("", "v1", "pods")

    async def admit(i: int) -> bool:
        a = Attributes("CREATE", kind, "default", f"p{i}")
        try:
            await servers[i % 2].validate(a, pod(f"p{i}"), None)
        except Exception as e:  # noqa: BLE001 - the refusals are what is counted
            assert getattr(e, "code", None) == 403, e
            return False
        return True

    admitted = await asyncio.gather(*(admit(i) for i in range(6)))
    assert sum(admitted) == 2
    assert objects.conflicts > 0  # the servers did race, and the store's compare-and-swap settled it
    assert await _used(api) == {"pods": "2"}
    assert parse_quantity((await _used(api))["pods"]).int_value() == 2


async def test_namespaces_without_quotas_read_nothing_once_the_watch_has_synced(api: TestClient) -> None:
    cp = api.cp  # type: ignore[attr-defined]

    class Counting:
        def __init__(self, objects: Any) -> None:
            self.objects, self.lists = objects, 0

        def __getattr__(self, name: str) -> Any:
            return getattr(self.objects, name)

        async def list(self, *a: Any, **kw: Any) -> Any:
            self.lists += 1
            return await self.objects.list(*a, **kw)

    objects = Counting(cp.objects)
    plugin = ResourceQuota(objects, cp.registry)  # type: ignore[arg-type]
    kind = cp.registry.by_resource("", "v1", "pods")
    task = await plugin.start()
    assert task is not None
    try:
        await plugin.validate(Attributes("CREATE", kind, "default", "a"), pod("a"), None)
        assert objects.lists == 0
        await _quota(api, {"pods": "1"})

        async def charged() -> bool:
            try:
                await plugin.validate(Attributes("CREATE", kind, "default", "b"), pod("b"), None)
            except Exception as e:  # noqa: BLE001 - the refusal is what is awaited
                return getattr(e, "code", None) == 403
            return False

        for _ in range(200):  # the watch brings the new quota within a few loop turns
            if await charged():
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the quota created was never applied")
        assert objects.lists > 0
        assert (await api.delete(f"{NS}/resourcequotas/q")).status == 200
        for _ in range(200):
            if "default" not in plugin._quotas_by_ns:
                break
            await asyncio.sleep(0.01)
        seen = objects.lists
        await plugin.validate(Attributes("CREATE", kind, "default", "c"), pod("c"), None)
        assert objects.lists == seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_api_validates_quota_scopes_as_kube(api: TestClient) -> None:
    async def causes(spec: Obj) -> list[tuple[str, str]]:
        r = await api.post(f"{NS}/resourcequotas", json={"apiVersion": "v1", "kind": "ResourceQuota",
                                                         "metadata": {"name": "bad"}, "spec": spec})
        assert r.status == 422, await r.text()
        return [(c["field"], c["message"]) for c in (await r.json())["details"]["causes"]]

    shown = 'Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort"}: '
    got = await causes({"hard": {"pods": "1", "cpu": "1", "services": "1"}, "scopes": ["BestEffort", "NotBestEffort"]})
    assert got == [("spec.scopes", shown + "unsupported scope applied to resource"),  # three times, said once
                   ("spec.scopes", shown + "conflicting scopes")]
    only_exists = ("Invalid value: \"In\": must be 'Exist' only operator when scope is any of "
                   "ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort and "
                   "ResourceQuotaScopeNotBestEffort")
    no_values = ("Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector")
    values = ("Invalid value: []string{\"a\"}: must be no value when `operator` is 'Exist' or 'DoesNotExist' for "
              "scope selector")
    assert await causes({"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
        {"scopeName": "Terminating", "operator": "In", "values": ["x"]},
        {"scopeName": "PriorityClass", "operator": "In"},
        {"scopeName": "PriorityClass", "operator": "Exists", "values": ["a"]}]}}) == [
        ("spec.scopeSelector.matchExpressions[0].operator", only_exists),
        ("spec.scopeSelector.matchExpressions[1].values", no_values),
        ("spec.scopeSelector.matchExpressions[2].values", values)]
    ok = await api.post(f"{NS}/resourcequotas", json={"apiVersion": "v1", "kind": "ResourceQuota",
                                                      "metadata": {"name": "good"}, "spec": {
                                                          "hard": {"pods": "3", "requests.cpu": "1"},
                                                          "scopeSelector": {"matchExpressions": [{
                                                              "scopeName": "PriorityClass", "operator": "In",
                                                              "values": ["high"]}]}}})
    assert ok.status == 201, await ok.text()


# --------------------------------------------------------------------------- limitedResources


CRITICAL = {"scopeName": "PriorityClass", "operator": "In", "values": ["cluster-services", "critical"]}


def test_limited_scopes_need_a_covering_quota() -> None:
    limited = (q.LimitedResource("", "pods", (), (CRITICAL,)),)
    ev = q.PodEvaluator()
    critical = pod("c", priorityClassName="critical")
    with pytest.raises(q.ScopesUncovered) as e:
        q.check_request([], ev, "CREATE", critical, None, NOW, limited)
    assert str(e.value) == "insufficient quota to match these scopes: [{PriorityClass In [cluster-services critical]}]"
    # a pod of another class, or none, is not limited
    assert q.check_request([], ev, "CREATE", pod("p", priorityClassName="low"), None, NOW, limited) == []
    # a quota whose scope selector covers the class lets it in, and charges it
    covering = quota({"pods": "10"}, scopeSelector={"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["critical"]}]})
    out = q.check_request([covering], ev, "CREATE", critical, None, NOW, limited)
    assert out[0]["status"]["used"] == {"pods": "1"}


def test_limited_names_need_a_covering_quota() -> None:
    gold = "gold.storageclass.storage.k8s.io/requests.storage"
    limited = (q.LimitedResource("", "persistentvolumeclaims", (".storageclass.storage.k8s.io/requests.storage",)),)
    claim = {"metadata": {"name": "d"}, "spec": {"storageClassName": "gold",
                                                  "resources": {"requests": {"storage": "1Gi"}}}}
    ev = q.PVCEvaluator()
    with pytest.raises(q.QuotaRefused, match=f"^insufficient quota to consume: {gold}$"):
        q.check_request([quota({"persistentvolumeclaims": "5"})], ev, "CREATE", claim, None, NOW, limited)
    ok = q.check_request([quota({gold: "10Gi"})], ev, "CREATE", claim, None, NOW, limited)
    assert ok[0]["status"]["used"] == {gold: "1Gi"}


def test_configuration_is_parsed_and_checked(tmp_path: Any) -> None:
    from k8py.apiserver.admission import config as admission_config

    f = tmp_path / "admission.yaml"
    f.write_text("""apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ResourceQuota
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: ResourceQuotaConfiguration
    limitedResources:
    - resource: pods
      matchScopes:
      - scopeName: PriorityClass
        operator: In
        values: [cluster-services]
""")
    parsed = admission_config.from_file(str(f))
    assert parsed["ResourceQuota"] == (q.LimitedResource("", "pods", (), (
        {"scopeName": "PriorityClass", "operator": "In", "values": ["cluster-services"]},)),)
    f.write_text(f.read_text().replace("- resource: pods", "- apiGroup: ''\n      matchContains: [x]"))
    with pytest.raises(admission_config.AdmissionConfigError) as e:
        admission_config.from_file(str(f))
    assert str(e.value) == (f"admission plugin ResourceQuota: {f}:9: "
                            "plugins[0].configuration.limitedResources[0].resource: Required value")


async def test_api_limited_scope_is_kubes_bare_error(api: TestClient) -> None:
    cp = api.cp  # type: ignore[attr-defined]
    plugin = ResourceQuota(cp.objects, cp.registry, (q.LimitedResource("", "pods", (), (CRITICAL,)),))
    kind = cp.registry.by_resource("", "v1", "pods")
    with pytest.raises(Exception) as e:
        await plugin.validate(Attributes("CREATE", kind, "default", "c"), pod("c", priorityClassName="critical"), None)
    st = e.value.status()  # type: ignore[attr-defined]
    assert st == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 500,
                  "message": "insufficient quota to match these scopes: [{PriorityClass In [cluster-services critical]}]"}
    await plugin.validate(Attributes("CREATE", kind, "default", "p"), pod("p"), None)  # not limited


async def test_events_are_ignored_as_in_kube(api: TestClient) -> None:
    await _quota(api, {"count/events": "0", "pods": "5"})
    r = await api.post(f"{NS}/events", json={
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"}, "reason": "Test", "message": "m",
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "type": "Normal"})
    assert r.status == 201, await r.text()
    assert q.tracked_kinds(["count/events", "pods"]) == {("", "pods")}
    used, unknown = q.calculate_usage(quota({"count/events": "0"}), lambda g, r: [{}] if r == "events" else [], NOW)
    assert used == {} and unknown == set()


def test_admission_charges_and_the_controller_measure_agree() -> None:
    """Charging pods one by one from zero (admission) and measuring them all at once (the
    controller) give the same status.used, whatever the pods ask (random, seeded)."""
    import random

    rnd = random.Random(12)
    qty = ("100m", "250m", "1", "1500m", "64Mi", "128Mi", "1Gi", "0.5Gi", "2")

    def container(name: str) -> Obj:
        res: Obj = {}
        for field in ("requests", "limits"):
            if rnd.random() < 0.95:
                res[field] = {r: rnd.choice(qty[:4] if r == "cpu" else qty[4:8]) for r in ("cpu", "memory")
                              if rnd.random() < 0.95}
        c: Obj = {"name": name, "image": "busybox", "resources": res}
        if rnd.random() < 0.2:
            c["restartPolicy"] = "Always"
        return c

    hard = {"pods": "1000", "requests.cpu": "1000", "limits.cpu": "1000", "requests.memory": "1000Gi",
            "limits.memory": "1000Gi", "count/pods": "1000"}
    for scopes in ([], ["NotBestEffort"], ["BestEffort"], ["Terminating"]):
        rq = quota(hard if scopes != ["BestEffort"] else {"pods": "1000"}, scopes=scopes)
        pods = []
        for i in range(80):
            spec: Obj = {}
            if rnd.random() < 0.3:
                spec["initContainers"] = [container(f"i{j}") for j in range(rnd.randint(1, 2))]
            if rnd.random() < 0.3:
                spec["activeDeadlineSeconds"] = 30
            p = pod(f"p{i}", *(container(f"c{j}") for j in range(rnd.randint(1, 3))), **spec)
            try:
                rq = q.check_request([rq], q.PodEvaluator(), "CREATE", p, None, NOW)[0]
            except q.QuotaRefused:
                continue  # a container without the cpu/memory the quota wants: never stored
            pods.append(p)
        measured, unknown = q.calculate_usage(rq, lambda g, r, stored=pods: stored if r == "pods" else [], NOW)
        assert not unknown
        assert q.equals(measured, q.parse_list(rq["status"]["used"])), (scopes, q.to_wire(measured),
                                                                       rq["status"]["used"])
        assert len(pods) > 5, scopes  # the check is about something
