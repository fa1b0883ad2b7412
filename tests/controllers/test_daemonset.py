"""The DaemonSet controller against the in-process API server, with FakeNodes as kubelets.

Daemon pods name their node through required node affinity (``matchFields metadata.name``), as
in kube >= 1.12, and a scheduler binds them. FakeNode's stand-in scheduler would bind any pending
pod to itself, so the FakeNodes here run with ``schedule=False`` and :class:`AffinityBinder`
plays the scheduler: it binds each pending pod to the node its affinity names.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable
from typing import Any, Self

from tests.helpers.cluster import InProcessCluster

from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.client.errors import ApiError
from k8py.controllers.daemonset import (
    add_daemon_tolerations,
    node_should_run,
    target_node_name,
)
from k8py.controllers.history import HASH_LABEL

Obj = dict[str, Any]
POD = ("v1", "Pod")
NODE = ("v1", "Node")
DS = ("apps/v1", "DaemonSet")
CR = ("apps/v1", "ControllerRevision")
NS = "default"


class AffinityBinder:
    """A scheduler stand-in: binds every pending pod whose required node affinity names one node
    (``matchFields metadata.name In [node]``) to that node, if the node exists."""

    def __init__(self, url: str) -> None:
        self.client = Client(ClientConfig(server=url), component="test-binder")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    async def _run(self) -> None:
        while True:
            try:
                async with self.client.watch(POD, None, resource_version="0", timeout_seconds=300) as w:
                    async for ev in w:
                        if ev.type in ("ADDED", "MODIFIED"):
                            await self._bind(ev.object)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 -- keep binding
                await asyncio.sleep(0.1)

    async def _bind(self, pod: Obj) -> None:
        md, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName") or md.get("deletionTimestamp"):
            return
        node = target_node_name(pod)
        if node is None:
            return
        with contextlib.suppress(ApiError):
            await self.client.get(NODE, node)
            await self.client.create(POD, {"apiVersion": "v1", "kind": "Binding",
                                           "metadata": {"name": md["name"], "namespace": md["namespace"]},
                                           "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
                                     md["namespace"], subresource="binding", name=md["name"])


@contextlib.asynccontextmanager
async def cluster(*nodes: str, **node_kw: Any) -> AsyncIterator[InProcessCluster]:
    async with InProcessCluster(controllers=["daemonset"]) as c, AffinityBinder(c.url):
        for n in nodes:
            await c.add_node(n, schedule=False, **node_kw)
        yield c


def daemonset(name: str = "ds", image: str = "pause:1", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}},
                     **spec}}


def ready(pod: Obj) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or ())


def image_of(pod: Obj) -> str:
    return str(pod["spec"]["containers"][0]["image"])


async def live_pods(c: InProcessCluster, app: str = "ds") -> list[Obj]:
    items = (await c.client.list(POD, NS, label_selector=f"app={app}"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def pods_on(c: InProcessCluster, app: str = "ds") -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for p in await live_pods(c, app):
        out.setdefault(p["spec"].get("nodeName") or "", []).append(p)
    return out


def running_on(expected: set[str], app: str = "ds", image: str | None = None,
               c: InProcessCluster | None = None) -> Callable[[], Any]:
    """A condition: exactly one ready pod (of ``image``) on each node in ``expected``, no others."""
    assert c is not None

    async def cond() -> bool:
        by_node = await pods_on(c, app)
        if set(by_node) != expected:
            return False
        return all(len(ps) == 1 and ready(ps[0]) and (image is None or image_of(ps[0]) == image)
                   for ps in by_node.values())

    return cond


async def status(c: InProcessCluster, name: str = "ds") -> Obj:
    ds = await c.client.get(DS, name, NS)
    return {**ds.get("status", {}), "generation": ds["metadata"]["generation"]}


def rolled_out(c: InProcessCluster, n: int, name: str = "ds") -> Callable[[], Any]:
    """What ``kubectl rollout status ds/NAME`` waits for."""

    async def cond() -> bool:
        st = await status(c, name)
        return (st.get("observedGeneration", 0) >= st["generation"] and st.get("desiredNumberScheduled") == n
                and st.get("updatedNumberScheduled") == n and st.get("numberAvailable") == n
                and st.get("numberReady") == n and st.get("currentNumberScheduled") == n
                and st.get("numberUnavailable", 0) == 0 and st.get("numberMisscheduled", 0) == 0)

    return cond


class PodRecorder:
    """Watches the DaemonSet's pods and, after every event, counts nodes that have no ready pod
    that is not being deleted ("unavailable") and nodes with two live pods ("surged")."""

    def __init__(self, c: InProcessCluster, nodes: set[str], app: str = "ds") -> None:
        self.c, self.nodes, self.app = c, nodes, app
        self.pods: dict[str, Obj] = {}
        self.max_unavailable = 0
        self.max_surged = 0
        self.events = 0
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    async def __aenter__(self) -> Self:
        lst = await self.c.client.list(POD, NS, label_selector=f"app={self.app}")
        for p in lst["items"]:
            self.pods[p["metadata"]["name"]] = p
        self._task = asyncio.create_task(self._run(lst["metadata"]["resourceVersion"]))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, rv: str) -> None:
        async with self.c.client.watch(POD, NS, resource_version=rv, label_selector=f"app={self.app}",
                                       timeout_seconds=120) as w:
            async for ev in w:
                name = ev.object["metadata"]["name"]
                if ev.type == "DELETED":
                    self.pods.pop(name, None)
                elif ev.type in ("ADDED", "MODIFIED"):
                    self.pods[name] = ev.object
                else:
                    continue
                self.events += 1
                self._check()

    def _check(self) -> None:
        live: dict[str, list[Obj]] = {}
        for p in self.pods.values():
            if p["metadata"].get("deletionTimestamp"):
                continue
            node = target_node_name(p) or ""
            live.setdefault(node, []).append(p)
        unavailable = sum(1 for n in self.nodes if not any(ready(p) for p in live.get(n, ())))
        self.max_unavailable = max(self.max_unavailable, unavailable)
        self.max_surged = max(self.max_surged, sum(1 for ps in live.values() if len(ps) > 1))


# -- unit checks of the scheduling predicates ----------------------------------------------------------


def test_daemon_tolerations_and_predicates() -> None:
    spec: Obj = {"hostNetwork": True, "tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]}
    add_daemon_tolerations(spec)
    tols = {(t["key"], t["effect"]): t for t in spec["tolerations"]}
    assert "tolerationSeconds" not in tols[("node.kubernetes.io/not-ready", "NoExecute")]
    assert len(spec["tolerations"]) == 7
    for key in ("unreachable",):
        assert ("node.kubernetes.io/" + key, "NoExecute") in tols
    for key in ("disk-pressure", "memory-pressure", "pid-pressure", "unschedulable", "network-unavailable"):
        assert ("node.kubernetes.io/" + key, "NoSchedule") in tols

    ds = daemonset(nodeSelector=None)
    ds["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
                              {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}]}}}

    def node(name: str, labels: Obj | None = None, taints: list[Obj] | None = None) -> Obj:
        return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}

    assert node_should_run(node("n", {"zone": "a"}), ds) == (True, True)
    assert node_should_run(node("n", {"zone": "c"}), ds) == (False, False)
    assert node_should_run(node("special"), ds) == (True, True)
    # cordoned and under pressure: daemon pods tolerate it
    assert node_should_run(node("special", taints=[
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]), ds) == (True, True)
    # an untolerated NoSchedule taint: no new pod, but one already there may stay
    assert node_should_run(node("special", taints=[{"key": "x", "effect": "NoSchedule"}]), ds) == (False, True)
    assert node_should_run(node("special", taints=[{"key": "x", "effect": "NoExecute"}]), ds) == (False, False)
    tolerant = copy.deepcopy(ds)
    tolerant["spec"]["template"]["spec"]["tolerations"] = [{"key": "x", "operator": "Equal", "value": "1"}]
    assert node_should_run(node("special", taints=[{"key": "x", "value": "1", "effect": "NoExecute"}]),
                           tolerant) == (True, True)
    assert node_should_run(node("special", taints=[{"key": "x", "value": "2", "effect": "NoExecute"}]),
                           tolerant) == (False, False)


# -- against the API server -----------------------------------------------------------------------------


async def test_follows_nodes_joining_and_leaving() -> None:
    async with cluster("n1", "n2") as c:
        await c.client.create(DS, daemonset(), NS)
        await c.until(running_on({"n1", "n2"}, c=c), what="a ready pod on n1 and n2")
        await c.until(rolled_out(c, 2), what="status: 2 scheduled, ready, available")
        pod = (await live_pods(c))[0]
        # placement is by node affinity; the pod tolerates node problems without a time limit
        terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"] == [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [pod["spec"]["nodeName"]]}]}]
        nr = [t for t in pod["spec"]["tolerations"] if t["key"] == "node.kubernetes.io/not-ready"]
        assert nr == [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
        assert pod["metadata"]["generateName"] == "ds-"

        await c.add_node("n3", schedule=False)
        await c.until(running_on({"n1", "n2", "n3"}, c=c), what="a pod on the node that joined")
        await c.until(rolled_out(c, 3), what="status with 3 nodes")

        await c.client.delete(NODE, "n2")
        await c.until(running_on({"n1", "n3"}, c=c), what="the pod gone from the node that left")
        await c.until(rolled_out(c, 2), what="status with 2 nodes")


async def test_node_selector_and_taints() -> None:
    async with cluster() as c:
        await c.add_node("a", schedule=False, labels={"disk": "ssd"})
        await c.add_node("b", schedule=False)
        await c.add_node("t", schedule=False, labels={"disk": "ssd"})
        await c.client.patch(NODE, "t", {"spec": {"taints": [
            {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}})
        ds = daemonset()
        ds["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
        await c.client.create(DS, ds, NS)
        await c.until(running_on({"a"}, c=c), what="a pod only on the untainted ssd node")
        await c.until(rolled_out(c, 1), what="one node desired")

        # tolerate the taint: the tainted node gets its pod too
        await c.client.patch(DS, "ds", {"spec": {"template": {"spec": {"tolerations": [
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}}}}, NS)
        await c.until(running_on({"a", "t"}, c=c), what="a pod on the tolerated tainted node")

        # a node that starts matching gets a pod; one that stops matching loses it
        await c.client.patch(NODE, "b", {"metadata": {"labels": {"disk": "ssd"}}})
        await c.until(running_on({"a", "b", "t"}, c=c), what="a pod on the node labelled ssd")
        await c.client.patch(NODE, "a", {"metadata": {"labels": {"disk": None}}})
        await c.until(running_on({"b", "t"}, c=c), what="the pod gone from the node no longer ssd")

        # an untolerated NoSchedule taint leaves a running pod alone; NoExecute evicts it
        await c.client.patch(NODE, "b", {"spec": {"taints": [{"key": "maint", "effect": "NoSchedule"}]}})

        async def misscheduled() -> bool:
            st = await status(c)
            return st.get("desiredNumberScheduled") == 1 and st.get("numberMisscheduled") == 1

        await c.until(misscheduled, what="b no longer desired, its pod counted misscheduled")
        assert set(await pods_on(c)) == {"b", "t"}
        await c.client.patch(NODE, "b", {"spec": {"taints": [{"key": "maint", "effect": "NoExecute"}]}})
        await c.until(running_on({"t"}, c=c), what="the pod evicted by an untolerated NoExecute taint")
        await c.until(rolled_out(c, 1), what="no pod misscheduled any more")


async def test_rolling_update_node_by_node_within_max_unavailable() -> None:
    nodes = {"n1", "n2", "n3", "n4"}
    async with cluster(*sorted(nodes)) as c:
        await c.client.create(DS, daemonset(), NS)
        await c.until(running_on(nodes, c=c), what="first rollout")
        await c.until(rolled_out(c, 4), what="first rollout status")
        async with PodRecorder(c, nodes) as rec:
            await c.client.patch(DS, "ds", {"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "pause:2"}]}}}}, NS)
            await c.until(running_on(nodes, image="pause:2", c=c), timeout=30, what="every node on pause:2")
            await c.until(rolled_out(c, 4), what="rollout status complete")
        # node by node: never more than maxUnavailable (1) node without a ready pod, and never two
        # pods on one node (no surge)
        assert rec.max_unavailable == 1
        assert rec.max_surged == 0
        revs = (await c.client.list(CR, NS, label_selector="app=ds"))["items"]
        assert sorted(r["revision"] for r in revs) == [1, 2]
        hashes = {r["metadata"]["labels"][HASH_LABEL]: r for r in revs}
        new = max(revs, key=lambda r: r["revision"])
        for p in await live_pods(c):
            assert p["metadata"]["labels"][HASH_LABEL] == new["metadata"]["labels"][HASH_LABEL]
        assert len(hashes) == 2


async def test_rolling_update_with_max_surge_keeps_every_node_available() -> None:
    nodes = {"n1", "n2", "n3"}
    async with cluster(*sorted(nodes)) as c:
        await c.client.create(DS, daemonset(updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}), NS)
        await c.until(running_on(nodes, c=c), what="first rollout")
        await c.until(rolled_out(c, 3), what="first rollout status")
        async with PodRecorder(c, nodes) as rec:
            await c.client.patch(DS, "ds", {"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "pause:2"}]}}}}, NS)
            await c.until(running_on(nodes, image="pause:2", c=c), timeout=30, what="every node on pause:2")
            await c.until(rolled_out(c, 3), what="rollout status complete")
        assert rec.max_unavailable == 0
        assert rec.max_surged == 1


async def test_on_delete_history_and_rollback() -> None:
    async with cluster("n1", "n2") as c:
        ds = daemonset(updateStrategy={"type": "OnDelete"})
        ds["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first"}
        await c.client.create(DS, ds, NS)
        await c.until(running_on({"n1", "n2"}, c=c), what="first rollout")
        await c.client.patch(DS, "ds", {"metadata": {"annotations": {"kubernetes.io/change-cause": "second"}},
                                        "spec": {"template": {"spec": {"containers": [
                                            {"name": "c", "image": "pause:2"}]}}}}, NS)

        async def two_revisions() -> list[Obj] | None:
            items = (await c.client.list(CR, NS, label_selector="app=ds"))["items"]
            return sorted(items, key=lambda r: r["revision"]) if len(items) == 2 else None

        r1, r2 = await c.until(two_revisions, what="a second revision")
        assert r1["metadata"]["annotations"]["kubernetes.io/change-cause"] == "first"
        assert r2["metadata"]["annotations"]["kubernetes.io/change-cause"] == "second"
        assert r2["data"]["spec"]["template"]["$patch"] == "replace"
        assert r2["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == "pause:2"
        assert r2["metadata"]["ownerReferences"][0]["controller"] is True
        assert r2["metadata"]["name"] == "ds-" + r2["metadata"]["labels"][HASH_LABEL]

        async def observed() -> bool:
            st = await status(c)
            # updatedNumberScheduled is omitempty: 0 is not written
            return bool(st.get("observedGeneration") == st["generation"] and "updatedNumberScheduled" not in st)

        await c.until(observed, what="OnDelete: the new template observed, no pod replaced")
        assert all(image_of(p) == "pause:1" for p in await live_pods(c))
        victim = (await pods_on(c))["n1"][0]
        await c.client.delete(POD, victim["metadata"]["name"], NS)

        async def replaced() -> bool:
            by_node = await pods_on(c)
            return [image_of(p) for p in by_node.get("n1", [])] == ["pause:2"] and \
                [image_of(p) for p in by_node.get("n2", [])] == ["pause:1"]

        await c.until(replaced, what="the deleted pod replaced from the new template, the other kept")

        # kubectl rollout undo: a strategic merge patch with the old revision's data
        await c.client.patch(DS, "ds", r1["data"], NS, type="strategic")

        async def rolled_back() -> bool:
            items = (await c.client.list(CR, NS, label_selector="app=ds"))["items"]
            by_name = {r["metadata"]["name"]: r["revision"] for r in items}
            return by_name == {r1["metadata"]["name"]: 3, r2["metadata"]["name"]: 2}

        await c.until(rolled_back, what="the old revision renumbered 3, no new revision")
        cur = await c.client.get(DS, "ds", NS)
        assert cur["spec"]["template"]["spec"]["containers"][0]["image"] == "pause:1"


async def test_set_node_name_option_binds_without_a_scheduler() -> None:
    # for clusters run without a scheduler: the controller binds daemon pods itself (pre-1.12 kube)
    async with InProcessCluster(controllers=["daemonset"], manager_options={"daemonset_set_node_name": True}) as c:
        for n in ("n1", "n2"):
            await c.add_node(n, schedule=False)
        await c.client.create(DS, daemonset(), NS)
        await c.until(running_on({"n1", "n2"}, c=c), what="pods bound by the controller and running")
        await c.until(rolled_out(c, 2), what="rollout status complete")
