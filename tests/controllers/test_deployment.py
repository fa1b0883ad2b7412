"""The Deployment controller: pure helpers (hash, fenceposts, proportions, conditions) and
rollouts against an in-process API server with the ReplicaSet controller and a fake node."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
from collections import Counter
from typing import Any, Self

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client.api import Client
from k8py.client.clock import FakeClock
from k8py.controllers import deploymentutil as du

Obj = dict[str, Any]
DEP = ("apps/v1", "Deployment")
RS = ("apps/v1", "ReplicaSet")
POD = ("v1", "Pod")
EVENT = ("v1", "Event")
NS = "default"
HASH_RE = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]{1,10}$")


# ---------------------------------------------------------------------------------------------
# builders


def deployment(name: str = "web", replicas: int = 3, image: str = "nginx:1", *, app: str | None = None,
               strategy: Obj | None = None, **spec: Any) -> Obj:
    app = app or name
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     **({"strategy": strategy} if strategy else {}), **spec,
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def rs_obj(name: str, replicas: int, *, revision: int | None = None, created: str = "2024-01-01T00:00:00Z",
           available: int | None = None, max_replicas: int | None = None, desired: int | None = None,
           status_replicas: int | None = None, uid: str | None = None) -> Obj:
    ann: dict[str, str] = {}
    if revision is not None:
        ann[du.REVISION] = str(revision)
    if max_replicas is not None:
        ann[du.MAX_REPLICAS] = str(max_replicas)
    if desired is not None:
        ann[du.DESIRED_REPLICAS] = str(desired)
    st: Obj = {"replicas": replicas if status_replicas is None else status_replicas}
    st["availableReplicas"] = replicas if available is None else available
    return {"metadata": {"name": name, "uid": uid or f"uid-{name}", "creationTimestamp": created, "annotations": ann},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "x"}}}}, "status": st}


def d_obj(replicas: int, surge: int | str = "25%", unavailable: int | str = "25%", status: Obj | None = None) -> Obj:
    return {"metadata": {"name": "d", "generation": 1},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 600,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}},
            "status": status or {}}


# ---------------------------------------------------------------------------------------------
# pure helpers


def test_hash_is_short_safe_and_follows_template_and_collision_count() -> None:
    t1: Obj = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
    t2 = copy.deepcopy(t1)
    t2["spec"]["containers"][0]["image"] = "nginx:2"
    h1 = du.compute_hash(t1)
    assert HASH_RE.match(h1)
    assert du.compute_hash(copy.deepcopy(t1)) == h1  # stable
    assert du.compute_hash({"spec": t1["spec"], "metadata": t1["metadata"]}) == h1  # key order does not matter
    assert du.compute_hash(t2) != h1
    assert du.compute_hash(t1, 1) not in (h1, du.compute_hash(t1, 2))
    assert du.safe_encode("0123456789") == "".join(du.SAFE_ALPHABET[ord(c) % 27] for c in "0123456789")
    assert du.fnv32a(b"") == 0x811C9DC5 and du.fnv32a(b"a") == 0xE40C292C  # FNV-1a test vectors


def test_equal_ignore_hash() -> None:
    a = {"metadata": {"labels": {"app": "x", du.POD_TEMPLATE_HASH: "abc"}}, "spec": {"containers": []}}
    b = {"metadata": {"labels": {"app": "x"}, "annotations": {}}, "spec": {}}
    assert du.equal_ignore_hash(a, b)
    b["metadata"]["labels"]["app"] = "y"
    assert not du.equal_ignore_hash(a, b)


@pytest.mark.parametrize(("surge", "unavailable", "desired", "want"), [
    ("0%", "0%", 0, (0, 1)),
    ("39%", "39%", 10, (4, 3)),  # surge rounds up, unavailable down
    ("25%", "25%", 3, (1, 0)),
    ("25%", "25%", 4, (1, 1)),
    ("0%", "1%", 2, (0, 1)),  # both 0 after rounding: unavailable becomes 1
    (1, 0, 5, (1, 0)),
    (0, 0, 5, (0, 1)),
    (None, None, 3, (0, 1)),
    ("100%", "100%", 7, (7, 7)),
])
def test_resolve_fenceposts(surge: Any, unavailable: Any, desired: int, want: tuple[int, int]) -> None:
    assert du.resolve_fenceposts(surge, unavailable, desired) == want


def test_max_surge_and_unavailable_of_a_deployment() -> None:
    assert (du.max_surge(d_obj(10, "25%", "25%")), du.max_unavailable(d_obj(10, "25%", "25%"))) == (3, 2)
    assert du.max_unavailable(d_obj(0)) == 0
    assert du.max_unavailable(d_obj(2, 0, 5)) == 2  # never more than replicas
    assert du.min_available(d_obj(10, 3, 2)) == 8
    rec = d_obj(10)
    rec["spec"]["strategy"] = {"type": "Recreate"}
    assert (du.max_surge(rec), du.max_unavailable(rec), du.min_available(rec)) == (0, 0, 0)
    with pytest.raises(ValueError, match="not a percentage"):
        du.scaled_value("5", 10, True)


def test_new_rs_new_replicas() -> None:
    d = d_obj(10, 3, 2)
    old = rs_obj("old", 10)
    new = rs_obj("new", 0)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3
    # old scaled down to 8 but its pods are not gone yet: wait (pods would exceed 13)
    old = rs_obj("old", 8, status_replicas=10)
    new = rs_obj("new", 3)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3
    old["status"]["replicas"] = 8
    assert du.new_rs_new_replicas(d, [old, new], new) == 5
    # never beyond the desired count
    assert du.new_rs_new_replicas(d, [rs_obj("old", 0), rs_obj("new", 9)], rs_obj("new", 9)) == 10
    rec = d_obj(4)
    rec["spec"]["strategy"] = {"type": "Recreate"}
    assert du.new_rs_new_replicas(rec, [new], new) == 4


def test_proportional_scaling_up_and_down() -> None:
    # 10 replicas, surge 3: mid-rollout the old RS has 8, the new 5 (13 = 10 + 3). Scaled to 20:
    d = d_obj(20, 3, 2)
    old = rs_obj("old", 8, created="2024-01-01T00:00:00Z", max_replicas=13, desired=10)
    new = rs_obj("new", 5, created="2024-01-02T00:00:00Z", max_replicas=13, desired=10)
    sizes, to_add = du.proportional_sizes(d, new, [old])
    assert to_add == 10
    assert [(rs["metadata"]["name"], n) for rs, n in sizes] == [("old", 14), ("new", 9)]
    # and down to 5 (allowed 5 + 2 = 7; old first when scaling down)
    d = d_obj(5, 2, 1)
    sizes, to_add = du.proportional_sizes(d, new, [old])
    assert to_add == -6
    assert {rs["metadata"]["name"]: n for rs, n in sizes} == {"old": 4, "new": 3}
    assert sum(n for _, n in sizes) == 7
    # to zero: everything goes
    sizes, _ = du.proportional_sizes(d_obj(0, 2, 1), new, [old])
    assert sorted(n for _, n in sizes) == [0, 0]
    # equal sizes scaling up: the newer one gets the leftover
    a = rs_obj("a", 2, created="2024-01-01T00:00:00Z", max_replicas=5)
    b = rs_obj("b", 2, created="2024-01-02T00:00:00Z", max_replicas=5)
    sizes, _ = du.proportional_sizes(d_obj(4, 1, 1), b, [a])  # allowed 5, total 4
    assert {rs["metadata"]["name"]: n for rs, n in sizes} == {"b": 3, "a": 2}


def test_go_round_and_proportion_bounds() -> None:
    assert [du.go_round(x) for x in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4)] == [1, 2, 3, -1, -3, 2]
    d = d_obj(20, 3, 2)
    rs = rs_obj("x", 8, max_replicas=13)
    assert du.proportion(rs, d, 10, 0) == 6
    assert du.proportion(rs, d, 10, 7) == 3  # never more than what is left to add
    assert du.proportion(rs_obj("z", 0), d, 10, 0) == 0


def test_find_active_or_latest_and_saturation() -> None:
    old1 = rs_obj("o1", 0, created="2024-01-01T00:00:00Z")
    old2 = rs_obj("o2", 0, created="2024-01-02T00:00:00Z")
    assert du.find_active_or_latest(None, [old1, old2]) is old2
    new = rs_obj("n", 3, desired=3)
    assert du.find_active_or_latest(new, [old1, old2]) is new
    assert du.find_active_or_latest(new, [rs_obj("o3", 1)]) is None
    assert du.is_saturated(d_obj(3), new)
    assert not du.is_saturated(d_obj(4), new)
    new["status"]["availableReplicas"] = 2
    assert not du.is_saturated(d_obj(3), new)


def test_revision_annotations_and_history() -> None:
    d = {"metadata": {"annotations": {du.CHANGE_CAUSE: "kubectl set image", du.REVISION: "7",
                                      du.LAST_APPLIED: "{}"}},
         "spec": {"replicas": 4, "strategy": {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}
    new: Obj = {"metadata": {}}
    assert du.set_new_replica_set_annotations(d, new, 3, exists=False)
    assert new["metadata"]["annotations"] == {du.CHANGE_CAUSE: "kubectl set image", du.REVISION: "3",
                                              du.DESIRED_REPLICAS: "4", du.MAX_REPLICAS: "5"}
    # an old RS coming back (rollback) gets the next revision and remembers its old one
    old = {"metadata": {"annotations": {du.REVISION: "1", du.CHANGE_CAUSE: "kubectl set image"}}}
    assert du.set_new_replica_set_annotations(d, old, 3, exists=True)
    assert old["metadata"]["annotations"][du.REVISION] == "3"
    assert old["metadata"]["annotations"][du.REVISION_HISTORY] == "1"
    assert not du.set_new_replica_set_annotations(d, old, 3, exists=True)  # nothing more to do
    assert du.set_new_replica_set_annotations(d, old, 5, exists=True)
    assert old["metadata"]["annotations"][du.REVISION_HISTORY] == "1,3"
    # the history is bounded
    h = {"metadata": {"annotations": {du.REVISION: "9", du.REVISION_HISTORY: "1,3,5,7"}}}
    du.set_new_replica_set_annotations(d, h, 10, exists=True, history_limit_chars=6)
    assert h["metadata"]["annotations"][du.REVISION_HISTORY] == "5,7,9"
    # never lowered
    assert not du.set_new_replica_set_annotations({"metadata": {}}, {"metadata": {"annotations": {
        du.REVISION: "4"}}}, 2, exists=True)
    rss = [rs_obj("a", 0, revision=3), rs_obj("b", 0, revision=12), rs_obj("c", 0)]
    assert du.max_revision(rss) == 12
    assert [r["metadata"]["name"] for r in du.sort_by_revision(rss)] == ["c", "a", "b"]


def test_conditions_keep_transition_time_and_progress_with_fake_clock() -> None:
    clock = FakeClock(wall_start=1_700_000_000.0)
    t0 = clock.wall()
    st: Obj = {}
    du.set_condition(st, du.new_condition(du.PROGRESSING, "True", du.NEW_RS_CREATED, "created", t0))
    first = du.get_condition(st, du.PROGRESSING)
    assert first is not None and first["lastTransitionTime"] == du.ts(t0)
    clock.advance(30)
    t1 = clock.wall()
    # same status and reason: nothing changes
    du.set_condition(st, du.new_condition(du.PROGRESSING, "True", du.NEW_RS_CREATED, "again", t1))
    assert du.get_condition(st, du.PROGRESSING) == first
    # same status, new reason: transition time kept
    du.set_condition(st, du.new_condition(du.PROGRESSING, "True", du.REPLICA_SET_UPDATED, "moving", t1))
    c = du.get_condition(st, du.PROGRESSING)
    assert c is not None and c["lastTransitionTime"] == du.ts(t0) and c["lastUpdateTime"] == du.ts(t1)
    du.remove_condition(st, du.PROGRESSING)
    assert "conditions" not in st


def _rollout_d(progress: Obj, **status: Any) -> Obj:
    d = d_obj(2, 1, 0, status)
    d["spec"]["progressDeadlineSeconds"] = 10
    d["status"]["conditions"] = [progress]
    return d


def test_progress_deadline_detection() -> None:
    t0 = 1_700_000_000.0
    cond = du.new_condition(du.PROGRESSING, "True", du.NEW_RS_CREATED, "created", t0)
    d = _rollout_d(cond, observedGeneration=1, replicas=2, updatedReplicas=0, availableReplicas=2)
    new_rs = rs_obj("web-new", 1, available=0)
    # progress (an updated pod appeared): lastUpdateTime moves, transition time stays
    new = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2,
           "conditions": [dict(cond)]}
    du.rollout_progress(d, new, new_rs, t0 + 5)
    c = du.get_condition(new, du.PROGRESSING)
    assert c is not None and (c["reason"], c["status"]) == (du.REPLICA_SET_UPDATED, "True")
    assert c["lastUpdateTime"] == du.ts(t0 + 5) and c["lastTransitionTime"] == du.ts(t0)
    assert c["message"] == 'ReplicaSet "web-new" is progressing.'
    # no progress and the deadline not yet passed: look again when it would
    d["status"] = copy.deepcopy(new)
    same = copy.deepcopy(new)
    du.rollout_progress(d, same, new_rs, t0 + 8)
    assert same == new
    assert du.progress_check_after(d, same, t0 + 8) == pytest.approx(5 + 10 - 8 + 1)
    # past the deadline: ProgressDeadlineExceeded
    du.rollout_progress(d, same, new_rs, t0 + 16)
    c = du.get_condition(same, du.PROGRESSING)
    assert c is not None and (c["status"], c["reason"]) == ("False", du.TIMED_OUT)
    assert c["message"] == 'ReplicaSet "web-new" has timed out progressing.'
    d["status"] = same
    assert du.progress_check_after(d, same, t0 + 20) is None  # reported once, never again
    # complete: NewReplicaSetAvailable
    done = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
            "conditions": [dict(cond)]}
    d["status"] = copy.deepcopy(done)
    du.rollout_progress(d, done, new_rs, t0 + 30)
    c = du.get_condition(done, du.PROGRESSING)
    assert c is not None and (c["status"], c["reason"]) == ("True", du.NEW_RS_AVAILABLE)
    # without a deadline the condition goes away
    d["spec"].pop("progressDeadlineSeconds")
    du.rollout_progress(d, done, new_rs, t0 + 40)
    assert du.get_condition(done, du.PROGRESSING) is None


def test_calculate_status_counts_and_available_condition() -> None:
    d = d_obj(4, 1, 1)
    d["metadata"]["generation"] = 3
    old = rs_obj("old", 2, available=2)
    old["status"]["readyReplicas"] = 2
    new = rs_obj("new", 3, available=1, status_replicas=2)
    new["status"]["readyReplicas"] = 1
    st = du.calculate_status([old, new], new, d, 1_700_000_000.0)
    assert {k: v for k, v in st.items() if k != "conditions"} == {
        "observedGeneration": 3, "replicas": 4, "updatedReplicas": 2, "readyReplicas": 3,
        "availableReplicas": 3, "unavailableReplicas": 2, "terminatingReplicas": 0}
    avail = du.get_condition(st, du.AVAILABLE)
    assert avail is not None and (avail["status"], avail["reason"]) == ("True", du.MIN_REPLICAS_AVAILABLE)
    old["status"]["availableReplicas"] = 0
    st = du.calculate_status([old, new], new, d, 1_700_000_000.0)
    avail = du.get_condition(st, du.AVAILABLE)
    assert avail is not None and (avail["status"], avail["reason"]) == ("False", du.MIN_REPLICAS_UNAVAILABLE)
    # zero counts are omitted; terminatingReplicas is summed once RSs report it
    old["status"]["terminatingReplicas"] = 1
    new["status"]["terminatingReplicas"] = 0
    empty = du.calculate_status([rs_obj("z", 0, available=0), old, new], None, d_obj(0), 0.0)
    assert "updatedReplicas" not in empty and empty["terminatingReplicas"] == 1


def test_availability_for_scale_down_never_exceeds_spec() -> None:
    assert du.available_of(rs_obj("x", 3, available=5)) == 3
    assert du.pods_counted(rs_obj("x", 3, status_replicas=5)) == 5


# ---------------------------------------------------------------------------------------------
# in-process cluster


class PodWatch:
    """Every pod event in a namespace, with the counts after each: live pods (not being deleted)
    and available ones (ready, not being deleted), per image."""

    def __init__(self, client: Client, selector: str) -> None:
        self.client = client
        self.selector = selector
        self.pods: dict[str, Obj] = {}
        self.snapshots: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        lst = await self.client.list(POD, NS, label_selector=self.selector)
        self.pods = {p["metadata"]["name"]: p for p in lst["items"]}
        self.snapshots.append(self.counts())
        self.task = asyncio.create_task(self._run(lst["metadata"]["resourceVersion"]))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self, rv: str) -> None:
        async with self.client.watch(POD, NS, resource_version=rv, label_selector=self.selector,
                                     timeout_seconds=120) as w:
            async for ev in w:
                if ev.type == "BOOKMARK":
                    continue
                name = ev.object["metadata"]["name"]
                if ev.type == "DELETED":
                    self.pods.pop(name, None)
                else:
                    self.pods[name] = ev.object
                self.snapshots.append(self.counts())

    def counts(self) -> dict[str, Any]:
        live = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]
        avail = [p for p in live if _ready(p)]
        return {"live": len(live), "available": len(avail), "all": Counter(_image(p) for p in self.pods.values()),
                "live_by_image": Counter(_image(p) for p in live)}


def _image(pod: Obj) -> str:
    return str(pod["spec"]["containers"][0]["image"])


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def rollout_status(d: Obj) -> tuple[str, bool]:
    """What ``kubectl rollout status`` says about ``d`` (its DeploymentStatusViewer)."""
    st = d.get("status") or {}
    name = d["metadata"]["name"]
    if int(d["metadata"].get("generation") or 0) > int(st.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False
    cond = du.get_condition(st, du.PROGRESSING)
    if cond is not None and cond.get("reason") == du.TIMED_OUT:
        raise AssertionError(f'deployment "{name}" exceeded its progress deadline')
    want = int(d["spec"].get("replicas", 1))
    upd, rep, avail = (int(st.get(k) or 0) for k in ("updatedReplicas", "replicas", "availableReplicas"))
    if upd < want:
        return f"{upd} out of {want} new replicas have been updated...", False
    if rep > upd:
        return f"{rep - upd} old replicas are pending termination...", False
    if avail < upd:
        return f"{avail} of {upd} updated replicas are available...", False
    return f'deployment "{name}" successfully rolled out', True


async def rolled_out(c: InProcessCluster, name: str, timeout: float = 20.0) -> Obj:
    async def done() -> Obj | None:
        d = await c.client.get(DEP, name, NS)
        return d if rollout_status(d)[1] else None

    d: Obj = await c.until(done, timeout=timeout, what=f"deployment {name} rolled out")
    return d


async def replica_sets(c: InProcessCluster, app: str) -> list[Obj]:
    items: list[Obj] = (await c.client.list(RS, NS, label_selector=f"app={app}"))["items"]
    return sorted(items, key=lambda r: int(r["metadata"].get("annotations", {}).get(du.REVISION, 0)))


async def events(c: InProcessCluster, name: str) -> list[str]:
    evs = (await c.client.list(EVENT, NS))["items"]
    return [e["message"] for e in evs
            if e["involvedObject"].get("name") == name and e["involvedObject"].get("kind") == "Deployment"
            and e["reason"] == "ScalingReplicaSet"]


def cond(d: Obj, type_: str) -> Obj:
    c = du.get_condition(d.get("status") or {}, type_)
    assert c is not None, f"{type_} condition missing in {d.get('status')}"
    return c


async def set_image(c: InProcessCluster, name: str, image: str) -> None:
    # what `kubectl set image` sends
    await c.client.patch(DEP, name, {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}},
                         NS, type="strategic")


async def test_create_makes_a_replica_set_with_pods_status_and_conditions() -> None:
    async with InProcessCluster(controllers=["deployment", "replicaset"]) as c:
        await c.add_node("node-1")
        d = deployment("web", 3)
        d["metadata"]["annotations"] = {du.CHANGE_CAUSE: "first"}
        await c.client.create(DEP, d, NS)
        d = await rolled_out(c, "web")
        st = d["status"]
        assert {k: st.get(k) for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                       "availableReplicas", "unavailableReplicas")} == {
            "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
            "availableReplicas": 3, "unavailableReplicas": None}
        assert d["metadata"]["annotations"][du.REVISION] == "1"
        [rs] = await replica_sets(c, "web")
        h = rs["metadata"]["labels"][du.POD_TEMPLATE_HASH]
        assert HASH_RE.match(h) and rs["metadata"]["name"] == f"web-{h}"
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", du.POD_TEMPLATE_HASH: h}
        assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", du.POD_TEMPLATE_HASH: h}
        assert rs["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                      "uid": d["metadata"]["uid"], "controller": True,
                                                      "blockOwnerDeletion": True}]
        ann = rs["metadata"]["annotations"]
        assert (ann[du.REVISION], ann[du.DESIRED_REPLICAS], ann[du.MAX_REPLICAS], ann[du.CHANGE_CAUSE]) == \
            ("1", "3", "4", "first")
        avail, prog = cond(d, du.AVAILABLE), cond(d, du.PROGRESSING)
        assert (avail["status"], avail["reason"]) == ("True", du.MIN_REPLICAS_AVAILABLE)
        assert (prog["status"], prog["reason"], prog["message"]) == \
            ("True", du.NEW_RS_AVAILABLE, f'ReplicaSet "web-{h}" has successfully progressed.')
        pods = (await c.client.list(POD, NS, label_selector="app=web"))["items"]
        assert len(pods) == 3 and all(p["metadata"]["labels"][du.POD_TEMPLATE_HASH] == h for p in pods)
        assert await c.until(lambda: _has(c, "web", f"Scaled up replica set web-{h} from 0 to 3"),
                             what="ScalingReplicaSet event")


async def _has(c: InProcessCluster, name: str, message: str) -> bool:
    return message in await events(c, name)


async def test_rolling_update_stays_within_bounds_and_rollback_reuses_the_old_replica_set() -> None:
    # 5 replicas, maxSurge 30% -> 2 (rounded up), maxUnavailable 30% -> 1 (rounded down)
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "30%", "maxUnavailable": "30%"}}
    async with InProcessCluster(controllers=["deployment", "replicaset"]) as c:
        await c.add_node("node-1")
        await c.client.create(DEP, deployment("web", 5, "nginx:1", strategy=strategy), NS)
        await rolled_out(c, "web")
        async with PodWatch(c.client, "app=web") as w:
            await set_image(c, "web", "nginx:2")
            d = await rolled_out(c, "web")
            assert d["status"]["observedGeneration"] == 2
            await c.until(lambda: w.counts()["all"] == Counter({"nginx:2": 5}), what="old pods gone")
        for s in w.snapshots:
            assert s["live"] <= 5 + 2, s
            assert s["available"] >= 5 - 1, s
        mixed = [s for s in w.snapshots if len(s["live_by_image"]) == 2]
        assert mixed, "never saw old and new pods side by side: not a rolling update"
        assert max(s["live"] for s in w.snapshots) > 5  # the surge was used
        rs1, rs2 = await replica_sets(c, "web")
        assert (rs1["spec"]["replicas"], rs2["spec"]["replicas"]) == (0, 5)
        assert (rs1["metadata"]["annotations"][du.REVISION], rs2["metadata"]["annotations"][du.REVISION]) == \
            ("1", "2")
        assert d["metadata"]["annotations"][du.REVISION] == "2"
        msgs = await events(c, "web")
        assert any(m.startswith(f"Scaled down replica set {rs1['metadata']['name']} from 5 to") for m in msgs)
        assert f"Scaled down replica set {rs1['metadata']['name']} from 1 to 0" in msgs

        # `kubectl rollout undo --to-revision=1`: the client writes revision 1's template and
        # annotations into the Deployment with a JSON patch
        template = copy.deepcopy(rs1["spec"]["template"])
        del template["metadata"]["labels"][du.POD_TEMPLATE_HASH]
        ann = {k: v for k, v in d["metadata"]["annotations"].items() if k in du.ANNOTATIONS_TO_SKIP}
        ann.update({k: v for k, v in rs1["metadata"]["annotations"].items() if k not in du.ANNOTATIONS_TO_SKIP})
        async with PodWatch(c.client, "app=web") as w:
            await c.client.patch(DEP, "web", [{"op": "replace", "path": "/spec/template", "value": template},
                                              {"op": "replace", "path": "/metadata/annotations", "value": ann}],
                                 NS, type="json")
            d = await rolled_out(c, "web")
            await c.until(lambda: w.counts()["all"] == Counter({"nginx:1": 5}), what="rollback pods")
        for s in w.snapshots:
            assert s["live"] <= 7 and s["available"] >= 4, s
        assert d["status"]["observedGeneration"] == 3
        rss = await replica_sets(c, "web")
        assert [r["metadata"]["name"] for r in rss] == [rs2["metadata"]["name"], rs1["metadata"]["name"]]
        back = rss[1]
        assert back["spec"]["replicas"] == 5 and rss[0]["spec"]["replicas"] == 0
        assert back["metadata"]["annotations"][du.REVISION] == "3"
        assert back["metadata"]["annotations"][du.REVISION_HISTORY] == "1"
        assert d["metadata"]["annotations"][du.REVISION] == "3"


async def test_recreate_removes_every_old_pod_before_making_new_ones() -> None:
    async with InProcessCluster(controllers=["deployment", "replicaset"]) as c:
        await c.add_node("node-1")
        await c.client.create(DEP, deployment("db", 3, "pg:1", strategy={"type": "Recreate"}), NS)
        await rolled_out(c, "db")
        async with PodWatch(c.client, "app=db") as w:
            await set_image(c, "db", "pg:2")
            await rolled_out(c, "db")
            await c.until(lambda: w.counts()["all"] == Counter({"pg:2": 3}), what="new pods only")
        # no moment with an old pod (even one being deleted) next to a new one
        assert all(len(s["all"]) <= 1 for s in w.snapshots), [s["all"] for s in w.snapshots]
        assert any(sum(s["all"].values()) == 0 for s in w.snapshots)
        old, new = await replica_sets(c, "db")
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)
        msgs = await events(c, "db")
        assert f"Scaled down replica set {old['metadata']['name']} from 3 to 0" in msgs
        assert f"Scaled up replica set {new['metadata']['name']} from 0 to 3" in msgs


async def test_pause_holds_the_rollout_but_not_scaling_and_resume_continues() -> None:
    async with InProcessCluster(controllers=["deployment", "replicaset"]) as c:
        await c.add_node("node-1")
        await c.client.create(DEP, deployment("api", 2, "app:1"), NS)
        await rolled_out(c, "api")
        await c.client.patch(DEP, "api", {"spec": {"paused": True}}, NS)

        async def paused() -> bool:
            d = await c.client.get(DEP, "api", NS)
            p = du.get_condition(d.get("status") or {}, du.PROGRESSING) or {}
            return (p.get("status"), p.get("reason"), p.get("message")) == \
                ("Unknown", du.PAUSED, "Deployment is paused")

        await c.until(paused, what="DeploymentPaused condition")
        await set_image(c, "api", "app:2")
        await c.client.patch(DEP, "api", {"spec": {"replicas": 3}}, NS)

        async def scaled() -> Obj | None:
            d = await c.client.get(DEP, "api", NS)
            st = d.get("status") or {}
            return d if st.get("observedGeneration") == d["metadata"]["generation"] and \
                st.get("availableReplicas") == 3 else None

        d = await c.until(scaled, what="paused deployment scaled to 3")
        [rs] = await replica_sets(c, "api")  # no rollout while paused
        assert rs["spec"]["replicas"] == 3 and rs["metadata"]["annotations"][du.DESIRED_REPLICAS] == "3"
        assert rs["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"
        assert rollout_status(d) == ("0 out of 3 new replicas have been updated...", False)

        await c.client.patch(DEP, "api", {"spec": {"paused": False}}, NS)
        d = await rolled_out(c, "api")
        old, new = await replica_sets(c, "api")
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)
        assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "app:2"
        assert cond(d, du.PROGRESSING)["reason"] == du.NEW_RS_AVAILABLE


async def test_new_pods_that_never_get_ready_exceed_the_progress_deadline() -> None:
    async with InProcessCluster(controllers=["deployment", "replicaset"]) as c:
        await c.add_node("node-1", ready=lambda pod: _image(pod) != "bad")
        await c.client.create(DEP, deployment("web", 2, "good", progressDeadlineSeconds=2), NS)
        await rolled_out(c, "web")
        await set_image(c, "web", "bad")

        async def timed_out() -> Obj | None:
            d = await c.client.get(DEP, "web", NS)
            p = du.get_condition(d.get("status") or {}, du.PROGRESSING) or {}
            return d if p.get("reason") == du.TIMED_OUT else None

        d = await c.until(timed_out, timeout=15, what="ProgressDeadlineExceeded")
        p = cond(d, du.PROGRESSING)
        _, new = await replica_sets(c, "web")
        name = new["metadata"]["name"]
        assert (p["status"], p["message"]) == ("False", f'ReplicaSet "{name}" has timed out progressing.')
        with pytest.raises(AssertionError, match="exceeded its progress deadline"):
            rollout_status(d)
        # the old pods kept the deployment available: maxUnavailable 25% of 2 is 0
        assert cond(d, du.AVAILABLE)["status"] == "True"
        assert d["status"]["availableReplicas"] == 2 and d["status"]["updatedReplicas"] == 1


async def test_revision_history_limit_prunes_old_replica_sets() -> None:
    async with InProcessCluster(controllers=["deployment", "replicaset"]) as c:
        await c.add_node("node-1")
        await c.client.create(DEP, deployment("h", 1, "v1", revisionHistoryLimit=1), NS)
        await rolled_out(c, "h")
        for image in ("v2", "v3"):
            await set_image(c, "h", image)
            await rolled_out(c, "h")

        async def pruned() -> list[Obj] | None:
            rss = await replica_sets(c, "h")
            return rss if len(rss) == 2 else None

        rss = await c.until(pruned, what="revision 1 pruned")
        assert [r["metadata"]["annotations"][du.REVISION] for r in rss] == ["2", "3"]
        assert [r["spec"]["template"]["spec"]["containers"][0]["image"] for r in rss] == ["v2", "v3"]


async def test_scaling_mid_rollout_is_proportional() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    async with InProcessCluster(controllers=["deployment", "replicaset"]) as c:
        await c.add_node("node-1", ready=lambda pod: _image(pod) != "bad")
        await c.client.create(DEP, deployment("p", 10, "good", strategy=strategy), NS)
        await rolled_out(c, "p")
        await set_image(c, "p", "bad")

        async def sizes(want: tuple[int, int]) -> bool:
            rss = await replica_sets(c, "p")
            return len(rss) == 2 and (rss[0]["spec"]["replicas"], rss[1]["spec"]["replicas"]) == want

        # stuck: old 10 -> 8 (maxUnavailable 2), new 0 -> 5 (13 = 10 + maxSurge 3), new never ready
        await c.until(lambda: sizes((8, 5)), what="rollout stuck at 8 old / 5 new")
        await c.client.patch(DEP, "p", {"spec": {"replicas": 20}}, NS)
        # 10 more (23 = 20 + 3) spread by size: old 8 * 23/13 -> 14, new 5 * 23/13 -> 9
        await c.until(lambda: sizes((14, 9)), what="proportional scale-up to 14 / 9")
        old, new = await replica_sets(c, "p")
        msgs = await events(c, "p")
        assert f"Scaled up replica set {old['metadata']['name']} from 8 to 14" in msgs
        assert f"Scaled up replica set {new['metadata']['name']} from 5 to 9" in msgs
        for rs in (old, new):
            assert (rs["metadata"]["annotations"][du.DESIRED_REPLICAS],
                    rs["metadata"]["annotations"][du.MAX_REPLICAS]) == ("20", "23")


async def test_orphan_replica_set_with_the_template_is_adopted_as_the_new_one() -> None:
    async with InProcessCluster(controllers=["deployment", "replicaset"]) as c:
        await c.add_node("node-1")
        d = deployment("adopt", 2)
        orphan = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                  "metadata": {"name": "adopt-manual", "labels": {"app": "adopt"}},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "adopt"}},
                           "template": copy.deepcopy(d["spec"]["template"])}}
        await c.client.create(RS, orphan, NS)
        created = await c.client.create(DEP, d, NS)
        d = await rolled_out(c, "adopt")
        [rs] = await replica_sets(c, "adopt")
        assert rs["metadata"]["name"] == "adopt-manual"
        ref = du.controller_ref(rs)
        assert ref is not None and ref["uid"] == created["metadata"]["uid"]
        assert rs["metadata"]["annotations"][du.REVISION] == "1"
        assert d["metadata"]["annotations"][du.REVISION] == "1"
        assert cond(d, du.PROGRESSING)["reason"] in (du.FOUND_NEW_RS, du.NEW_RS_AVAILABLE)


async def test_min_ready_seconds_delays_availability_and_follows_the_deployment() -> None:
    async with InProcessCluster(controllers=["deployment", "replicaset"]) as c:
        await c.add_node("node-1")
        # 3 s: the Ready condition's time is to the second, so a pod can look up to 1 s older
        # than it is; a 1 s window could close before the first look under load
        await c.client.create(DEP, deployment("slow", 1, minReadySeconds=3), NS)

        async def ready_not_available() -> bool:
            st = (await c.client.get(DEP, "slow", NS)).get("status") or {}
            return st.get("readyReplicas") == 1 and not st.get("availableReplicas")

        await c.until(ready_not_available, what="a ready pod not yet available")
        d = await rolled_out(c, "slow", timeout=10)
        assert d["status"]["availableReplicas"] == 1
        [rs] = await replica_sets(c, "slow")
        assert rs["spec"]["minReadySeconds"] == 3
        # minReadySeconds is not part of the template: the same RS follows, no rollout
        await c.client.patch(DEP, "slow", {"spec": {"minReadySeconds": 0}}, NS)

        async def updated() -> bool:
            rss = await replica_sets(c, "slow")
            return len(rss) == 1 and not rss[0]["spec"].get("minReadySeconds")

        await c.until(updated, what="RS minReadySeconds follows the Deployment")
        d = await rolled_out(c, "slow")
        assert d["status"]["observedGeneration"] == 2 and d["metadata"]["annotations"][du.REVISION] == "1"
