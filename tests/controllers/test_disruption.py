"""The disruption controller: PodDisruptionBudget status from pods and their controllers' scale.

Unit tests drive ``reconcile`` on a fake clock against the tiny in-memory API of the node
lifecycle tests; in-process tests run it with the ReplicaSet and Deployment controllers and a
fake node, and evict through the real API."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.controllers.test_nodelifecycle import FakeApi, make_ctx
from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import TooManyRequestsError
from k8py.controllers.base import rfc3339
from k8py.controllers.disruption import (
    DEPLOYMENT,
    PDB,
    POD,
    RC,
    RS,
    STALE_POD_PREFIX,
    STATEFULSET,
    DisruptionController,
    build_disrupted_pods,
    conditions_up_to_date,
    count_healthy,
)

Obj = dict[str, Any]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.events.append((obj.get("kind", ""), type_, reason, message))

    def reasons(self) -> list[str]:
        return [e[2] for e in self.events]


def setup() -> tuple[DisruptionController, FakeApi, Any, Recorder]:
    ctx, api, clock = make_ctx({})
    rec = Recorder()
    ctx.recorder = rec  # type: ignore[assignment]
    return DisruptionController(ctx), api, clock, rec


def ts(t: float) -> str:
    return rfc3339(dt.datetime.fromtimestamp(t, dt.UTC))


def pod(name: str, *, ready: bool = True, labels: dict[str, str] | None = None, owner: Obj | None = None,
        deleting: bool = False, phase: str = "Running") -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "labels": labels or {"app": "web"}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                    "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2023-11-14T22:13:20Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(name: str = "web", *, min_available: int | str | None = None, max_unavailable: int | str | None = None,
        selector: Obj | None = None, status: Obj | None = None, generation: int = 1) -> Obj:
    spec: Obj = {"selector": selector if selector is not None else {"matchLabels": {"app": "web"}}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "default", "generation": generation}, "spec": spec,
            "status": status or {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                                 "expectedPods": 0}}


def workload(kind: tuple[str, str], name: str, replicas: int, uid: str, owner: Obj | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "uid": uid}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                    "controller": True}]
    return {"apiVersion": kind[0], "kind": kind[1], "metadata": meta, "spec": {"replicas": replicas}}


def drain(ctl: DisruptionController) -> set[str]:
    """The keys queued now (taken and marked done)."""
    q = ctl.controller.queue
    keys = set()
    while (k := q.get_nowait()) is not None:
        keys.add(k)
        q.done(k)
    return keys


def status_of(api: FakeApi, name: str = "web") -> Obj:
    obj = api.get_obj(PDB, name, "default")
    assert obj is not None
    return obj["status"]  # type: ignore[no-any-return]


def condition(st: Obj) -> Obj:
    return next(c for c in st.get("conditions") or () if c["type"] == "DisruptionAllowed")


# -- pure helpers -------------------------------------------------------------------------------------

def test_disrupted_pod_map_and_healthy_count() -> None:
    now = 1_700_000_000.0
    pods = [pod("a"), pod("b"), pod("c", deleting=True), pod("d", ready=False)]
    disrupted = {"a": ts(now - 30), "b": ts(now - 200), "c": ts(now - 10), "gone": ts(now - 5)}
    kept, recheck, expired = build_disrupted_pods(pods, disrupted, now)
    # a: recent, kept; b: expired without its deletion starting; c: being deleted; gone: no such pod
    assert kept == {"a": disrupted["a"]} and recheck == now - 30 + 120
    assert [p["metadata"]["name"] for p in expired] == ["b"]
    # a is about to go and c is going: only b counts (d is not ready)
    assert count_healthy(pods, kept, now) == 1


# -- reconcile ------------------------------------------------------------------------------------------

async def test_min_available_number_counts_matching_pods() -> None:
    ctl, api, _, rec = setup()
    for n in ("a", "b", "c"):
        api.put(POD, pod(n))
    api.put(POD, pod("x", labels={"app": "other"}))
    api.put(PDB, pdb(min_available=2))
    assert await ctl.reconcile("default/web") is None
    st = status_of(api)
    assert {k: st[k] for k in ("expectedPods", "desiredHealthy", "currentHealthy", "disruptionsAllowed",
                               "observedGeneration")} == {"expectedPods": 3, "desiredHealthy": 2,
                                                          "currentHealthy": 3, "disruptionsAllowed": 1,
                                                          "observedGeneration": 1}
    c = condition(st)
    assert c["status"] == "True" and c["reason"] == "SufficientPods" and c["observedGeneration"] == 1
    assert "UnmanagedPods" not in rec.reasons()  # a number needs no controllers
    # level-based: nothing changed, nothing written
    writes = len(api.writes)
    assert await ctl.reconcile("default/web") is None
    assert len(api.writes) == writes
    # a pod stops being ready: no disruption allowed any more
    api.put(POD, pod("b", ready=False))
    await ctl.reconcile("default/web")
    st = status_of(api)
    assert st["currentHealthy"] == 2 and st["disruptionsAllowed"] == 0
    assert condition(st)["reason"] == "InsufficientPods" and condition(st)["status"] == "False"


async def test_max_unavailable_percent_uses_the_deployment_scale() -> None:
    ctl, api, _, _ = setup()
    d = api.put(DEPLOYMENT, workload(DEPLOYMENT, "web", 4, "d-uid"))
    rs = api.put(RS, workload(RS, "web-abc", 4, "rs-uid", owner=d))
    for n in ("a", "b", "c"):
        api.put(POD, pod(n, owner=rs))
    api.put(POD, pod("d", owner=rs, ready=False))
    api.put(PDB, pdb(max_unavailable="25%"))
    await ctl.reconcile("default/web")
    st = status_of(api)
    # 4 expected; 25% of 4 rounded up is 1 unavailable: 3 must be healthy, 3 are
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == (4, 3, 3, 0)
    # scaling the Deployment up requeues the PDB and moves the expectation
    drain(ctl)
    ctl.deployments._updated(d, api.put(DEPLOYMENT, {**d, "spec": {"replicas": 8}}))
    assert drain(ctl) == {"default/web"}
    await ctl.reconcile("default/web")
    st = status_of(api)
    assert (st["expectedPods"], st["desiredHealthy"]) == (8, 6)


async def test_min_available_percent_with_statefulset_and_rc() -> None:
    ctl, api, _, _ = setup()
    ss = api.put(STATEFULSET, workload(STATEFULSET, "db", 3, "ss-uid"))
    rc = api.put(RC, workload(RC, "legacy", 2, "rc-uid"))
    for n in ("db-0", "db-1", "db-2"):
        api.put(POD, pod(n, owner=ss))
    api.put(POD, pod("legacy-x", owner=rc))
    api.put(PDB, pdb(min_available="50%"))
    await ctl.reconcile("default/web")
    st = status_of(api)
    # 3 + 2 expected; 50% of 5 rounded up is 3
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == (5, 3, 4, 1)


async def test_unmanaged_pods_event_and_no_budget() -> None:
    ctl, api, _, rec = setup()
    api.put(POD, pod("a"))
    api.put(POD, pod("b"))
    api.put(PDB, pdb(max_unavailable=1))
    await ctl.reconcile("default/web")
    st = status_of(api)
    assert st["expectedPods"] == 0 and st["disruptionsAllowed"] == 0 and st["currentHealthy"] == 2
    assert ("PodDisruptionBudget", "Warning", "UnmanagedPods") in {e[:3] for e in rec.events}
    msg = next(e[3] for e in rec.events if e[2] == "UnmanagedPods")
    assert "(selector: app=web)" in msg and '".spec.minAvailable"' in msg


async def test_no_pods_event_and_nil_selector() -> None:
    ctl, api, _, rec = setup()
    api.put(POD, pod("a"))
    p = pdb(min_available=1)
    del p["spec"]["selector"]  # nil selects nothing
    api.put(PDB, p)
    await ctl.reconcile("default/web")
    assert "NoPods" in rec.reasons()
    assert status_of(api)["expectedPods"] == 0


async def test_disrupted_pods_are_not_counted_until_they_expire() -> None:
    ctl, api, clock, rec = setup()
    for n in ("a", "b", "c"):
        api.put(POD, pod(n))
    now = clock.wall()
    api.put(PDB, pdb(min_available=1, status={"observedGeneration": 1, "disruptionsAllowed": 1,
                                              "currentHealthy": 3, "desiredHealthy": 1, "expectedPods": 3,
                                              "disruptedPods": {"a": ts(now - 20), "gone": ts(now - 1)}}))
    res = await ctl.reconcile("default/web")
    assert res is not None and res.requeue_after is not None and 99 <= res.requeue_after <= 101
    st = status_of(api)
    assert st["disruptedPods"] == {"a": ts(now - 20)}  # the deleted pod's entry is dropped
    assert st["currentHealthy"] == 2 and st["disruptionsAllowed"] == 1
    # two minutes on, "a" was never deleted: it counts again, with an event saying so
    clock.advance(101)
    assert await ctl.reconcile("default/web") is None
    st = status_of(api)
    assert "disruptedPods" not in st and st["currentHealthy"] == 3 and st["disruptionsAllowed"] == 2
    assert ("Pod", "Warning", "NotDeleted") in {e[:3] for e in rec.events}


async def test_generation_change_is_observed() -> None:
    ctl, api, _, _ = setup()
    api.put(POD, pod("a"))
    api.put(PDB, pdb(min_available=1))
    await ctl.reconcile("default/web")
    cur = api.get_obj(PDB, "web", "default")
    assert cur is not None
    assert conditions_up_to_date(cur)
    cur["metadata"]["generation"] = 2
    cur["spec"]["minAvailable"] = 0
    api.put(PDB, cur)
    await ctl.reconcile("default/web")
    st = status_of(api)
    assert st["observedGeneration"] == 2 and st["disruptionsAllowed"] == 1
    assert condition(st)["observedGeneration"] == 2


async def test_pod_events_enqueue_every_matching_pdb() -> None:
    ctl, api, _, _ = setup()
    api.put(PDB, pdb("one", min_available=1))
    api.put(PDB, pdb("two", min_available=1, selector={}))
    api.put(PDB, pdb("three", min_available=1, selector={"matchLabels": {"app": "db"}}))
    drain(ctl)
    ctl.pods._added(api.put(POD, pod("a")))
    assert drain(ctl) == {"default/one", "default/two"}


async def test_stale_disruption_target_condition_is_reset() -> None:
    ctl, api, clock, _ = setup()
    p = pod("a")
    p["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                                      "message": "Eviction API: evicting", "lastTransitionTime": ts(clock.wall())})
    api.put(POD, p)
    key = STALE_POD_PREFIX + "default/a"
    res = await ctl.reconcile(key)
    assert res is not None and res.requeue_after == 120
    clock.advance(120)
    assert await ctl.reconcile(key) is None
    got = api.get_obj(POD, "a", "default")
    assert got is not None
    cond = next(c for c in got["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert cond["status"] == "False" and "reason" not in cond


# -- in a cluster ----------------------------------------------------------------------------------------

def deployment(name: str, replicas: int) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 0,
                                           "containers": [{"name": "c", "image": "nginx"}]}}}}


def eviction(name: str) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}}


async def test_budget_guards_evictions_of_a_deployment() -> None:
    async with InProcessCluster(controllers=["replicaset", "deployment", "disruption"]) as c:
        await c.add_node("node-1")
        await c.client.create(DEPLOYMENT, deployment("web", 3), "default")
        await c.client.create(PDB, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                    "metadata": {"name": "web"},
                                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
                              "default")

        async def status() -> Obj:
            return (await c.client.get(PDB, "web", "default")).get("status") or {}

        async def settled() -> bool:
            st = await status()
            return (st.get("expectedPods"), st.get("currentHealthy"), st.get("disruptionsAllowed"),
                    st.get("observedGeneration")) == (3, 3, 1, 1)

        await c.until(settled, timeout=15, what="PDB status 3 expected, 3 healthy, 1 allowed")
        st = await status()
        assert st["desiredHealthy"] == 2 and condition(st)["reason"] == "SufficientPods"

        pods = [p["metadata"]["name"] for p in (await c.client.list(POD, "default"))["items"]]
        # two evictions at once: the budget lets exactly one through
        results = await asyncio.gather(*(c.client.create(POD, eviction(n), "default", subresource="eviction", name=n)
                                         for n in pods[:2]), return_exceptions=True)
        ok = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, TooManyRequestsError)]
        assert len(ok) == 1 and len(refused) == 1, results
        assert ok[0]["status"] == "Success"
        assert refused[0].details["causes"][0]["reason"] == "DisruptionBudget"

        # the ReplicaSet replaces the evicted pod; once it is ready the budget is back
        async def recovered() -> bool:
            st = await status()
            return st.get("currentHealthy") == 3 and st.get("disruptionsAllowed") == 1 and \
                not st.get("disruptedPods")

        await c.until(recovered, timeout=15, what="budget back after the replacement is ready")
        left = [p["metadata"]["name"] for p in (await c.client.list(POD, "default"))["items"]]
        assert len(left) == 3 and len(set(pods) & set(left)) == 2


async def test_pods_whose_controller_has_no_scale_fail_safe() -> None:
    async with InProcessCluster(controllers=["disruption"]) as c:
        job = await c.client.create(("batch/v1", "Job"), {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox"}]}}}}, "default")
        p = pod("j-1", owner=job)
        del p["status"]
        p["metadata"]["labels"] = {"app": "batch"}
        await c.client.create(POD, p, "default")
        await c.client.create(PDB, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                    "metadata": {"name": "batch"},
                                    "spec": {"maxUnavailable": "10%",
                                             "selector": {"matchLabels": {"app": "batch"}}}}, "default")

        async def failed() -> Obj | None:
            st = (await c.client.get(PDB, "batch", "default")).get("status") or {}
            cond = next((x for x in st.get("conditions") or () if x["type"] == "DisruptionAllowed"), None)
            return cond if cond and cond["reason"] == "SyncFailed" else None

        cond = await c.until(failed, timeout=10, what="SyncFailed condition")
        assert cond["status"] == "False"
        assert cond["message"] == "jobs.batch does not implement the scale subresource"


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_drain_waits_for_the_budget(tmp_path: Path) -> None:
    """Real ``kubectl drain`` against the in-process API: its evictions are refused with 429 while
    the budget is spent and retried until the replacement is ready."""
    async with InProcessCluster(controllers=["replicaset", "deployment", "disruption"]) as c:
        await c.add_node("node-1")
        await c.client.create(DEPLOYMENT, deployment("web", 2), "default")
        await c.client.create(PDB, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                    "metadata": {"name": "web"},
                                    "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
                              "default")

        async def settled() -> bool:
            st = (await c.client.get(PDB, "web", "default")).get("status") or {}
            return st.get("currentHealthy") == 2 and st.get("disruptionsAllowed") == 1

        await c.until(settled, timeout=15, what="budget of 1")
        before = {p["metadata"]["name"] for p in (await c.client.list(POD, "default"))["items"]}
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: c, cluster: {{server: '{c.url}'}}}}]\n"
            "users: [{name: u, user: {}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "drain", "node-1", "--ignore-daemonsets", "--timeout=25s", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 30)
        out, err = out_b.decode(), err_b.decode()
        assert proc.returncode == 0, f"stdout: {out}\nstderr: {err}"
        for name in before:
            assert f"pod/{name} evicted" in out
        assert "node/node-1 drained" in out
        # the second eviction waited for the first pod's replacement
        assert "Cannot evict pod as it would violate the pod's disruption budget." in err
        node = await c.client.get(("v1", "Node"), "node-1")
        assert node["spec"].get("unschedulable") is True
        left = {p["metadata"]["name"] for p in (await c.client.list(POD, "default"))["items"]}
        assert not left & before
