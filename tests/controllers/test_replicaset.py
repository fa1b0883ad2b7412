"""ReplicaSet and ReplicationController controllers.

Unit tests drive ``reconcile`` against a fake API (in memory, with watch events the test can
hold back to play a stale cache) and a fake clock; integration tests run the controller manager
against an in-process API server with a FakeNode playing kubelet and scheduler.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Self

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client.clock import FakeClock
from k8py.client.errors import api_error
from k8py.client.fake import FakeClient, status_error
from k8py.client.informer import SharedInformerFactory
from k8py.controllers.base import ControllerContext, rfc3339
from k8py.controllers.podcontrol import controller_ref
from k8py.controllers.replicaset import ReplicaSetController, ReplicationControllerController

Obj = dict[str, Any]
POD = ("v1", "Pod")
RS = ("apps/v1", "ReplicaSet")
RC = ("v1", "ReplicationController")
EVENT = ("v1", "Event")


# ---------------------------------------------------------------------------------------------
# a fake API: objects in memory, watch events the test may hold back


class FakeApi(FakeClient):
    """The shared fake API (``k8py.client.fake``) with what a kubelet would write to a pod."""

    def set_pod(self, name: str, *, ready: bool | None = None, since: float | None = None,
                phase: str | None = None, node: str | None = None, labels: dict[str, str] | None = None) -> None:
        p = self.stored(POD, name)
        if node is not None:
            p.setdefault("spec", {})["nodeName"] = node
        st = p.setdefault("status", {})
        if phase is not None:
            st["phase"] = phase
        if ready is not None:
            t = self.clock.wall() if since is None else since
            st["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": rfc3339(dt.datetime.fromtimestamp(t, dt.UTC))}]
        if labels is not None:
            p["metadata"]["labels"] = labels
        self.touch(POD, name)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.seen.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.seen]


class Harness:
    def __init__(self, cls: type[ReplicaSetController] = ReplicaSetController, **options: Any) -> None:
        self.clock = FakeClock()
        self.api = FakeApi(self.clock)
        self.events = Events()
        self.factory = SharedInformerFactory(self.api, clock=self.clock)
        self.ctx = ControllerContext(self.api, self.factory, self.clock, self.events, options)  # type: ignore[arg-type]
        self.ctrl = cls(self.ctx)

    async def __aenter__(self) -> Self:
        self.factory.start()
        assert await self.factory.wait_for_cache_sync(5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.factory.shutdown()

    async def settle(self) -> None:
        """Let the informers take in every event sent so far (no time passes)."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def sync(self, key: str = "default/web") -> Any:
        await self.settle()
        res = await self.ctrl.reconcile(key)
        await self.settle()
        return res

    def queued(self) -> set[str]:
        out = set()
        while (k := self.ctrl.controller.queue.get_nowait()) is not None:
            out.add(k)
            self.ctrl.controller.queue.done(k)
        return out

    def pods(self, active: bool = True) -> list[Obj]:
        ps = self.api.all(POD)
        return [p for p in ps if not p["metadata"].get("deletionTimestamp")] if active else ps

    def status(self, name: str = "web", kind: Any = RS) -> Obj:
        return dict(self.api.stored(kind, name).get("status") or {})


