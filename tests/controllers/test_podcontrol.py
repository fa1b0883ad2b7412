"""The shared pod helpers: expectations, templates, ownership claims, slow start, delete ranking."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from k8py.api.selectors import from_label_selector
from k8py.client.api import Client
from k8py.client.clock import FakeClock
from k8py.client.config import ClientConfig
from k8py.client.errors import ApiError, NotFoundError, api_error
from k8py.controllers.base import rfc3339
from k8py.controllers.podcontrol import (
    AdoptionError,
    ControllerExpectations,
    ControllerRefManager,
    PodControl,
    adopt_patch,
    controller_ref,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    is_pod_terminating,
    new_controller_ref,
    pod_from_template,
    pods_prefix,
    pods_to_delete,
    rank_pods_for_deletion,
    recheck_deletion_timestamp,
    release_patch,
    seconds_until_available,
    slow_start_batch,
)

Obj = dict[str, Any]
T0 = 1_700_000_000.0


def ts(t: float) -> str:
    import datetime as dt

    return rfc3339(dt.datetime.fromtimestamp(t, dt.UTC))


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool | None = True,
        ready_since: float = T0 - 100, created: float = T0 - 200, restarts: int = 0,
        labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        owner: Obj | None = None, deleting: bool = False) -> Obj:
    md: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": ts(created),
               "labels": labels if labels is not None else {"app": "web"}, "resourceVersion": "1"}
    if annotations:
        md["annotations"] = annotations
    if owner is not None:
        md["ownerReferences"] = [new_controller_ref(owner)]
    if deleting:
        md["deletionTimestamp"] = ts(T0)
    status: Obj = {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": ts(ready_since)}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}, "status": status}


RS: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid"},
           "spec": {"selector": {"matchLabels": {"app": "web"}}}}


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


# -- expectations ----------------------------------------------------------------------------------


def test_expectations_creations_then_satisfied() -> None:
    clock = FakeClock()
    e = ControllerExpectations(clock)
    assert e.satisfied("ns/a")  # nothing expected yet
    e.expect_creations("ns/a", 2)
    assert not e.satisfied("ns/a")
    e.creation_observed("ns/a")
    assert e.get("ns/a") == (1, 0) and not e.satisfied("ns/a")
    e.creation_observed("ns/a")
    assert e.satisfied("ns/a")
    e.delete("ns/a")
    assert "ns/a" not in e and e.satisfied("ns/a")


def test_expectations_tracked_deletions_count_once() -> None:
    e = ControllerExpectations(FakeClock())
    e.expect_deletions("ns/a", ["ns/p1", "ns/p2"])
    e.deletion_observed("ns/a", "ns/p1")  # deletionTimestamp set
    e.deletion_observed("ns/a", "ns/p1")  # then the delete itself: not counted again
    e.deletion_observed("ns/a", "ns/other")  # not one we deleted
    assert e.get("ns/a") == (0, 1) and not e.satisfied("ns/a")
    e.deletion_observed("ns/a", "ns/p2")
    assert e.satisfied("ns/a")


def test_expectations_counted_deletions_and_raise_lower() -> None:
    e = ControllerExpectations(FakeClock())
    e.expect_deletions("k", 2)
    e.deletion_observed("k")
    e.raise_expectations("k", add=1)
    assert e.get("k") == (1, 1)
    e.lower("k", add=1, delete=1)
    assert e.satisfied("k")


def test_expectations_expire() -> None:
    clock = FakeClock()
    e = ControllerExpectations(clock, timeout=300)
    e.expect_creations("k", 1)
    clock.advance(299)
    assert not e.satisfied("k")
    clock.advance(2)
    assert e.satisfied("k")
    e.expect_creations("k", 1)  # setting again restarts the timeout
    assert not e.satisfied("k")


# -- pod state -------------------------------------------------------------------------------------


def test_pod_state_helpers() -> None:
    assert is_pod_ready(pod("a")) and not is_pod_ready(pod("a", ready=False)) and not is_pod_ready(pod("a", ready=None))
    assert is_pod_active(pod("a")) and not is_pod_active(pod("a", phase="Succeeded"))
    assert not is_pod_active(pod("a", deleting=True)) and is_pod_terminating(pod("a", deleting=True))
    assert not is_pod_terminating(pod("a", phase="Failed", deleting=True))


def test_availability_honours_min_ready_seconds_strictly() -> None:
    p = pod("a", ready_since=T0)
    assert is_pod_available(p, 0, T0)
    assert not is_pod_available(p, 10, T0 + 10)  # exactly at the boundary: not yet (kube: Before)
    assert is_pod_available(p, 10, T0 + 10.5)
    assert seconds_until_available(p, 10, T0 + 4) == pytest.approx(6)
    assert 0 < seconds_until_available(p, 10, T0 + 10) < 0.01  # type: ignore[operator]
    assert seconds_until_available(p, 10, T0 + 11) == 0
    assert seconds_until_available(pod("b", ready=False), 10, T0) is None
    assert not is_pod_available(pod("b", ready=False), 0, T0)


# -- ownership and templates -----------------------------------------------------------------------


def test_controller_refs_and_patches() -> None:
    ref = new_controller_ref(RS)
    assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid",
                   "controller": True, "blockOwnerDeletion": True}
    p = pod("a", owner=RS)
    p["metadata"]["ownerReferences"].insert(0, {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "x"})
    assert controller_ref(p) == ref
    assert controller_ref(pod("b")) is None
    assert adopt_patch(RS, "apps/v1", "ReplicaSet", "pod-uid") == \
        {"metadata": {"ownerReferences": [ref], "uid": "pod-uid"}}
    assert release_patch("rs-uid", "pod-uid") == \
        {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "rs-uid"}], "uid": "pod-uid"}}


def test_pod_from_template_copies_what_kube_copies() -> None:
    template: Obj = {"metadata": {"name": "ignored", "labels": {"app": "web"}, "annotations": {"a": "1"},
                             "finalizers": ["f/x"]},
                "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["x"]}]}}
    p = pod_from_template(template, RS)
    assert p["metadata"] == {"labels": {"app": "web"}, "annotations": {"a": "1"}, "finalizers": ["f/x"],
                             "generateName": "web-", "ownerReferences": [new_controller_ref(RS)]}
    assert p["spec"] == template["spec"] and p["kind"] == "Pod"
    p["spec"]["containers"][0]["args"].append("y")
    p["metadata"]["labels"]["x"] = "y"
    assert template["spec"]["containers"][0]["args"] == ["x"] and "x" not in template["metadata"]["labels"]
    other = pod_from_template(template, RS, "custom-", controller_ref={"kind": "K", "uid": "u"})
    assert other["metadata"]["generateName"] == "custom-"
    assert other["metadata"]["ownerReferences"] == [{"kind": "K", "uid": "u"}]
    assert pods_prefix("a" * 253) == "a" * 253


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def __call__(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


class PodApi(Client):
    """Answers pod writes without a server."""

    def __init__(self, error: ApiError | None = None) -> None:
        super().__init__(ClientConfig(server="http://fake.invalid"), component="test")
        self.error = error
        self.calls: list[tuple[str, Any]] = []

    async def create(self, kind: Any, obj: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        self.calls.append(("create", obj))
        if self.error is not None:
            raise self.error
        return {**obj, "metadata": {**obj["metadata"], "name": obj["metadata"]["generateName"] + "abcde"}}

    async def delete(self, kind: Any, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        self.calls.append(("delete", name))
        if self.error is not None:
            raise self.error
        return {}

    async def patch(self, kind: Any, name: str, patch: Any, namespace: str | None = None, **kw: Any) -> Obj:
        self.calls.append(("patch", (name, patch, kw.get("type"))))
        if self.error is not None:
            raise self.error
        return {}


def status_error(code: int, reason: str, message: str, **details: Any) -> ApiError:
    return api_error({"kind": "Status", "code": code, "reason": reason, "message": message, "details": details})


TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def test_pod_control_records_kube_events() -> None:
    rec = Recorder()
    api = PodApi()
    pc = PodControl(api, rec)
    created = await pc.create_pod("default", TEMPLATE, RS)
    assert created["metadata"]["name"] == "web-abcde"
    await pc.delete_pod("default", "web-abcde", RS)
    await pc.patch_pod(pod("a"), {"metadata": {}})
    assert rec.events == [("Normal", "SuccessfulCreate", "Created pod: web-abcde"),
                          ("Normal", "SuccessfulDelete", "Deleted pod: web-abcde")]
    assert api.calls[-1] == ("patch", ("a", {"metadata": {}}, "strategic"))
    with pytest.raises(ValueError, match="no labels"):
        await pc.create_pod("default", {"spec": {}}, RS)


async def test_pod_control_failures() -> None:
    rec = Recorder()
    pc = PodControl(PodApi(status_error(403, "Forbidden", 'pods "web-" is forbidden: exceeded quota')), rec)
    with pytest.raises(ApiError):
        await pc.create_pod("default", TEMPLATE, RS)
    with pytest.raises(ApiError):
        await pc.delete_pod("default", "p", RS)
    assert rec.events == [("Warning", "FailedCreate", 'Error creating: pods "web-" is forbidden: exceeded quota'),
                          ("Warning", "FailedDelete", 'Error deleting: pods "web-" is forbidden: exceeded quota')]
    # creates refused because the namespace is going away, and deletes of pods already gone: no Event
    rec.events.clear()
    term = status_error(403, "Forbidden", "ns is being terminated", causes=[{"reason": "NamespaceTerminating"}])
    with pytest.raises(ApiError):
        await PodControl(PodApi(term), rec).create_pod("default", TEMPLATE, RS)
    with pytest.raises(NotFoundError):
        await PodControl(PodApi(status_error(404, "NotFound", "gone")), rec).delete_pod("default", "p", RS)
    assert rec.events == []


# -- claiming --------------------------------------------------------------------------------------


class Patches:
    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[tuple[str, Obj]] = []
        self.error = error

    async def __call__(self, obj: Obj, body: Obj) -> Obj:
        self.sent.append((obj["metadata"]["name"], body))
        if self.error is not None:
            raise self.error
        return obj


async def test_claim_adopts_orphans_and_releases_mismatches() -> None:
    sel = from_label_selector(RS["spec"]["selector"])
    patches = Patches()
    other = {**RS, "metadata": {"name": "other", "uid": "other-uid"}}
    pods = [pod("mine", owner=RS), pod("orphan"), pod("stray", owner=RS, labels={"app": "other"}),
            pod("theirs", owner=other), pod("nomatch"), pod("dying-orphan", deleting=True)]
    pods[4]["metadata"]["labels"] = {"app": "db"}
    checks = []

    async def can_adopt() -> None:
        checks.append(1)

    mgr = ControllerRefManager(RS, sel, "apps/v1", "ReplicaSet", patch=patches, can_adopt=can_adopt)
    claimed, errors = await mgr.claim(pods)
    assert names(claimed) == ["mine", "orphan"] and errors == []
    assert patches.sent == [("orphan", adopt_patch(RS, "apps/v1", "ReplicaSet", "uid-orphan")),
                            ("stray", release_patch("rs-uid", "uid-stray"))]
    assert checks == [1]


async def test_claim_when_owner_is_deleting_or_adoption_refused() -> None:
    sel = from_label_selector(RS["spec"]["selector"])
    deleting = {**RS, "metadata": {**RS["metadata"], "deletionTimestamp": ts(T0)}}
    patches = Patches()
    claimed, errors = await ControllerRefManager(deleting, sel, "apps/v1", "ReplicaSet", patch=patches).claim(
        [pod("mine", owner=RS), pod("orphan"), pod("stray", owner=RS, labels={"app": "x"})])
    assert names(claimed) == ["mine"] and patches.sent == [] and errors == []

    async def fresh() -> Obj:
        return {**RS, "metadata": {**RS["metadata"], "uid": "someone-else"}}

    mgr = ControllerRefManager(RS, sel, "apps/v1", "ReplicaSet", patch=patches,
                               can_adopt=recheck_deletion_timestamp(fresh, "rs-uid"))
    claimed, errors = await mgr.claim([pod("o1"), pod("o2")])
    assert claimed == [] and len(errors) == 2 and all(isinstance(e, AdoptionError) for e in errors)
    assert "is gone: got uid someone-else" in str(errors[0]) and patches.sent == []


async def test_claim_tolerates_pods_gone_meanwhile() -> None:
    sel = from_label_selector(RS["spec"]["selector"])
    patches = Patches(status_error(404, "NotFound", "gone"))
    claimed, errors = await ControllerRefManager(RS, sel, "apps/v1", "ReplicaSet", patch=patches).claim(
        [pod("orphan"), pod("stray", owner=RS, labels={"app": "x"})])
    assert claimed == [] and errors == []
    boom = Patches(status_error(500, "InternalError", "boom"))
    claimed, errors = await ControllerRefManager(RS, sel, "apps/v1", "ReplicaSet", patch=boom).claim([pod("o")])
    assert claimed == [] and len(errors) == 1


# -- slow start ------------------------------------------------------------------------------------


async def test_slow_start_batches_double_and_stop_on_failure() -> None:
    batches: list[int] = []
    inflight = 0

    async def ok() -> None:
        nonlocal inflight
        inflight += 1
        await asyncio.sleep(0)
        if inflight:
            batches.append(inflight)
        inflight = 0

    assert await slow_start_batch(10, 1, ok) == (10, None)
    assert batches == [1, 2, 4, 3]  # 1, 2, 4, then what is left

    calls = 0

    async def fail_from_4th() -> None:
        nonlocal calls
        calls += 1
        if calls >= 4:
            raise RuntimeError("quota")

    done, err = await slow_start_batch(100, 1, fail_from_4th)
    # batches 1 and 2 succeed; in the batch of 4 every call fails; nothing more is tried
    assert (done, calls, str(err)) == (3, 7, "quota")
    assert await slow_start_batch(0, 1, ok) == (0, None)


# -- ranking ---------------------------------------------------------------------------------------


def test_rank_order_follows_kube() -> None:
    pods = [
        pod("ready-old", ready_since=T0 - 1000, created=T0 - 2000),
        pod("ready-new", ready_since=T0 - 10, created=T0 - 2000),
        pod("not-ready", ready=False),
        pod("unknown", phase="Unknown"),
        pod("pending", phase="Pending", ready=False),
        pod("unscheduled", node="", phase="Pending", ready=False),
    ]
    assert names(rank_pods_for_deletion(pods)) == [
        "unscheduled", "pending", "unknown", "not-ready", "ready-new", "ready-old"]
    # pods_to_delete takes the first ones
    assert names(pods_to_delete(pods, None, 2)) == ["unscheduled", "pending"]
    assert names(pods_to_delete(pods[:2], None, 5)) == ["ready-old", "ready-new"]


def test_rank_cost_doubling_restarts_creation() -> None:
    cheap = pod("cheap", annotations={"controller.kubernetes.io/pod-deletion-cost": "-5"})
    dear = pod("dear", annotations={"controller.kubernetes.io/pod-deletion-cost": "100"})
    bogus = pod("bogus", annotations={"controller.kubernetes.io/pod-deletion-cost": "x"})
    assert names(rank_pods_for_deletion([dear, bogus, cheap])) == ["cheap", "bogus", "dear"]

    # doubled up on n1 (two related pods there) goes first
    a, b = pod("alone", node="n2"), pod("doubled", node="n1")
    sibling = pod("sibling", node="n1")
    assert names(rank_pods_for_deletion([a, b], [a, b, sibling])) == ["doubled", "alone"]
    # inactive related pods do not count
    assert names(rank_pods_for_deletion([b, a], [a, b, pod("gone", node="n1", phase="Failed")])) == \
        ["doubled", "alone"]  # a tie: the order given stays

    crashy, calm = pod("crashy", restarts=5), pod("calm", restarts=0)
    assert names(rank_pods_for_deletion([calm, crashy])) == ["crashy", "calm"]

    young, old = pod("young", created=T0 - 10), pod("old", created=T0 - 1000)
    assert names(rank_pods_for_deletion([old, young])) == ["young", "old"]
    no_ts = pod("no-ts")
    del no_ts["metadata"]["creationTimestamp"]
    assert names(rank_pods_for_deletion([young, no_ts])) == ["no-ts", "young"]


def test_rank_logarithmic_with_now() -> None:
    # ready 100s and 110s ago: the same power-of-two age bucket, so the uid decides
    a = pod("b-pod", ready_since=T0 - 110)
    b = pod("a-pod", ready_since=T0 - 100)
    a["metadata"]["uid"], b["metadata"]["uid"] = "1", "2"
    assert names(rank_pods_for_deletion([a, b])) == ["a-pod", "b-pod"]  # exact: newer first
    assert names(rank_pods_for_deletion([b, a], now=T0)) == ["b-pod", "a-pod"]  # bucketed: uid order
    # far apart ages still put the newer first
    c = pod("c-pod", ready_since=T0 - 5000)
    assert names(rank_pods_for_deletion([c, b], now=T0)) == ["a-pod", "c-pod"]
