"""The K8pySeedPolicy admission plugin in the API server (in-process, memory store): warnings,
enforcing namespaces, the tuning ConfigMap read through a watch, and what is not checked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from k8py.apiserver import server as srv
from k8py.apiserver.admission.seedpolicy import SeedPolicy
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

NS = "/api/v1/namespaces"
CMS = "/api/v1/namespaces/kube-system/configmaps"


def deps(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments"


def pods(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods"


def deployment(name: str = "web", image: str = "nginx:latest", limits: dict[str, str] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "nginx", "image": image}
    if limits is not None:
        c["resources"] = {"limits": limits}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [c]}}}}


GOOD = {"name": "app", "image": "nginx:1.27", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
        "readinessProbe": {"tcpSocket": {"port": 80}}, "livenessProbe": {"tcpSocket": {"port": 80}}}


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[TestClient]:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store)
    await cp.bootstrap()
    tasks = await cp.api.admission.start()  # as srv.start does before serving
    cp.http.ready = True
    async with TestClient(TestServer(cp.http.build())) as c:
        c.cp = cp  # type: ignore[attr-defined]
        yield c
    for t in tasks:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t
    await store.close()


def plugin(api: TestClient) -> SeedPolicy:
    p = api.cp.api.admission.plugin("K8pySeedPolicy")  # type: ignore[attr-defined]
    assert isinstance(p, SeedPolicy)
    return p


async def until(cond: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def namespace(api: TestClient, name: str, mode: str | None = None) -> None:
    labels = {"k8py.io/policy": mode} if mode else {}
    r = await api.post(NS, json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    assert r.status == 201, await r.text()
    p = plugin(api)
    await until(lambda: p.modes.get(name) == mode, f"the plugin to see namespace {name}'s label")


def warnings(r: Any) -> list[str]:
    return list(r.headers.getall("Warning", []))


async def test_a_deployment_with_nginx_latest_without_limits_warns(api: TestClient) -> None:
    r = await api.post(deps("default"), json=deployment())
    assert r.status == 201, await r.text()
    w = warnings(r)
    assert w == [
        ('299 - "spec.template.spec.containers[0] (nginx): image \\"nginx:latest\\" uses the :latest tag (pin a '
        'version or a digest)"'),
        ('299 - "spec.template.spec.containers[0] (nginx): no memory or CPU limit (set resources.limits.memory and '
        'resources.limits.cpu so that it cannot take the whole node)"'),
        ('299 - "spec.template.spec.containers[0] (nginx): no readinessProbe and no livenessProbe (add probes so '
        'that traffic reaches it only when it is ready and it is restarted when it hangs)"'),
    ]
    # dry-run warns the same (kubectl apply --dry-run=server), and writes nothing
    r = await api.post(deps("default") + "?dryRun=All", json=deployment("dry"))
    assert r.status == 201 and len(warnings(r)) == 3
    assert (await api.get(deps("default") + "/dry")).status == 404


async def test_a_clean_workload_has_no_warnings(api: TestClient) -> None:
    dep = deployment("clean")
    dep["spec"]["template"]["spec"]["containers"] = [GOOD]
    r = await api.post(deps("default"), json=dep)
    assert r.status == 201 and warnings(r) == []


async def test_an_enforcing_namespace_refuses_with_every_finding(api: TestClient) -> None:
    await namespace(api, "prod", "enforce")
    r = await api.post(deps("prod"), json=deployment(limits={"memory": "1Gi"}))
    assert r.status == 403
    st = await r.json()
    assert st["reason"] == "Forbidden" and st["code"] == 403
    assert st["message"] == (
        'deployments.apps "web" is forbidden: violates k8py policy "enforce": spec.template.spec.containers[0] '
        '(nginx): image "nginx:latest" uses the :latest tag (pin a version or a digest); '
        "spec.template.spec.containers[0] (nginx): no CPU limit (set resources.limits.cpu so that it cannot take "
        "the whole node); spec.template.spec.containers[0] (nginx): no readinessProbe and no livenessProbe (add "
        "probes so that traffic reaches it only when it is ready and it is restarted when it hangs)")
    assert st["details"]["name"] == "web" and st["details"]["group"] == "apps"
    assert st["details"]["kind"] == "deployments"
    assert [(c["reason"], c["field"]) for c in st["details"]["causes"]] == [
        ("latest-tag", "spec.template.spec.containers[0].image"),
        ("no-limits", "spec.template.spec.containers[0].resources.limits"),
        ("no-probes", "spec.template.spec.containers[0].readinessProbe")]
    assert warnings(r) == []
    assert (await api.get(deps("prod") + "/web")).status == 404
    # dry-run is refused the same way
    assert (await api.post(deps("prod") + "?dryRun=All", json=deployment())).status == 403
    # a compliant one is let in
    dep = deployment("ok")
    dep["spec"]["template"]["spec"]["containers"] = [GOOD]
    assert (await api.post(deps("prod"), json=dep)).status == 201


async def test_off_silences_and_kube_system_is_exempt(api: TestClient) -> None:
    await namespace(api, "quiet", "off")
    r = await api.post(deps("quiet"), json=deployment())
    assert r.status == 201 and warnings(r) == []
    r = await api.post(deps("kube-system"), json=deployment())
    assert r.status == 201 and warnings(r) == []


async def test_a_label_that_names_no_mode_is_refused(api: TestClient) -> None:
    r = await api.post(NS, json={"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": "typo", "labels": {"k8py.io/policy": "enforcing"}}})
    assert r.status == 422
    st = await r.json()
    assert st["message"] == ('Namespace "typo" is invalid: metadata.labels[k8py.io/policy]: Unsupported value: '
                             '"enforcing": supported values: "enforce", "off", "warn"')
    assert st["details"]["causes"][0]["field"] == "metadata.labels[k8py.io/policy]"
    assert (await api.get(f"{NS}/typo")).status == 404
    await namespace(api, "fine")
    ns = await (await api.get(f"{NS}/fine")).json()
    ns["metadata"]["labels"]["k8py.io/policy"] = "strict"
    assert (await api.put(f"{NS}/fine", json=ns)).status == 422


async def test_bare_pods_warn_and_controlled_ones_do_not(api: TestClient) -> None:
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"}, "spec": {"containers": [GOOD]}}
    r = await api.post(pods("default"), json=bare)
    assert r.status == 201
    assert warnings(r) == [('299 - "metadata.ownerReferences: pod \\"bare\\" is not managed by a controller (run it '
                           'from a Deployment, StatefulSet, DaemonSet or Job, which re-create it when it or its node '
                           'fails)"')]
    owned = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "owned", "ownerReferences": [
                 {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": True}]},
             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    r = await api.post(pods("default"), json=owned)
    assert r.status == 201 and warnings(r) == []  # its controller's template was checked
    # in an enforcing namespace a controlled pod is checked too (not for bare-pod)
    await namespace(api, "strict", "enforce")
    r = await api.post(pods("strict"), json=owned)
    assert r.status == 403
    st = await r.json()
    assert st["message"].startswith('pods "owned" is forbidden: violates k8py policy "enforce": spec.containers[0] '
                                    '(c): image "busybox" has no tag, so it means :latest')
    assert "bare-pod" not in [c["reason"] for c in st["details"]["causes"]]
    owned["metadata"]["name"] = "owned-good"
    owned["spec"]["containers"] = [GOOD]
    assert (await api.post(pods("strict"), json=owned)).status == 201


async def test_updates_are_checked_only_when_the_pod_spec_changes(api: TestClient) -> None:
    await namespace(api, "later")
    r = await api.post(deps("later"), json=deployment())
    assert r.status == 201 and len(warnings(r)) == 3
    # the namespace starts enforcing after the deployment was made
    ns = await (await api.get(f"{NS}/later")).json()
    ns["metadata"]["labels"]["k8py.io/policy"] = "enforce"
    assert (await api.put(f"{NS}/later", json=ns)).status == 200
    p = plugin(api)
    await until(lambda: p.modes.get("later") == "enforce", "the label change")
    # scaling, labels and status do not touch the pod spec: they pass, without warnings
    r = await api.patch(deps("later") + "/web", json={"spec": {"replicas": 3}, "metadata": {"labels": {"a": "b"}}},
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200 and warnings(r) == []
    r = await api.patch(deps("later") + "/web/scale", json={"spec": {"replicas": 2}},
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    r = await api.patch(deps("later") + "/web/status", json={"status": {"observedGeneration": 1}},
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    # a change of the pod spec is checked
    r = await api.patch(deps("later") + "/web", json={"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": "nginx:1.27"}]}}}}, headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status == 403, await r.text()
    assert "no memory or CPU limit" in (await r.json())["message"]
    # in warn mode an update that changes the pod spec warns
    await namespace(api, "warned")
    assert (await api.post(deps("warned"), json=deployment())).status == 201
    r = await api.patch(deps("warned") + "/web", json={"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": "nginx:1.27"}]}}}}, headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status == 200
    assert [w.split(" (nginx): ")[1].split(" (")[0] for w in warnings(r)] == [
        "no memory or CPU limit", "no readinessProbe and no livenessProbe"]


async def test_the_configmap_tunes_the_policy_through_the_watch(api: TestClient,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    p = plugin(api)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k8py-policy", "namespace": "kube-system"},
          "data": {"checks": "*,-no-probes,-no-limits", "exemptNamespaces": "kube-system,legacy"}}
    r = await api.post(CMS, json=cm)
    assert r.status == 201 and warnings(r) == []
    await until(lambda: "no-probes" not in p.policy.checks, "the policy ConfigMap to load")
    r = await api.post(deps("default"), json=deployment("tuned"))
    assert [w.split(" (nginx): ")[1][:30] for w in warnings(r)] == ['image \\"nginx:latest\\" uses th']
    await namespace(api, "legacy")
    r = await api.post(deps("legacy"), json=deployment())
    assert r.status == 201 and warnings(r) == []
    # the default mode: enforce where no label says otherwise
    cm = await (await api.get(f"{CMS}/k8py-policy")).json()
    cm["data"] = {"mode": "enforce"}
    assert (await api.put(f"{CMS}/k8py-policy", json=cm)).status == 200
    await until(lambda: p.policy.mode == "enforce", "the default mode")
    assert (await api.post(deps("default"), json=deployment("refused"))).status == 403
    await namespace(api, "relaxed", "warn")
    assert (await api.post(deps("relaxed"), json=deployment())).status == 201
    # a malformed ConfigMap: warnings on the write, a log line naming each key, defaults kept
    cm = await (await api.get(f"{CMS}/k8py-policy")).json()
    cm["data"] = {"mode": "enforcing", "checks": "-no-probes", "colour": "blue"}
    with caplog.at_level(logging.WARNING, logger="k8py.apiserver.admission.seedpolicy"):
        r = await api.put(f"{CMS}/k8py-policy", json=cm)
        assert r.status == 200
        assert warnings(r) == [
            ('299 - "kube-system/k8py-policy: data[colour]: Unsupported value: \\"colour\\": supported values: '
            '\\"checks\\", \\"exemptNamespaces\\", \\"mode\\", \\"secretEnvNames\\" (this key keeps its default)"'),
            ('299 - "kube-system/k8py-policy: data[mode]: Unsupported value: \\"enforcing\\": supported values: '
            '\\"enforce\\", \\"off\\", \\"warn\\" (this key keeps its default)"')]
        await until(lambda: p.policy.mode == "warn" and "no-probes" not in p.policy.checks, "the malformed policy")
    logged = [rec.getMessage() for rec in caplog.records]
    assert any("data[mode]: Unsupported value" in m and "k8py-policy" in m for m in logged), logged
    assert any("data[colour]" in m for m in logged), logged
    # deleting it brings back every default
    assert (await api.delete(f"{CMS}/k8py-policy")).status == 200
    await until(lambda: p.policy.checks == frozenset(("latest-tag", "no-limits", "no-probes", "bare-pod",
                                                      "plain-env-secret")), "the defaults")
    r = await api.post(deps("default"), json=deployment("again"))
    assert r.status == 201 and len(warnings(r)) == 3


async def test_the_policy_is_loaded_before_serving(tmp_path: Any) -> None:
    """A namespace labelled before the server starts enforces from the first request."""
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store)
    await cp.bootstrap()
    ns_kind = cp.registry.by_resource("", "v1", "namespaces")
    assert ns_kind is not None
    await cp.objects.create(ns_kind, {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": "early", "labels": {"k8py.io/policy": "enforce"}}})
    tasks = await cp.api.admission.start()
    try:
        p = cp.api.admission.plugin("K8pySeedPolicy")
        assert isinstance(p, SeedPolicy) and p.synced.is_set()
        assert p.mode_of("early") == "enforce" and p.mode_of("default") == "warn" and p.mode_of("kube-system") == "off"
    finally:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await store.close()


async def test_a_namespace_that_starts_enforcing_names_what_already_violates(api: TestClient) -> None:
    await namespace(api, "team")
    assert (await api.post(deps("team"), json=deployment("web"))).status == 201
    clean = deployment("clean")
    clean["spec"]["template"]["spec"]["containers"] = [GOOD]
    assert (await api.post(deps("team"), json=clean)).status == 201
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"}, "spec": {"containers": [GOOD]}}
    assert (await api.post(pods("team"), json=bare)).status == 201
    owned = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "owned", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": True}]},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert (await api.post(pods("team"), json=owned)).status == 201
    ns = await (await api.get(f"{NS}/team")).json()
    ns["metadata"]["labels"]["k8py.io/policy"] = "enforce"
    r = await api.put(f"{NS}/team", json=ns)
    assert r.status == 200
    assert [w[len('299 - "'):-1].replace('\\"', '"') for w in warnings(r)] == [
        ('existing objects in namespace "team" violate the k8py policy it now enforces (their next changes and new '
        "pods will be refused; kubectl apply --dry-run=server shows why)"),
        'pods "bare": bare-pod',
        'deployments.apps "web": latest-tag, no-limits, no-probes']
    # no change of mode, no warnings; a relaxed mode neither
    ns = await (await api.get(f"{NS}/team")).json()
    ns["metadata"]["labels"]["other"] = "x"
    r = await api.put(f"{NS}/team", json=ns)
    assert r.status == 200 and warnings(r) == []
    ns = await (await api.get(f"{NS}/team")).json()
    ns["metadata"]["labels"]["k8py.io/policy"] = "warn"
    r = await api.put(f"{NS}/team", json=ns)
    assert r.status == 200 and warnings(r) == []


async def test_a_replicaset_made_before_the_namespace_enforced_gets_failed_creates() -> None:
    """Pods a controller creates are checked in an enforcing namespace: a ReplicaSet written in
    warn mode keeps its pods, but its new ones are refused and the refusal is a FailedCreate event."""
    from tests.helpers.cluster import InProcessCluster

    async with InProcessCluster(controllers=["replicaset"]) as c:
        tasks = await c.cp.api.admission.start()
        try:
            await c.client.create(("v1", "Namespace"), {"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": "team"}})
            rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
            await c.client.create(("apps/v1", "ReplicaSet"), rs, "team")

            async def pods() -> list[Any]:
                return list((await c.client.list(("v1", "Pod"), "team"))["items"])

            async def one_pod() -> bool:
                return len(await pods()) == 1

            await c.until(one_pod, what="the ReplicaSet's pod (warn mode: controllers' pods pass)")
            await c.client.patch(("v1", "Namespace"), "team", {"metadata": {"labels": {"k8py.io/policy": "enforce"}}})
            p = c.cp.api.admission.plugin("K8pySeedPolicy")
            assert isinstance(p, SeedPolicy)
            await until(lambda: p.mode_of("team") == "enforce", "the label")
            await c.client.patch(("apps/v1", "ReplicaSet"), "web", {"spec": {"replicas": 2}}, "team")

            async def failed_create() -> list[str]:
                evs = (await c.client.list(("v1", "Event"), "team"))["items"]
                return [e["message"] for e in evs if e["reason"] == "FailedCreate"]

            msgs = await c.until(failed_create, what="a FailedCreate event")
            assert msgs[0].startswith('Error creating: pods "web-'), msgs
            assert ('is forbidden: violates k8py policy "enforce": spec.containers[0] (c): image "busybox" has no tag, '
                    "so it means :latest") in msgs[0], msgs
            assert "bare-pod" not in msgs[0] and len(await pods()) == 1
        finally:
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t


def test_warning_text_keeps_printable_warnings_and_cleans_the_rest() -> None:
    from k8py.apiserver.rest import MAX_WARNING_LEN, warning_text

    w = 'spec.containers[0] (c): image "nginx" has no tag \\ é'
    assert warning_text(w) == 'spec.containers[0] (c): image \\"nginx\\" has no tag \\\\ é'
    assert warning_text("a\x01b\nc\td") == "a b c d"
    long = "é" * MAX_WARNING_LEN  # two bytes each: cut at 4 KiB of UTF-8, on a character boundary
    assert len(warning_text(long).encode()) == MAX_WARNING_LEN and warning_text(long) == "é" * (MAX_WARNING_LEN // 2)
    assert warning_text("x" * MAX_WARNING_LEN) == "x" * MAX_WARNING_LEN