def rs_obj(name: str = "web", replicas: int = 3, labels: dict[str, str] | None = None, min_ready: int = 0) -> Obj:
    labels = labels or {"app": name}
    spec: Obj = {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


def orphan(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


# ---------------------------------------------------------------------------------------------
# unit tests of reconcile


async def test_creates_missing_pods_once_until_the_cache_catches_up() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj(replicas=3))
        await h.settle()
        h.api.hold()  # the informer does not see the new pods yet
        assert await h.ctrl.reconcile("default/web") is None
        assert [w[:2] for w in h.api.writes] == [("create", "Pod")] * 3 + [("update_status", "ReplicaSet")]
        pods = h.pods()
        assert all(p["metadata"]["generateName"] == "web-" and p["metadata"]["labels"] == {"app": "web"}
                   and controller_ref(p)["uid"] == h.api.stored(RS, "web")["metadata"]["uid"]  # type: ignore[index]
                   for p in pods)
        assert h.ctrl.expectations.get("default/web") == (3, 0)
        # a sync on the stale cache must not create again
        h.api.writes.clear()
        await h.ctrl.reconcile("default/web")
        assert [w for w in h.api.writes if w[0] == "create"] == []
        h.api.release()
        await h.settle()
        assert h.ctrl.expectations.satisfied("default/web")
        assert "default/web" in h.queued()
        await h.sync()
        assert len(h.pods()) == 3 and [w for w in h.api.writes if w[0] == "create"] == []
        assert h.status() == {"replicas": 3, "terminatingReplicas": 0, "fullyLabeledReplicas": 3,
                              "observedGeneration": 1}
        assert h.events.seen == [("Normal", "SuccessfulCreate", f"Created pod: {p['metadata']['name']}")
                                 for p in pods]


async def test_burst_limit_and_slow_start() -> None:
    async with Harness(burst_replicas=10) as h:
        h.api.seed(rs_obj(replicas=25))
        await h.sync()
        assert len(h.pods()) == 10  # at most burst_replicas per sync
        await h.sync()
        await h.sync()
        assert len(h.pods()) == 25


async def test_create_failure_stops_slow_start_and_sets_replica_failure() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj(replicas=5))
        h.api.fail[("create", "Pod")] = status_error(403, "Forbidden", 'pods "web-" is forbidden: exceeded quota')
        res = await h.sync()
        assert res is not None and res.requeue  # retried with backoff
        assert [w[0] for w in h.api.writes].count("create") == 1  # the first batch failed: no more tries
        assert h.ctrl.expectations.satisfied("default/web")  # the failed create is not waited for
        cond = h.status()["conditions"]
        assert [(c["type"], c["status"], c["reason"], c["message"]) for c in cond] == [
            ("ReplicaFailure", "True", "FailedCreate", 'pods "web-" is forbidden: exceeded quota')]
        assert h.events.seen == [("Warning", "FailedCreate",
                                  'Error creating: pods "web-" is forbidden: exceeded quota')]
        # the quota is lifted: pods are created and the condition goes away
        del h.api.fail[("create", "Pod")]
        await h.sync()
        assert len(h.pods()) == 5 and "conditions" not in h.status()


async def test_namespace_terminating_is_not_a_failure() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj(replicas=2))
        err = api_error({"kind": "Status", "code": 403, "reason": "Forbidden", "message": "being terminated",
                         "details": {"causes": [{"reason": "NamespaceTerminating"}]}})
        h.api.fail[("create", "Pod")] = err
        assert await h.sync() is None
        assert "conditions" not in h.status() and h.events.seen == []


async def test_scale_down_deletes_the_least_useful_pods() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj(replicas=5))
        await h.sync()
        names = sorted(p["metadata"]["name"] for p in h.pods())
        # two ready for long, one ready recently, one pending unscheduled, one running not ready
        h.api.set_pod(names[0], node="n1", phase="Running", ready=True, since=h.clock.wall() - 5000)
        h.api.set_pod(names[1], node="n1", phase="Running", ready=True, since=h.clock.wall() - 5000)
        h.api.set_pod(names[2], node="n1", phase="Running", ready=True, since=h.clock.wall() - 5)
        h.api.set_pod(names[3], phase="Pending")
        h.api.set_pod(names[4], node="n1", phase="Running", ready=False)
        await h.sync()
        assert h.status()["readyReplicas"] == 3
        rs = h.api.stored(RS, "web")
        rs["spec"]["replicas"] = 2
        rs["metadata"]["generation"] = 2
        h.api.seed(rs)
        await h.settle()
        h.api.writes.clear()
        h.api.graceful_pods = True
        h.api.hold()
        await h.ctrl.reconcile("default/web")
        deleted = sorted(n for v, _, n in h.api.writes if v == "delete")
        assert deleted == sorted([names[3], names[4], names[2]])
        assert sorted(h.events.reasons()).count("SuccessfulDelete") == 3
        assert not h.ctrl.expectations.satisfied("default/web")
        h.api.release()  # the deletionTimestamps arrive: deletions observed, once each
        await h.settle()
        assert h.ctrl.expectations.satisfied("default/web")
        await h.sync()
        st = h.status()
        assert st["replicas"] == 2 and st["terminatingReplicas"] == 3 and st["observedGeneration"] == 2
        # the node finishes them; the deletes count no more
        for n in deleted:
            h.api.graceful_pods = False
            await h.api.delete(POD, n, "default")
        await h.sync()
        assert h.status()["terminatingReplicas"] == 0 and h.ctrl.expectations.get("default/web") == (0, 0)


