"""The StatefulSet controller against the in-process API server, with FakeNodes as kubelets
(they bind pending pods to themselves and mark them Running and Ready)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Self

from tests.helpers.cluster import InProcessCluster

from k8py.controllers.history import HASH_LABEL
from k8py.controllers.statefulset import POD_INDEX_LABEL, POD_NAME_LABEL

Obj = dict[str, Any]
POD = ("v1", "Pod")
PVC = ("v1", "PersistentVolumeClaim")
SVC = ("v1", "Service")
STS = ("apps/v1", "StatefulSet")
CR = ("apps/v1", "ControllerRevision")
EVENT = ("v1", "Event")
NS = "default"


@asynccontextmanager
async def cluster(**node_kw: Any) -> AsyncIterator[InProcessCluster]:
    async with InProcessCluster(controllers=["statefulset"]) as c:
        await c.add_node("node-1", **node_kw)
        yield c


def statefulset(name: str = "web", replicas: int = 3, image: str = "nginx:1", claims: bool = True,
                service: str | None = None, **spec: Any) -> Obj:
    tmpl: Obj = {"metadata": {"labels": {"app": name}},
                 "spec": {"containers": [{"name": "c", "image": image,
                                          "volumeMounts": [{"name": "data", "mountPath": "/data"}] if claims
                                          else []}]}}
    obj: Obj = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
                "spec": {"replicas": replicas, "serviceName": service if service is not None else name,
                         "selector": {"matchLabels": {"app": name}}, "template": tmpl, **spec}}
    if claims:
        obj["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
    return obj


async def headless(c: InProcessCluster, name: str = "web") -> None:
    await c.client.create(SVC, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                                "spec": {"clusterIP": "None", "selector": {"app": name},
                                         "ports": [{"port": 80}]}}, NS)


def ready(pod: Obj) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or ())


async def pods(c: InProcessCluster, app: str = "web") -> dict[str, Obj]:
    items = (await c.client.list(POD, NS, label_selector=f"app={app}"))["items"]
    return {p["metadata"]["name"]: p for p in items}


def all_ready(c: InProcessCluster, names: list[str], app: str = "web", image: str | None = None) -> Callable[[], Any]:
    """Exactly ``names`` exist, each ready, not being deleted (and running ``image``)."""

    async def cond() -> bool:
        ps = await pods(c, app)
        return sorted(ps) == sorted(names) and all(
            ready(p) and not p["metadata"].get("deletionTimestamp")
            and (image is None or p["spec"]["containers"][0]["image"] == image) for p in ps.values())

    return cond


def settled(c: InProcessCluster, n: int, name: str = "web") -> Callable[[], Any]:
    """What ``kubectl rollout status sts/NAME`` waits for (no partition)."""

    async def cond() -> Obj | None:
        s = await c.client.get(STS, name, NS)
        st = s.get("status") or {}
        ok = (st.get("observedGeneration") == s["metadata"]["generation"] and st.get("replicas") == n
              and st.get("readyReplicas") == n and st.get("availableReplicas") == n
              and st.get("currentReplicas") == n and st.get("updatedReplicas") == n
              and st.get("currentRevision") == st.get("updateRevision"))
        return st if ok else None

    return cond


class PodLog:
    """Watches a set's pods; records the order pods were added and deleted, and for each add
    which pods were Running and Ready at that moment."""

    def __init__(self, c: InProcessCluster, app: str = "web") -> None:
        self.c, self.app = c, app
        self.state: dict[str, Obj] = {}
        self.added: list[tuple[str, set[str]]] = []  # (name, ready pods when it was added)
        self.deleting: list[str] = []  # order in which pods got a deletionTimestamp (or vanished)
        self.deleted: list[tuple[str, set[str]]] = []  # (name, pods still present when it started going)
        self._going_now: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        lst = await self.c.client.list(POD, NS, label_selector=f"app={self.app}")
        self.state = {p["metadata"]["name"]: p for p in lst["items"]}
        self._task = asyncio.create_task(self._run(lst["metadata"]["resourceVersion"]))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _going(self, name: str) -> None:
        if name not in self._going_now:
            self._going_now.add(name)
            self.deleting.append(name)
            self.deleted.append((name, {n for n in self.state if n != name}))

    async def _run(self, rv: str) -> None:
        async with self.c.client.watch(POD, NS, resource_version=rv, label_selector=f"app={self.app}",
                                       timeout_seconds=120) as w:
            async for ev in w:
                p = ev.object
                name = p["metadata"]["name"]
                if ev.type == "ADDED":
                    self.added.append((name, {n for n, q in self.state.items() if ready(q)}))
                    self._going_now.discard(name)  # the same name again: a new incarnation
                if ev.type == "DELETED":
                    self._going(name)
                    self.state.pop(name, None)
                elif ev.type in ("ADDED", "MODIFIED"):
                    self.state[name] = p
                    if p["metadata"].get("deletionTimestamp"):
                        self._going(name)


async def test_ordered_creation_stable_identity_and_claims() -> None:
    async with cluster() as c:
        await headless(c)
        async with PodLog(c) as log:
            await c.client.create(STS, statefulset(), NS)
            await c.until(all_ready(c, ["web-0", "web-1", "web-2"]), what="3 pods ready")
            st = await c.until(settled(c, 3), what="status: 3 replicas ready and current")
        # OrderedReady: created in order, each only once every lower ordinal was Running and Ready
        assert [n for n, _ in log.added] == ["web-0", "web-1", "web-2"]
        for i, (_, ready_then) in enumerate(log.added):
            assert {f"web-{j}" for j in range(i)} <= ready_then
        assert st["currentRevision"].startswith("web-")
        assert st["collisionCount"] == 0

        ps = await pods(c)
        for i in range(3):
            p = ps[f"web-{i}"]
            labels = p["metadata"]["labels"]
            assert labels[POD_NAME_LABEL] == f"web-{i}" and labels[POD_INDEX_LABEL] == str(i)
            assert labels[HASH_LABEL] == st["updateRevision"]
            assert p["spec"]["hostname"] == f"web-{i}" and p["spec"]["subdomain"] == "web"
            vols = {v["name"]: v for v in p["spec"]["volumes"]}
            assert vols["data"]["persistentVolumeClaim"]["claimName"] == f"data-web-{i}"
            assert p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
        claims = {p["metadata"]["name"]: p for p in (await c.client.list(PVC, NS))["items"]}
        assert sorted(claims) == ["data-web-0", "data-web-1", "data-web-2"]
        assert claims["data-web-1"]["metadata"]["labels"] == {"app": "web"}
        assert not claims["data-web-1"]["metadata"].get("ownerReferences")  # Retain: no owner
        revs = (await c.client.list(CR, NS, label_selector="app=web"))["items"]
        assert [r["metadata"]["name"] for r in revs] == [st["updateRevision"]]

        # a deleted pod comes back with the same name and the same claim
        old_uid = ps["web-1"]["metadata"]["uid"]
        await c.client.delete(POD, "web-1", NS)

        async def back() -> Obj | None:
            p = (await pods(c)).get("web-1")
            return p if p and p["metadata"]["uid"] != old_uid and ready(p) else None

        p = await c.until(back, what="web-1 recreated and ready")
        assert {v["name"]: v for v in p["spec"]["volumes"]}["data"]["persistentVolumeClaim"]["claimName"] == \
            "data-web-1"
        again = await c.client.get(PVC, "data-web-1", NS)
        assert again["metadata"]["uid"] == claims["data-web-1"]["metadata"]["uid"]


async def test_scale_down_in_reverse_and_up_reusing_claims() -> None:
    async with cluster() as c:
        await headless(c)
        await c.client.create(STS, statefulset(replicas=4), NS)
        await c.until(all_ready(c, [f"web-{i}" for i in range(4)]), what="4 pods ready")
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in (await c.client.list(PVC, NS))["items"]}
        async with PodLog(c) as log:
            await c.client.patch(STS, "web", {"spec": {"replicas": 1}}, NS)
            await c.until(all_ready(c, ["web-0"]), what="scaled down to web-0")
            await c.until(settled(c, 1), what="status: 1 replica")
        # highest ordinal first, each only after the one above it was gone
        assert log.deleting == ["web-3", "web-2", "web-1"]
        assert [sorted(left) for _, left in log.deleted] == [
            ["web-0", "web-1", "web-2"], ["web-0", "web-1"], ["web-0"]]
        # claims stay (whenScaled: Retain) and serve the pods when they come back
        assert {p["metadata"]["name"] for p in (await c.client.list(PVC, NS))["items"]} == set(uids)
        async with PodLog(c) as log:
            await c.client.patch(STS, "web", {"spec": {"replicas": 3}}, NS)
            await c.until(all_ready(c, ["web-0", "web-1", "web-2"]), what="scaled up to 3")
        assert [n for n, _ in log.added] == ["web-1", "web-2"]
        now = {p["metadata"]["name"]: p["metadata"]["uid"] for p in (await c.client.list(PVC, NS))["items"]}
        assert now == uids


async def test_claim_retention_policy_owner_references() -> None:
    async with cluster() as c:
        await headless(c)
        await c.client.create(STS, statefulset(replicas=2, persistentVolumeClaimRetentionPolicy={
            "whenDeleted": "Delete", "whenScaled": "Delete"}), NS)
        await c.until(all_ready(c, ["web-0", "web-1"]), what="2 pods ready")
        sts = await c.client.get(STS, "web", NS)

        def refs(claim: Obj) -> list[tuple[str, str, str, bool]]:
            return [(r["kind"], r["name"], r["uid"], bool(r.get("controller")))
                    for r in claim["metadata"].get("ownerReferences") or ()]

        for i in range(2):
            claim = await c.client.get(PVC, f"data-web-{i}", NS)
            assert refs(claim) == [("StatefulSet", "web", sts["metadata"]["uid"], True)]
        web1 = (await pods(c))["web-1"]
        await c.client.patch(STS, "web", {"spec": {"replicas": 1}}, NS)
        await c.until(all_ready(c, ["web-0"]), what="scaled down to 1")
        # the claim of the pod scaled away is now owned by that pod: the garbage collector deletes
        # it with the pod; the remaining one stays owned by the set (deleted with the set)
        claim = await c.client.get(PVC, "data-web-1", NS)
        assert refs(claim) == [("Pod", "web-1", web1["metadata"]["uid"], True)]
        claim = await c.client.get(PVC, "data-web-0", NS)
        assert refs(claim) == [("StatefulSet", "web", sts["metadata"]["uid"], True)]


async def test_partitioned_rolling_update() -> None:
    async with cluster() as c:
        await headless(c)
        await c.client.create(STS, statefulset(claims=False, updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"partition": 2}}), NS)
        await c.until(all_ready(c, ["web-0", "web-1", "web-2"]), what="3 pods ready")
        first = await c.until(settled(c, 3), what="first rollout settled")

        await c.client.patch(STS, "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2"}]}}}}, NS)

        async def partitioned() -> Obj | None:
            ps = await pods(c)
            images = {n: p["spec"]["containers"][0]["image"] for n, p in ps.items() if ready(p)}
            s = await c.client.get(STS, "web", NS)
            st = s.get("status") or {}
            ok = images == {"web-0": "nginx:1", "web-1": "nginx:1", "web-2": "nginx:2"} and \
                st.get("updatedReplicas") == 1 and st.get("currentReplicas") == 2 and st.get("readyReplicas") == 3
            return st if ok else None

        st = await c.until(partitioned, what="only ordinals >= partition updated")
        assert st["currentRevision"] == first["currentRevision"] != st["updateRevision"]
        ps = await pods(c)
        assert ps["web-2"]["metadata"]["labels"][HASH_LABEL] == st["updateRevision"]
        assert ps["web-0"]["metadata"]["labels"][HASH_LABEL] == st["currentRevision"]

        # the partition lowered to 0: the rest update from the highest ordinal down
        async with PodLog(c) as log:
            await c.client.patch(STS, "web", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}, NS)
            await c.until(all_ready(c, ["web-0", "web-1", "web-2"], image="nginx:2"), what="all on nginx:2")
            done = await c.until(settled(c, 3), what="rollout complete")
        assert log.deleting == ["web-1", "web-0"]
        # web-0 went only once the new web-1 was Running and Ready
        assert [n for n, _ in log.added] == ["web-1", "web-0"]
        assert "web-1" in log.deleted[1][1] and "web-1" in log.added[1][1]
        assert done["currentRevision"] == done["updateRevision"] == st["updateRevision"]
        revs = (await c.client.list(CR, NS, label_selector="app=web"))["items"]
        assert sorted((r["revision"], r["metadata"]["name"]) for r in revs) == [
            (1, first["currentRevision"]), (2, st["updateRevision"])]

        # kubectl rollout undo: patch the set with the old revision's data; that revision becomes 3
        old = next(r for r in revs if r["revision"] == 1)
        await c.client.patch(STS, "web", old["data"], NS, type="strategic")
        await c.until(all_ready(c, ["web-0", "web-1", "web-2"], image="nginx:1"), what="rolled back to nginx:1")
        back = await c.until(settled(c, 3), what="rollback complete")
        assert back["updateRevision"] == first["currentRevision"]
        revs = (await c.client.list(CR, NS, label_selector="app=web"))["items"]
        assert sorted((r["revision"], r["metadata"]["name"]) for r in revs) == [
            (2, st["updateRevision"]), (3, first["currentRevision"])]


async def test_parallel_policy_and_missing_service_event() -> None:
    # pods never become ready: Parallel creates them all anyway, OrderedReady stops at the first
    async with cluster(ready=lambda pod: False) as c:
        await c.client.create(STS, statefulset("par", claims=False, service="nowhere",
                                               podManagementPolicy="Parallel"), NS)
        await c.client.create(STS, statefulset("ord", claims=False, service="nowhere"), NS)

        async def running(app: str, names: list[str]) -> bool:
            ps = await pods(c, app)
            return sorted(ps) == names and all(p["status"].get("phase") == "Running" for p in ps.values())

        await c.until(lambda: running("par", ["par-0", "par-1", "par-2"]), what="all 3 Parallel pods running")
        await c.until(lambda: running("ord", ["ord-0"]), what="ord-0 running, not ready")
        s = await c.client.get(STS, "par", NS)
        assert s["status"]["replicas"] == 3 and s["status"].get("readyReplicas", 0) == 0
        assert sorted(await pods(c, "ord")) == ["ord-0"]

        # serviceName names no Service: allowed, with a warning that the pods get no DNS names
        async def warned() -> list[Obj]:
            evs = (await c.client.list(EVENT, NS))["items"]
            return [e for e in evs if e["reason"] == "ServiceNotFound" and e["involvedObject"]["name"] == "par"]

        evs = await c.until(warned, what="a ServiceNotFound event")
        assert evs[0]["type"] == "Warning" and "no DNS names" in evs[0]["message"]
        assert evs[0]["involvedObject"]["kind"] == "StatefulSet"

        # Parallel scale down: all at once, without waiting for readiness
        await c.client.patch(STS, "par", {"spec": {"replicas": 0}}, NS)
        await c.until(lambda: running("par", []), what="Parallel pods all gone")


async def test_on_delete_updates_only_deleted_pods() -> None:
    async with cluster() as c:
        await headless(c)
        await c.client.create(STS, statefulset(replicas=2, claims=False, updateStrategy={"type": "OnDelete"}), NS)
        await c.until(all_ready(c, ["web-0", "web-1"]), what="2 pods ready")
        first = await c.until(settled(c, 2), what="first rollout settled")
        await c.client.patch(STS, "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2"}]}}}}, NS)

        async def observed() -> Obj | None:
            s = await c.client.get(STS, "web", NS)
            st = s.get("status") or {}
            ok = st.get("observedGeneration") == s["metadata"]["generation"] and \
                st.get("updateRevision") != first["currentRevision"]
            return st if ok else None

        st = await c.until(observed, what="the new revision observed")
        assert st["currentRevision"] == first["currentRevision"] and "updatedReplicas" not in st  # 0: omitempty
        await c.client.delete(POD, "web-0", NS)

        async def one_updated() -> Obj | None:
            ps = await pods(c)
            images = {n: p["spec"]["containers"][0]["image"] for n, p in ps.items() if ready(p)}
            s = (await c.client.get(STS, "web", NS)).get("status") or {}
            ok = images == {"web-0": "nginx:2", "web-1": "nginx:1"} and s.get("updatedReplicas") == 1 and \
                s.get("currentReplicas") == 1 and s.get("readyReplicas") == 2
            return s if ok else None

        await c.until(one_updated, what="only the deleted pod on the new template")