async def test_deleted_and_finished_pods_are_replaced() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj(replicas=2))
        await h.sync()
        a, b = sorted(p["metadata"]["name"] for p in h.pods())
        h.api.set_pod(a, phase="Failed")
        await h.api.delete(POD, b, "default")
        await h.settle()
        assert "default/web" in h.queued()
        await h.sync()
        assert h.status()["replicas"] == 0  # counted before this sync's creates were seen, as kube does
        await h.sync()
        active = [p for p in h.pods() if (p.get("status") or {}).get("phase") != "Failed"]
        assert len(active) == 2 and h.status()["replicas"] == 2


async def test_adopts_orphans_and_releases_pods_that_stop_matching() -> None:
    async with Harness() as h:
        h.api.seed(orphan("stray"))
        h.api.seed(orphan("other-app", {"app": "db"}))
        h.api.seed(rs_obj(replicas=2))
        await h.sync()
        stray = h.api.stored(POD, "stray")
        ref = controller_ref(stray)
        assert ref is not None and ref["kind"] == "ReplicaSet" and ref["blockOwnerDeletion"] is True
        assert controller_ref(h.api.stored(POD, "other-app")) is None
        await h.sync()
        assert len(h.pods()) == 3 and h.status()["replicas"] == 2  # one adopted + one created
        # the adopted pod's labels change: released, and replaced
        h.api.set_pod("stray", labels={"app": "debug"})
        await h.settle()
        assert "default/web" in h.queued()
        await h.sync()
        assert controller_ref(h.api.stored(POD, "stray")) is None
        await h.sync()
        owned = [p for p in h.pods() if controller_ref(p) is not None]
        assert len(owned) == 2 and h.status()["replicas"] == 2


async def test_orphan_events_wake_matching_owners_only() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj("web", replicas=0))
        h.api.seed(rs_obj("db", replicas=0))
        await h.settle()
        h.queued()
        await h.api.create(POD, orphan("x", {"app": "web"}), "default")
        await h.settle()
        assert h.queued() == {"default/web"}
        h.api.set_pod("x", labels={"app": "db"})
        await h.settle()
        assert h.queued() == {"default/db"}


async def test_owner_being_deleted_neither_creates_nor_adopts() -> None:
    async with Harness() as h:
        h.api.seed(orphan("stray"))
        obj = rs_obj(replicas=3)
        obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        h.api.seed(obj)
        await h.sync()
        assert [w[0] for w in h.api.writes] == ["update_status"]
        assert controller_ref(h.api.stored(POD, "stray")) is None


async def test_adoption_rechecks_the_owner_with_a_live_read() -> None:
    async with Harness() as h:
        h.api.seed(orphan("stray"))
        h.api.seed(rs_obj(replicas=1))
        await h.settle()
        # the API already has the owner being deleted; the cache does not
        h.api.stored(RS, "web")["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        res = await h.ctrl.reconcile("default/web")
        assert res is not None and res.requeue  # retried later, by when the cache knows
        assert [w[0] for w in h.api.writes] == []
        assert controller_ref(h.api.stored(POD, "stray")) is None and h.pods()[0]["metadata"]["name"] == "stray"


async def test_available_replicas_wait_for_min_ready_seconds() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj(replicas=2, min_ready=10))
        await h.sync()
        a, b = sorted(p["metadata"]["name"] for p in h.pods())
        now = h.clock.wall()
        h.api.set_pod(a, node="n", phase="Running", ready=True, since=now - 3)
        h.api.set_pod(b, node="n", phase="Running", ready=True, since=now - 8)
        res = await h.sync()
        st = h.status()
        assert st["readyReplicas"] == 2 and "availableReplicas" not in st
        # look again when the first one (ready 8 s ago) passes 10 s
        assert res.requeue_after == pytest.approx(2.05)
        h.clock.advance(2.1)
        res = await h.sync()
        assert h.status()["availableReplicas"] == 1 and res.requeue_after == pytest.approx(5.0, abs=0.1)
        h.clock.advance(5)
        assert await h.sync() is None and h.status()["availableReplicas"] == 2


async def test_status_is_written_only_when_it_changes_and_retried_on_conflict() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj(replicas=1))
        await h.sync()
        await h.sync()
        h.api.writes.clear()
        await h.sync()
        assert h.api.writes == []  # nothing changed: nothing written
        h.api.set_pod(h.pods()[0]["metadata"]["name"], node="n", phase="Running", ready=True)
        await h.settle()
        # the ReplicaSet changed behind the cache's back: the write conflicts, is read fresh, retried
        h.api.hold()
        h.api.stored(RS, "web")["metadata"]["resourceVersion"] = "999999"
        await h.ctrl.reconcile("default/web")
        h.api.release()
        assert [w[0] for w in h.api.writes] == ["update_status", "update_status"]
        assert h.status()["readyReplicas"] == 1


async def test_owner_deleted_forgets_expectations() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj(replicas=2))
        await h.settle()
        h.api.hold()
        await h.ctrl.reconcile("default/web")
        assert not h.ctrl.expectations.satisfied("default/web")
        h.api.release()
        await h.api.delete(RS, "web", "default")
        await h.settle()
        assert "default/web" not in h.ctrl.expectations
        assert await h.ctrl.reconcile("default/web") is None


async def test_expectations_expire_after_five_minutes() -> None:
    async with Harness() as h:
        h.api.seed(rs_obj(replicas=1))
        await h.settle()
        h.api.hold()
        await h.ctrl.reconcile("default/web")
        h.api.objects[POD].clear()  # the create was lost; no event will ever come
        h.api.drop_held()
        h.api.writes.clear()
        await h.ctrl.reconcile("default/web")
        assert [w for w in h.api.writes if w[0] == "create"] == []
        h.clock.advance(301)
        await h.ctrl.reconcile("default/web")
        assert [w[0] for w in h.api.writes if w[0] == "create"] == ["create"]


async def test_replication_controller_unit() -> None:
    async with Harness(ReplicationControllerController) as h:
        h.api.seed({"apiVersion": "v1", "kind": "ReplicationController",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"replicas": 2, "selector": {"app": "web"},
                             "template": {"metadata": {"labels": {"app": "web", "tier": "x"}},
                                          "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
        h.api.seed(orphan("stray"))
        await h.sync()
        assert controller_ref(h.api.stored(POD, "stray"))["kind"] == "ReplicationController"  # type: ignore[index]
        await h.sync()
        # the adopted pod lacks the template's tier label: not fully labeled
        assert h.status(kind=RC) == {"replicas": 2, "fullyLabeledReplicas": 1, "observedGeneration": 1}
        assert len(h.pods()) == 2


# ---------------------------------------------------------------------------------------------
# integration: controller manager + API server + FakeNode


def rs_manifest(name: str = "web", replicas: int = 3, min_ready: int = 0) -> Obj:
    obj = rs_obj(name, replicas, min_ready=min_ready)
    del obj["metadata"]["namespace"]
    return obj


async def owned_pods(c: InProcessCluster, uid: str) -> list[Obj]:
    pods = (await c.client.list(POD, "default"))["items"]
    return [p for p in pods if (controller_ref(p) or {}).get("uid") == uid
            and not p["metadata"].get("deletionTimestamp")]


async def status_is(c: InProcessCluster, kind: Any, name: str, **want: int) -> Obj | None:
    obj = await c.client.get(kind, name, "default")
    st = obj.get("status") or {}
    ok = all((st.get(k) or 0) == v for k, v in want.items())
    return obj if ok else None


@pytest.fixture
async def cluster() -> AsyncIterator[InProcessCluster]:
    async with InProcessCluster(controllers=["replicaset", "replicationcontroller"]) as c:
        await c.add_node("node-1", ready=lambda pod: True)
        yield c


async def test_replicaset_comes_up_scales_and_replaces_pods(cluster: InProcessCluster) -> None:
    c = cluster
    created = await c.client.create(RS, rs_manifest(replicas=3), "default")
    uid = created["metadata"]["uid"]
    rs = await c.until(lambda: status_is(c, RS, "web", replicas=3, fullyLabeledReplicas=3, readyReplicas=3,
                                         availableReplicas=3, observedGeneration=1), what="3 ready replicas")
    assert "conditions" not in rs["status"]
    pods = await owned_pods(c, uid)
    assert len(pods) == 3
    for p in pods:
        md = p["metadata"]
        assert md["name"].startswith("web-") and md["generateName"] == "web-" and md["labels"] == {"app": "web"}
        assert md["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": uid,
                                          "controller": True, "blockOwnerDeletion": True}]

    # scale up
    await c.client.patch(RS, "web", {"spec": {"replicas": 5}}, "default")
    await c.until(lambda: status_is(c, RS, "web", replicas=5, readyReplicas=5, availableReplicas=5,
                                    observedGeneration=2), what="scaled up to 5")
    # scale down
    await c.client.patch(RS, "web", {"spec": {"replicas": 1}}, "default")
    await c.until(lambda: status_is(c, RS, "web", replicas=1, readyReplicas=1, observedGeneration=3),
                  what="scaled down to 1")

    async def one_pod_left() -> bool:
        return len((await c.client.list(POD, "default"))["items"]) == 1

    await c.until(one_pod_left, what="surplus pods deleted")
    # a deleted pod is replaced
    victim = (await owned_pods(c, uid))[0]["metadata"]["name"]
    await c.client.delete(POD, victim, "default")

    async def replaced() -> bool:
        pods = await owned_pods(c, uid)
        return len(pods) == 1 and pods[0]["metadata"]["name"] != victim

    await c.until(replaced, what="deleted pod replaced")
    await c.until(lambda: status_is(c, RS, "web", replicas=1, readyReplicas=1, availableReplicas=1),
                  what="status back to 1 ready")

    async def events() -> list[str]:
        evs = (await c.client.list(EVENT, "default"))["items"]
        return [e["reason"] for e in evs if e["involvedObject"].get("name") == "web"]

    reasons = await c.until(lambda: _when(events(), lambda r: r.count("SuccessfulDelete") >= 4),
                            what="4 deletes recorded")
    assert "SuccessfulCreate" in reasons


async def _when(aw: Any, pred: Any) -> Any:
    v = await aw
    return v if pred(v) else None


async def test_orphan_adopted_and_relabelled_pod_released(cluster: InProcessCluster) -> None:
    c = cluster
    await c.client.create(POD, orphan("stray"), "default")
    created = await c.client.create(RS, rs_manifest(replicas=2), "default")
    uid = created["metadata"]["uid"]
    await c.until(lambda: status_is(c, RS, "web", replicas=2, readyReplicas=2), what="2 ready replicas")

    async def stray_ref() -> Obj | None:
        return controller_ref(await c.client.get(POD, "stray", "default"))

    ref = await c.until(stray_ref, what="orphan adopted")
    assert ref["uid"] == uid and ref["blockOwnerDeletion"] is True
    assert len((await c.client.list(POD, "default"))["items"]) == 2  # only one pod was created

    # relabel the adopted pod: it is released and replaced
    await c.client.patch(POD, "stray", {"metadata": {"labels": {"app": "debug"}}}, "default")

    async def released() -> bool:
        return await stray_ref() is None

    await c.until(released, what="relabelled pod released")
    await c.until(lambda: _when(owned_pods(c, uid), lambda ps: len(ps) == 2), what="replacement created")
    assert (await c.client.get(POD, "stray", "default"))["metadata"]["labels"] == {"app": "debug"}


async def test_available_replicas_honour_min_ready_seconds(cluster: InProcessCluster) -> None:
    c = cluster
    await c.client.create(RS, rs_manifest(replicas=2, min_ready=2), "default")
    # ready at once, but available only after 2 s of readiness
    await c.until(lambda: status_is(c, RS, "web", replicas=2, readyReplicas=2, availableReplicas=0),
                  what="ready but not yet available")
    await c.until(lambda: status_is(c, RS, "web", replicas=2, readyReplicas=2, availableReplicas=2),
                  timeout=8, interval=0.1, what="available after minReadySeconds")


async def test_replication_controller_works(cluster: InProcessCluster) -> None:
    c = cluster
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
          "spec": {"replicas": 2, "selector": {"app": "legacy"},
                   "template": {"metadata": {"labels": {"app": "legacy"}},
                                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    created = await c.client.create(RC, rc, "default")
    uid = created["metadata"]["uid"]
    obj = await c.until(lambda: status_is(c, RC, "legacy", replicas=2, fullyLabeledReplicas=2, readyReplicas=2,
                                          availableReplicas=2, observedGeneration=1), what="RC ready")
    assert "terminatingReplicas" not in obj["status"]
    pods = await owned_pods(c, uid)
    assert len(pods) == 2 and all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"
                                  and p["metadata"]["generateName"] == "legacy-" for p in pods)
    await c.client.patch(RC, "legacy", {"spec": {"replicas": 3}}, "default")
    await c.until(lambda: status_is(c, RC, "legacy", replicas=3, readyReplicas=3), what="RC scaled to 3")
